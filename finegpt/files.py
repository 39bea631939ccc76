"""Files that are never half-written: write `<name>.tmp`, fsync it, rename it over the name, fsync the folder.

A crash at any moment leaves the old file or the new one; a failed write leaves no temp file.
Entry points: atomic_write, atomic_write_text, fsync_dir; NO_SPACE and human_bytes for messages about space.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # a write that failed for want of space (disk or quota)


def human_bytes(nbytes: float) -> str:
    """1.50 GiB, 12.3 MiB or 640 KiB: a size as a message to a student shows it."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.{2 if unit == 'GiB' else 1}f} {unit}"
    return f"{nbytes / 2**10:.0f} KiB"


def fsync_dir(path: str | Path) -> None:
    """Make renames inside `path` durable; not every OS or filesystem lets a directory be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Sink:
    """A file that remembers why a write failed: torch.save's C++ writer turns any failed write (disk full,
    a second Ctrl-C) into "unexpected pos", which says neither."""

    def __init__(self, f: BinaryIO):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except BaseException as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], sync_dir: bool = True) -> None:
    """write(f) into <path>.tmp, fsync, rename over path. A failed write removes its temp file and raises
    the error the file got (ENOSPC, EFBIG, KeyboardInterrupt), not the writer's own wrapping of it.
    sync_dir=False leaves the folder's fsync to a caller that renames several files and syncs once."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp")
    sink = None
    try:
        with open(tmp, "wb") as f:
            sink = _Sink(f)
            write(sink)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if sink is not None and sink.error is not None and sink.error is not e:
            raise sink.error from None
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
