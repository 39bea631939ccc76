"""Files that are never half-written: write `<name>.tmp`, fsync it, rename it over the name, fsync the folder.

A crash at any moment leaves the old file or the new one. Entry points: atomic_write, atomic_write_text, fsync_dir.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


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


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object], sync_dir: bool = True) -> None:
    """write(f) into <path>.tmp, fsync, rename over path. sync_dir=False leaves the folder's fsync to a
    caller that renames several files and syncs once."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
