"""A run folder: which run owns it (run.json), who is writing it now (a lock), and --overwrite that builds
the new run beside the old one and replaces it only once the new one has finished.

Entry points: check_out_dir (read-only, before anything is written), RunFolder (lock, owner record,
staging; .work_dir is where this run writes, .finish(result) replaces the old run), earlier_results,
building (where an unfinished --overwrite run is). run.json lists the files the run wrote: an overwrite
removes only those of the old run, never a file someone else put in the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path

from finegpt import folders
from finegpt.errors import bad
from finegpt.files import atomic_write_text, human_bytes
from finegpt.train.checkpoint import _STEP_NAME, resolve_checkpoint, step_checkpoints

OWNER = "run.json"
_RUN_NAMES = ("ckpt.pt", "latest", "metrics.jsonl", OWNER, "tensorboard", "wandb", folders.STAGING)


def is_run_file(name: str) -> bool:
    """A name finegpt train writes in its out_dir (and replaces when a run is overwritten)."""
    return name in _RUN_NAMES or bool(_STEP_NAME.match(name)) or name.startswith("dcp_") or name.endswith(".pt.tmp")


def earlier_results(out_dir: Path) -> list[str]:
    """Run files holding something a fresh run would lose: checkpoints, logged metrics, trackers' logs, an
    unfinished --overwrite run. An owner record, a lock, an empty log or a temp file hold nothing."""
    if not out_dir.is_dir():
        return []
    found = []
    for p in sorted(out_dir.iterdir()):
        if not is_run_file(p.name) or p.name == OWNER or p.name.endswith(".tmp"):
            continue
        if p.is_file() and p.stat().st_size == 0:
            continue
        found.append(p.name + "/" if p.is_dir() else p.name)
    return found


def _named(names: list[str], at_most: int = 6) -> str:
    more = f" and {len(names) - at_most} more" if len(names) > at_most else ""
    return ", ".join(names[:at_most]) + more


def checkpoint_space_bytes(checkpoint_bytes: int, keep: int, on_disk: int) -> int:
    """keep step checkpoints (ckpt.pt is a second name for the newest) plus the one being written, less
    those already on disk that the run will prune."""
    return checkpoint_bytes * max(1, max(keep, 1) + 1 - on_disk)


def check_out_dir(out_dir: Path, init_from: str, overwrite: bool, checkpoint_bytes: int = 0, keep: int = 3) -> None:
    """out_dir must be writable with room for its checkpoints, and a fresh run must not replace an earlier
    run's results unless told to. Nothing is created here: a run that fails a check leaves no folder behind."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise bad("out_dir", str(out_dir), f"{str(existing)!r} is a file, not a directory", "Choose another --out_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise bad(
            "out_dir",
            str(out_dir),
            f"cannot be written ({str(existing)!r} is read-only)",
            "Choose a directory you can write to, e.g. --out_dir=out",
        )
    found = earlier_results(out_dir)
    if init_from == "scratch" and not overwrite and found:
        raise bad(
            "out_dir",
            str(out_dir),
            f"holds files of an earlier run ({_named(found)})",
            "Continue it with --resume, replace it with --overwrite (it is kept until the new run finishes), "
            "or pick a new --out_dir",
        )
    on_disk = len(step_checkpoints(out_dir)) if init_from == "resume" and out_dir.is_dir() else 0
    need = checkpoint_space_bytes(checkpoint_bytes, keep, on_disk)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise bad(
            "out_dir",
            str(out_dir),
            f"has {human_bytes(free)} free, but keep_checkpoints={keep} needs {human_bytes(need)} "
            f"(checkpoints of about {human_bytes(checkpoint_bytes)}, one more while the next is written)",
            "Free some disk space, lower keep_checkpoints, or pick another --out_dir",
        )


# ---- the owner record ----------------------------------------------------------------------------------


def read_owner(folder: Path) -> dict | None:
    try:
        return json.loads((folder / OWNER).read_text())
    except (OSError, ValueError):
        return None


def update_owner(folder: Path, **fields) -> None:
    owner = read_owner(folder)
    if owner is not None and any(owner.get(k) != v for k, v in fields.items()):
        atomic_write_text(folder / OWNER, json.dumps({**owner, **fields}, indent=1) + "\n")


def own_files(folder: Path) -> list[str]:
    """run.json's list of the files this run wrote; an --overwrite removes only these of the old run."""
    owner = read_owner(folder) or {}
    return owner.get("files") if isinstance(owner.get("files"), list) else None


def write_owner(folder: Path, **extra) -> dict:
    owner = {
        "run_id": uuid.uuid4().hex,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": sys.argv,
        **extra,
    }
    atomic_write_text(folder / OWNER, json.dumps(owner, indent=1) + "\n")
    return owner


