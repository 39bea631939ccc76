"""Where a prepare writes: resume an unfinished job in place, refuse a folder holding other data, or with
--overwrite build the new shards beside the old ones and replace them only once they are complete.

Entry points: plan_output (read-only), make_writable, clear_stale, commit_output, recover_output.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

from finegpt import folders
from finegpt.data.shards import META
from finegpt.data.sources import source_changes
from finegpt.errors import FinegptError, bad
from finegpt.files import human_bytes

MANIFEST, STATS = "manifest.json", "stats.json"


def is_prepare_file(name: str) -> bool:
    """A file this tool writes: shards, meta / manifest / stats, and their temp names."""
    return (
        (name.endswith(".bin") and name.startswith(("train_", "val_")))
        or name.endswith(".tmp")
        or name in (META, MANIFEST, STATS)
    )


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _same_job(a: dict | None, b: dict) -> bool:
    """The same settings; the file list is compared with the sources' fingerprint, which says what changed."""
    drop = ("files", "data_files")
    return a is not None and {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }


def _resumable(folder: Path, job: dict, spec: dict) -> tuple[dict | None, str | None]:
    """(manifest, None): an unfinished prepare of this job with unchanged sources; (None, what changed): one
    whose sources changed since; (None, None): anything else."""
    m = _manifest(folder)
    if m is None or (folder / META).is_file() or not _same_job(m.get("job"), job):
        return None, None
    changed = source_changes(m.get("sources"), spec)
    if changed is None and m["job"] != job:  # no fingerprint recorded, but the file list moved
        changed = "its files are not the ones this prepare started with"
    return (None, changed) if changed else (m, None)


def plan_output(out: Path, job: dict, spec: dict, overwrite: bool) -> tuple[Path, dict | None]:
    """(folder to write into, manifest to resume or None). Reads only: a refusal leaves everything as it was."""
    if out.exists() and not out.is_dir():
        raise bad("out", str(out), "exists and is not a directory", "Choose a folder for the shards with --out")
    entries = sorted(p.name for p in out.iterdir() if p.name != folders.LOCK) if out.is_dir() else []
    if not entries:
        return out, None
    manifest, changed = _resumable(out, job, spec)
    if manifest is not None:
        return out, manifest
    if overwrite:  # build beside the old data; it is replaced only once the new shards are complete
        stage = folders.staging_dir(out)
        return stage, _resumable(stage, job, spec)[0]
    if changed:
        raise bad(
            "source",
            job["source"],
            f"changed since the unfinished prepare in {str(out)!r} started: {changed}",
            "Restore the old files and rerun to resume, or pass --overwrite to start over from the new ones",
        )
    m = _manifest(out)
    if m and _same_job(m.get("job"), job):
        why = "already holds this prepared data"
    elif m and not (out / META).is_file():
        why = "holds an unfinished prepare of a different job"
    else:
        why = f"is not empty ({len(entries)} entries, e.g. {entries[0]})"
    raise bad("out", str(out), why, "Pass --overwrite to replace it, or choose another --out")


def make_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise bad(
            "out", str(out), f"cannot be written ({e.strerror or e})", "Choose a folder you can write to with --out"
        ) from e


def _free_bytes(out: Path) -> int:
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return shutil.disk_usage(existing).free


def check_space(out: Path, need_bytes: int | None) -> None:
    """Before anything is written: room for the shards this prepare will write (when their size is known)."""
    if need_bytes is None:
        return
    free = _free_bytes(out)
    if free < need_bytes:
        raise bad(
            "out",
            str(out),
            f"has {human_bytes(free)} free, but the shards need about {human_bytes(need_bytes)}",
            "Free some disk space, prepare fewer --tokens, or choose another --out",
        )


def no_space(out: Path, work: Path, err: OSError) -> FinegptError:
    """The one line for a prepare that ran out of room: the shards written so far are whole (each was
    written to a temp name, which is removed), and the same command resumes after them."""
    done = _manifest(work) or {"shards": []}
    tokens = sum(s["tokens"] for s in done["shards"])
    kept = f" (the data already in {str(out)!r} is untouched)" if work != out else ""
    what = "the file system refused a file this large" if err.errno == errno.EFBIG else "the disk is full"
    return bad(
        "out",
        str(out),
        f"{what} ({err.strerror}) with {human_bytes(_free_bytes(work))} free: {len(done['shards'])} shards "
        f"({tokens:,} tokens) are complete and no partial file is left{kept}",
        "Free some disk space or choose another --out, then rerun the same command to resume",
    )


def clear_stale(out: Path, keep: set[str]) -> None:
    """Remove this tool's files that a resumed manifest doesn't list (stale shards, temp files)."""
    for p in out.iterdir():
        if is_prepare_file(p.name) and p.name not in keep and p.is_file():
            p.unlink()


def _listed(out: Path) -> set[str]:
    """The old data's own files, as its meta.json and manifest.json list them: all an overwrite removes."""
    names = {META, MANIFEST, STATS}
    for index in (META, MANIFEST):
        try:
            names |= {s["file"] for s in json.loads((out / index).read_text())["shards"]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return names


def commit_output(stage: Path, out: Path) -> None:
    """Move the complete new shards over the old; meta.json leaves first and comes back last. Of the old
    entries, only the files its meta.json / manifest.json list are removed: a user's own files stay."""
    folders.commit(stage, out, "prepare", _listed(out).__contains__, first_removed=(META,))


def recover_output(out: Path) -> bool:
    return folders.recover(out, "prepare", _listed(out).__contains__, first_removed=(META,))
