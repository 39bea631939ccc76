"""Folders that never lose what they hold: a lock that names its holder, and staging that replaces an
earlier result only once the new one is complete.

Entry points: check_path, lock_holder, check_unlocked, FolderLock, staging_dir, commit, recover.
A result is built in `<folder>/overwrite.partial/`; commit() moves it over the old one. It marks the
stage complete first, so recover() can finish a commit that a crash cut short.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from finegpt.errors import bad
from finegpt.files import atomic_write_text, fsync_dir

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; folders are then not guarded against a second process
    fcntl = None

LOCK = ".lock"  # holds the PID and command of the process that last locked the folder
STAGING = "overwrite.partial"
COMPLETE = ".complete"  # in a stage: the names to move, written once the new result is whole
_HELD: dict[str, list] = {}  # realpath -> [fd, depth]: a process re-enters its own lock (quickstart -> train)


def check_path(field: str, value, example: str):
    """An output folder must be named: an unset shell variable gives '' and would mean the current directory."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise bad(
            field, value, "is empty", f"Name a folder, e.g. {example} (an unset shell variable gives an empty value)"
        )
    return Path(value)


# ---- the lock ----------------------------------------------------------------------------------------


def _holder_info(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"PID {info['pid']} on {info['host']}: `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID unknown"


def lock_holder(folder) -> str | None:
    """Who holds `folder`'s lock ('PID 123 on host: `finegpt train`, since ...'), or None. Creates nothing."""
    path = Path(folder) / LOCK
    if fcntl is None or os.path.realpath(folder) in _HELD or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two probes never exclude each other
    except BlockingIOError:
        return _holder_info(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _busy(field: str, folder, holder: str):
    return bad(
        field,
        str(folder),
        f"is in use by another finegpt process ({holder})",
        f"Wait for it to finish or stop it, or choose another --{field}",
    )


def check_unlocked(folder, field: str) -> None:
    """Fail at once, naming the holder, when another process has locked `folder`."""
    holder = lock_holder(folder)
    if holder is not None:
        raise _busy(field, folder, holder)


class FolderLock:
    """An exclusive flock on `<folder>/.lock`, released on any exit (the OS drops it when the process dies).
    The folder must exist. A process that already holds it enters again."""

    def __init__(self, folder, field: str, command: str):
        self.folder, self.field, self.command = Path(folder), field, command
        self.key = os.path.realpath(folder)

    def __enter__(self):
        if fcntl is None:
            return self
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            return self
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        for _ in range(20):  # a probe holds a shared lock for microseconds
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.005)
        else:
            os.close(fd)
            raise _busy(self.field, self.folder, _holder_info(self.folder / LOCK))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "argv": sys.argv,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        _HELD[self.key] = [fd, 1]
        return self

    def __exit__(self, *exc) -> None:
        held = _HELD.get(self.key)
        if fcntl is None or held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[self.key]
            fcntl.flock(held[0], fcntl.LOCK_UN)
            os.close(held[0])


# ---- staging: build beside the old result, replace it when whole ----------------------------------


def staging_dir(folder) -> Path:
    return Path(folder) / STAGING


def fresh_stage(folder) -> Path:
    """An empty stage; an unfinished one left by an earlier attempt is dropped (the caller was told to overwrite)."""
    stage = staging_dir(folder)
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _finish(stage: Path, target: Path, names: list[str], stale, first_removed: tuple) -> None:
    """Idempotent: moves what is still in the stage, then removes old entries the new result lacks."""
    for name in first_removed:  # an index (meta.json) must never describe a mix of old and new files
        if name in names and (stage / name).exists():
            (target / name).unlink(missing_ok=True)
    for name in names:
        src, dst = stage / name, target / name
        if not os.path.lexists(src):  # moved by an earlier commit that was cut short
            continue
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)
    for old in target.iterdir():
        if old.name not in names and old.name not in (LOCK, STAGING) and stale(old.name):
            _remove(old)
    fsync_dir(target)
    for leftover in (COMPLETE, LOCK):
        (stage / leftover).unlink(missing_ok=True)
    stage.rmdir()


def commit(stage: Path, target: Path, kind: str, stale, first_removed: tuple = ()) -> None:
    """Replace target's result with the complete one in `stage`. stale(name): an entry of the old result
    (removed when the new one lacks it); names in first_removed go first and come back last."""
    names = sorted(p.name for p in stage.iterdir() if p.name not in (COMPLETE, LOCK))
    names.sort(key=lambda n: n in first_removed)  # stable: the index moves in last
    atomic_write_text(stage / COMPLETE, json.dumps({"kind": kind, "names": names}) + "\n")
    _finish(stage, target, names, stale, first_removed)


def recover(target, kind: str, stale, first_removed: tuple = ()) -> bool:
    """Finish a commit of `kind` that was cut short (the stage is marked complete); True if there was one."""
    stage = staging_dir(target)
    try:
        done = json.loads((stage / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    if done.get("kind") != kind:
        return False
    _finish(stage, Path(target), done["names"], stale, first_removed)
    return True