def is_stage_of_run(folder: Path) -> bool:
    """A folder that --overwrite is building beside an earlier run, to replace it when complete."""
    owner = read_owner(folder)
    return folder.name == folders.STAGING and bool(owner and owner.get("stage_of"))


def lock_target(out_dir: Path) -> Path:
    """The folder a run's lock guards: its out_dir, or for a staged run the folder it will replace."""
    return out_dir.parent if is_stage_of_run(out_dir) else out_dir


def building(out_dir) -> Path:
    """Where the newest run of out_dir is: the folder an --overwrite run is building beside the earlier
    one while it is unfinished (resume it there), else out_dir itself."""
    stage = folders.staging_dir(out_dir)
    return stage if is_stage_of_run(stage) else Path(out_dir)


# ---- the folder a run writes into ------------------------------------------------------------------------


class RunFolder:
    """with RunFolder(out_dir, init_from, overwrite) as run: train into run.work_dir; run.finish(result).

    Rank 0 (or the only process) locks the folder and records the owner. A scratch run with overwrite in
    a folder holding results writes into <out_dir>/overwrite.partial/, which finish() moves over the old
    run; until then the old run is untouched, whatever happens to the new one."""

    def __init__(self, out_dir: Path, init_from: str, overwrite: bool):
        self.out_dir, self.init_from = Path(out_dir), init_from
        self.is_main = int(os.environ.get("RANK", "0")) == 0
        self.target = lock_target(self.out_dir)
        self.staged = self.target != self.out_dir or (
            init_from == "scratch" and overwrite and bool(earlier_results(self.out_dir))
        )
        self.work_dir = folders.staging_dir(self.target) if self.staged else self.out_dir
        self.lock = folders.FolderLock(self.target, "out_dir", "finegpt train")
        self.recovered = False  # an --overwrite cut short while replacing was finished on entry

    def __enter__(self):
        if not self.is_main:
            return self
        self.target.mkdir(parents=True, exist_ok=True)
        self.lock.__enter__()
        try:
            self.recovered = folders.recover(self.target, "train", self._stale())  # an overwrite cut short
            if self.staged and self.init_from == "scratch":
                folders.fresh_stage(self.target)
                write_owner(self.work_dir, stage_of=str(self.target))
            elif self.init_from == "scratch" or read_owner(self.work_dir) is None:
                write_owner(self.work_dir)
            elif (folders.staging_dir(self.out_dir) / OWNER).is_file() and not self.staged:
                print(
                    f"note: {str(folders.staging_dir(self.out_dir))!r} holds an unfinished --overwrite run; "
                    f"this resumes the earlier run in {str(self.out_dir)!r}",
                    flush=True,
                )
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.is_main:
            self.lock.__exit__(*exc)

    def _stale(self):
        """Which entries of the run in target an overwrite removes: the files its run.json lists (runs of
        older finegpt versions, without a list: the names finegpt train writes)."""
        listed = own_files(self.target)
        return is_run_file if listed is None else set(listed).__contains__

    def check_held(self) -> None:
        """Before each save: the locked folder (and the stage) are still this run's, or one line and stop."""
        if not self.is_main:
            return
        self.lock.check_held()
        if not self.work_dir.is_dir():
            raise folders.gone("out_dir", self.work_dir, "was deleted while this process was writing it")

    def record_files(self, exact: bool = True) -> None:
        """After each save: run.json lists the files this run has written, and whether it is an exact run.
        A failed write (a full disk) keeps the earlier list, which only ever names fewer files."""
        if not self.is_main:
            return
        mine = sorted(p.name for p in self.work_dir.iterdir() if is_run_file(p.name) and not p.name.endswith(".tmp"))
        with contextlib.suppress(OSError):
            update_owner(self.work_dir, files=[n for n in mine if n != folders.STAGING], exact=exact)

    def resume_hint(self) -> str:
        kept = f" (the earlier run in {str(self.target)!r} is kept until this one finishes)" if self.staged else ""
        return f"Resume with `finegpt train --resume --out_dir={shlex.quote(str(self.work_dir))}`{kept}"

    def last_good(self) -> Path | None:
        try:
            return resolve_checkpoint(self.work_dir)
        except Exception:  # noqa: BLE001 -- none yet
            return None

    def finish(self, result: dict) -> dict:
        """The run completed: a staged run now replaces the earlier one."""
        if not (self.staged and self.is_main):
            return result
        names = folders.commit(self.work_dir, self.target, "train", self._stale())
        owner = read_owner(self.target) or {}
        owner.pop("stage_of", None)
        owner["files"] = sorted(set(owner.get("files") or []) | {n for n in names if is_run_file(n)})
        write_owner(self.target, **{k: v for k, v in owner.items() if k not in ("host", "pid", "argv", "created")})
        if result.get("checkpoint"):
            result["checkpoint"] = str(self.target / Path(result["checkpoint"]).name)
        return result
