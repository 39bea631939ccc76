"""Folders that never lose what they hold: a lock that names its holder, and staging that replaces an
earlier result only once the new one is complete.

Entry points: check_path, lock_holder, check_unlocked, FolderLock, staging_dir, commit, recover.
A result is built in `<folder>/overwrite.partial/`; commit() moves it over the old one. It marks the
stage complete first, so recover() can finish a commit that a crash cut short.
"""

from __future__ import annotations

import contextlib
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

LOCK = ".lock"  # a note naming the process that holds the folder's lock (the lock is on the folder itself)
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
# The lock is an flock on the folder's own directory: deleting `.lock` cannot break it, and a folder that is
# deleted and made again is a new directory, which the old holder notices (check_held) instead of writing
# into. `.lock` is a note for people (who holds it, since when), rewritten when someone deletes it.


def _open_dir(folder) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _holder_from_proc(fd: int) -> str | None:
    """Linux: the PID holding an flock on this directory, from /proc/locks, when its `.lock` note is gone."""
    st = os.fstat(fd)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            pids = [line.split()[4] for line in f if "FLOCK" in line and inode in line.split()]
        pid = int(pids[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (OSError, IndexError, ValueError):
        return None
    return f"PID {pid} on {socket.gethostname()}: `{command}`; its .lock note was deleted"


def _holder_info(path: Path, fd: int | None = None) -> str:
    try:
        info = json.loads(path.read_text())
        return f"PID {info['pid']} on {info['host']}: `{info['command']}`, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return (_holder_from_proc(fd) if fd is not None else None) or "PID unknown"


def _lockable(folder, flags: int) -> int:
    """An fd of `folder` with an flock taken (flags), or raises BlockingIOError when someone holds it.
    Where a directory cannot be flocked (NFS emulates flock with byte-range locks, which need a file open
    for writing), the `.lock` file carries the lock instead, as it did before: deleting it then unlocks."""
    fd = _open_dir(folder)
    try:
        fcntl.flock(fd, flags)
        return fd
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
    fd = os.open(Path(folder) / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, flags)
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_holder(folder) -> str | None:
    """Who holds `folder`'s lock ('PID 123 on host: `finegpt train`, since ...'), or None. Creates nothing."""
    if fcntl is None or os.path.realpath(folder) in _HELD or not os.path.isdir(folder):
        return None
    try:
        fd = _open_dir(folder)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two probes never exclude each other
    except BlockingIOError:
        return _holder_info(Path(folder) / LOCK, fd)
    except OSError:  # no flock on directories here: the .lock file is probed, when there is one
        return _file_lock_holder(Path(folder) / LOCK)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _file_lock_holder(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
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


def gone(field: str, folder, how: str):
    """The one line for a folder deleted under a running process, which then stops without writing."""
    return bad(
        field,
        str(folder),
        f"{how}, so this run stopped without saving and did not make it again",
        f"Start again with a new --{field}, or put the folder back from a copy and resume",
    )


class FolderLock:
    """An exclusive flock on the directory `folder` itself, released on any exit (the OS drops it when the
    process dies); `<folder>/.lock` names the holder. The folder must exist. A process that already holds
    it enters again. check_held() fails when the folder was deleted or replaced since."""

    def __init__(self, folder, field: str, command: str):
        self.folder, self.field, self.command = Path(folder), field, command
        self.key = os.path.realpath(folder)

    def _note(self) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "since": self.since,
            "argv": sys.argv,
        }
        (self.folder / LOCK).write_text(json.dumps(info) + "\n")

    def __enter__(self):
        if fcntl is None:
            return self
        if self.key in _HELD:
            _HELD[self.key][1] += 1
            return self
        for _ in range(20):  # a probe holds a shared lock for microseconds
            try:
                fd = _lockable(self.folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.005)
        else:
            raise _busy(self.field, self.folder, self._holder())
        self.since = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            self._note()
            st = os.stat(self.key)
        except OSError:
            os.close(fd)
            raise
        _HELD[self.key] = [fd, 1, self, (st.st_dev, st.st_ino)]
        return self

    def _holder(self) -> str:
        try:
            fd = _open_dir(self.folder)
        except OSError:
            return _holder_info(self.folder / LOCK)
        try:
            return _holder_info(self.folder / LOCK, fd)
        finally:
            os.close(fd)

    def check_held(self) -> None:
        """The locked directory must still be the one at its path: a folder deleted (or deleted and made
        again by someone else) is never written into, or made again, by this process."""
        held = _HELD.get(self.key)
        if fcntl is None or held is None:
            return
        try:
            now = os.stat(self.key)  # the absolute path: a notebook may have changed its directory since
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != held[3]:
            how = "was deleted" if now is None else "was deleted and made again by someone else"
            raise gone(self.field, self.folder, f"{how} while this process was writing it")
        if not (self.folder / LOCK).exists():  # someone deleted the note: put it back for the next reader
            with contextlib.suppress(OSError):
                held[2]._note()

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


def _finish(stage: Path, target: Path, names: list[str], remove: list[str], first_removed: tuple) -> None:
    """Idempotent: moves what is still in the stage, then removes the old entries named in `remove`."""
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
    for name in remove:
        if name not in names and name not in (LOCK, STAGING) and os.path.lexists(target / name):
            _remove(target / name)
    fsync_dir(target)
    for leftover in (COMPLETE, LOCK):
        (stage / leftover).unlink(missing_ok=True)
    stage.rmdir()


def _stale_entries(target: Path, names: list[str], stale) -> list[str]:
    return sorted(
        p.name for p in target.iterdir() if p.name not in names and p.name not in (LOCK, STAGING) and stale(p.name)
    )


def commit(stage: Path, target: Path, kind: str, stale, first_removed: tuple = ()) -> list[str]:
    """Replace target's result with the complete one in `stage`; returns the names moved in. stale(name):
    an entry of the old result (removed when the new one lacks it; nothing else in target is touched);
    names in first_removed go first and come back last. What will be removed is written down with the
    names before anything moves, so recover() finishes the same commit."""
    names = sorted(p.name for p in stage.iterdir() if p.name not in (COMPLETE, LOCK))
    names.sort(key=lambda n: n in first_removed)  # stable: the index moves in last
    remove = _stale_entries(target, names, stale)
    atomic_write_text(stage / COMPLETE, json.dumps({"kind": kind, "names": names, "remove": remove}) + "\n")
    _finish(stage, target, names, remove, first_removed)
    return names


def recover(target, kind: str, stale, first_removed: tuple = ()) -> bool:
    """Finish a commit of `kind` that was cut short (the stage is marked complete); True if there was one."""
    stage = staging_dir(target)
    try:
        done = json.loads((stage / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    if done.get("kind") != kind:
        return False
    remove = done.get("remove")
    if remove is None:  # marked by an older finegpt: the old entries are those stale() names
        remove = _stale_entries(Path(target), done["names"], stale)
    _finish(stage, Path(target), done["names"], remove, first_removed)
    return True
