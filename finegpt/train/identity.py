"""What makes a resume the same run: the settings that decide the batch stream, recorded in every
checkpoint, and the check that `--resume` keeps them (or names each change and refuses).

Entry points: STREAM_KEYS, stream_record, changes, check_same_run, allowed_changes.
A batch is a pure function of (data, batch_size, world_size, step, seed, sampling, block_size); the
accumulation decides which steps a batch belongs to. Change any and the resumed run reads other windows
than the uninterrupted one would, so its weights differ: an exact resume needs them all unchanged.
"""

from __future__ import annotations

import os

from finegpt.errors import bad

# "data" is the shards' fingerprint (finegpt.data.checks.data_fingerprint): data prepared again in place
STREAM_KEYS = (
    "data",
    "data_dir",
    "batch_size",
    "gradient_accumulation_steps",
    "block_size",
    "sampling",
    "seed",
    "world_size",
)


def stream_record(cfg, block_size: int, world_size: int, fingerprint: str | None, exact: bool = True) -> dict:
    """The checkpoint's record of what decides its batch stream; exact=False once a resume changed any."""
    return {
        "data": fingerprint,
        "data_dir": cfg.resolved_data_dir(),
        "batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "block_size": block_size,
        "sampling": cfg.sampling,
        "seed": cfg.seed,
        "world_size": world_size,
        "exact": exact,
    }


def saved_record(ckpt: dict) -> dict:
    """The checkpoint's record; for one written before records existed, what its saved settings say
    (its fingerprint and world size unknown: those are not compared)."""
    data = ckpt.get("data") or {}
    if isinstance(data.get("stream"), dict):
        return data["stream"]
    train = (ckpt.get("config") or {}).get("train") or {}
    model = (ckpt.get("config") or {}).get("model") or {}
    old = {k: train[k] for k in ("batch_size", "gradient_accumulation_steps", "seed") if k in train}
    old["sampling"] = train.get("sampling", "random")  # before the epoch sampler, windows were random
    old["block_size"] = model.get("block_size")
    old["data_dir"] = data.get("data_dir")
    return old


def _same(key: str, old, new) -> bool:
    if old is None or new is None:  # not recorded: nothing to compare
        return True
    if key == "data_dir":
        return os.path.realpath(str(old)) == os.path.realpath(str(new))
    return old == new


_LAYOUT = ("batch_size", "gradient_accumulation_steps", "world_size")


def _same_global_batch(old: dict, new: dict) -> bool:
    """2 ranks x batch_size B read, at each micro-step, exactly the rows 1 rank x 2B reads (the loader's
    contract): a new world size that keeps rows per micro-step and micro-steps per step is the same stream."""
    try:
        b0, g0, w0 = (int(old[k]) for k in _LAYOUT)
        b1, g1, w1 = (int(new[k]) for k in _LAYOUT)
    except (KeyError, TypeError, ValueError):
        return False
    return b0 * w0 == b1 * w1 and g0 * w1 == g1 * w0


def changes(old: dict, new: dict) -> dict:
    """{key: (old, new)} for each recorded setting that differs (a new world size with the batch and
    accumulation that keep the global batch is no change)."""
    found = {k: (old.get(k), new.get(k)) for k in STREAM_KEYS if not _same(k, old.get(k), new.get(k))}
    if set(found) & set(_LAYOUT) and _same_global_batch(old, new):
        found = {k: v for k, v in found.items() if k not in _LAYOUT}
    return found


def _shown(key: str, old, new) -> str:
    if key == "data":
        return f"data fingerprint {old} -> {new} (the shards were prepared again)"
    return f"{key} {old!r} -> {new!r}"


def allowed_changes(value) -> set[str]:
    """--resume_changed=batch_size,data: the recorded settings a resume may change on purpose."""
    if not value:
        return set()
    names = {n.strip() for n in (value.split(",") if isinstance(value, str) else value) if n.strip()}
    unknown = sorted(names - set(STREAM_KEYS))
    if unknown:
        raise bad(
            "resume_changed",
            ",".join(sorted(names)),
            f"names no recorded setting ({', '.join(unknown)})",
            f"Use some of {','.join(STREAM_KEYS)}",
        )
    return names


def check_same_run(out_dir, old: dict, new: dict, allowed: set[str]) -> dict:
    """The changes a resume makes, all allowed; else one line naming each, its old and its new value."""
    found = changes(old, new)
    refused = {k: v for k, v in found.items() if k not in allowed}
    if refused:
        listed = "; ".join(_shown(k, *v) for k, v in refused.items())
        flag = ",".join(found)
        raise bad(
            "resume",
            str(out_dir),
            f"would not continue the same run, since its checkpoint was written with other settings: {listed}",
            "Resume with the checkpoint's settings (leave these out), or pass "
            f"--resume_changed={flag} to continue anyway (logged in metrics.jsonl; the run is no longer exact)",
        )
    return found
