"""Crash-safe checkpoints: plain data only, written to a temp file, fsynced and renamed.

`<out_dir>/ckpt_NNNNNNN.pt` for the last `keep` iterations, a `latest` pointer naming the newest, and
`<out_dir>/ckpt.pt` as the newest itself. Entry points: save_checkpoint, load_checkpoint, load_model.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from finegpt.errors import FinegptError, bad
from finegpt.files import atomic_write

_STEP_NAME = re.compile(r"^ckpt_(\d{7,})\.pt$")


# ---- RNG states as plain data ------------------------------------------------------------------


def rng_state() -> dict:
    """Every RNG a training step can touch, as tensors / ints / lists (weights_only can load them)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(mt), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- writing -----------------------------------------------------------------------------------


def step_checkpoints(out_dir: str | Path) -> list[Path]:
    """The ckpt_NNNNNNN.pt files in out_dir, newest first."""
    out_dir = Path(out_dir)
    found = [(int(m.group(1)), p) for p in out_dir.glob("ckpt_*.pt") if (m := _STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def clear_run(out_dir: str | Path) -> None:
    """Remove an earlier run's checkpoints, pointer and metrics log: a scratch run is replacing it."""
    out_dir = Path(out_dir)
    for path in [*step_checkpoints(out_dir), out_dir / "ckpt.pt", out_dir / "latest", out_dir / "metrics.jsonl"]:
        path.unlink(missing_ok=True)
    for shards in out_dir.glob("dcp_*"):
        if shards.is_dir():
            shutil.rmtree(shards)


def save_checkpoint(ckpt: dict, out_dir: str | Path, keep: int = 3) -> Path:
    """Write ckpt for iteration ckpt['iter_num']; keep the last `keep` step files; return ckpt.pt's path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.pt.tmp"):  # left by a run killed while writing
        stale.unlink(missing_ok=True)
    newest = out_dir / "ckpt.pt"
    if keep == 0:  # only ckpt.pt
        atomic_write(newest, lambda f: torch.save(ckpt, f), sync_dir=False)
        atomic_write(out_dir / "latest", lambda f: f.write(b"ckpt.pt\n"))
        return newest
    step_path = out_dir / f"ckpt_{ckpt['iter_num']:07d}.pt"
    atomic_write(step_path, lambda f: torch.save(ckpt, f), sync_dir=False)
    tmp = newest.with_name("ckpt.pt.tmp")
    try:  # ckpt.pt is a second name for the step file: no second copy on disk
        os.link(step_path, tmp)
    except OSError:  # a filesystem without hard links: a copy
        atomic_write(newest, lambda f: f.write(step_path.read_bytes()), sync_dir=False)
    else:
        os.replace(tmp, newest)
    atomic_write(out_dir / "latest", lambda f: f.write(f"{step_path.name}\n".encode()))
    for old in step_checkpoints(out_dir)[keep:]:
        old.unlink(missing_ok=True)
    return newest


# ---- reading -----------------------------------------------------------------------------------


def resolve_checkpoint(path_or_out_dir: str | Path) -> Path:
    """A checkpoint file, or in a directory: ckpt.pt, else the file `latest` names, else the newest step file."""
    path = Path(path_or_out_dir)
    if path.is_file():
        return path
    if not path.is_dir():
        raise bad(
            "checkpoint",
            str(path),
            "no such file or directory",
            "Pass a checkpoint file or the out_dir of a training run",
        )
    if (path / "ckpt.pt").is_file():
        return path / "ckpt.pt"
    latest = path / "latest"
    if latest.is_file() and (path / latest.read_text().strip()).is_file():
        return path / latest.read_text().strip()
    steps = step_checkpoints(path)
    if steps:
        return steps[0]
    raise bad(
        "out_dir",
        str(path),
        "holds no checkpoint (no ckpt.pt)",
        "Train first (finegpt train), or point at the out_dir of an earlier run",
    )


def _load_raw(path: Path, map_location) -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def previous_good(path: Path) -> Path | None:
    """The newest step checkpoint beside `path` that is not `path` (nor a second name for it) and loads."""
    same = path.stat() if path.exists() else None
    for candidate in step_checkpoints(path.parent):
        if candidate == path or (same is not None and os.path.samefile(candidate, path)):
            continue
        try:
            _load_raw(candidate, "cpu")
        except Exception:
            continue
        return candidate
    return None


def load_checkpoint(path_or_out_dir: str | Path, map_location="cpu") -> dict:
    """Load a finegpt checkpoint with torch.load(weights_only=True). A truncated or corrupt file is
    reported with the previous good checkpoint; a file carrying pickled objects is refused."""
    path = resolve_checkpoint(path_or_out_dir)
    try:
        ckpt = _load_raw(path, map_location)
    except pickle.UnpicklingError as e:  # weights_only refuses anything beyond tensors and plain data
        raise bad(
            "checkpoint",
            str(path),
            "holds pickled Python objects, which can run code when loaded, so finegpt refuses it",
            "Use a checkpoint written by finegpt, or re-save one you trust "
            "with plain data only (state dicts, numbers, strings)",
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        prev = previous_good(path)
        offer = (
            f"The previous good checkpoint is {str(prev)!r}: move the broken file aside and resume, or load that one"
            if prev
            else "No earlier good checkpoint is beside it; train again from scratch"
        )
        raise bad("checkpoint", str(path), "is truncated or corrupt (could not be read)", offer) from e
    if not isinstance(ckpt, dict) or not {"model", "iter_num", "config"} <= set(ckpt):
        raise bad(
            "checkpoint",
            str(path),
            "is not a finegpt checkpoint (no model / iter_num / config)",
            "Use a file written by finegpt train",
        )
    return ckpt


def clean_state_dict(state: dict) -> dict:
    """Drop the prefixes torch.compile (`_orig_mod.`) and DDP (`module.`) add to parameter names."""
    out = {}
    for key, value in state.items():
        for prefix in ("_orig_mod.", "module."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def load_model(path_or_out_dir: str | Path, device="cpu"):
    """(GPT in eval mode on `device`, checkpoint dict) for sampling and evaluation."""
    from finegpt.config import ModelConfig
    from finegpt.model import GPT

    ckpt = load_checkpoint(path_or_out_dir, map_location="cpu")
    model = GPT(ModelConfig(**ckpt["config"]["model"]))
    try:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
    except RuntimeError as e:
        raise FinegptError(
            f"checkpoint={str(path_or_out_dir)!r}: its weights do not match its config "
            f"({str(e).splitlines()[0]}). Use an unmodified finegpt checkpoint."
        ) from e
    return model.to(device).eval(), ckpt
