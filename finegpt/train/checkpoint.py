"""Crash-safe checkpoints: plain data only, written to a temp file, fsynced and renamed.

`<out_dir>/ckpt_NNNNNNN.pt` for the last `keep` iterations, a `latest` pointer naming the newest, and
`<out_dir>/ckpt.pt` as the newest itself. Entry points: save_checkpoint, load_checkpoint, load_model.
A save that fails (disk full) leaves no temp file and says how much space it needs.
"""

from __future__ import annotations

import errno
import os
import pickle
import random
import re
import shlex
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from finegpt.errors import FinegptError, bad
from finegpt.files import NO_SPACE, atomic_write, human_bytes

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


def state_bytes(obj) -> int:
    """The tensor bytes in a (nested) checkpoint dict: what torch.save writes, less a few KiB of structure."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def _last_good(out_dir: Path) -> Path | None:
    try:
        return resolve_checkpoint(out_dir)
    except FinegptError:
        return None


def no_space(out_dir: Path, ckpt: dict, err: OSError) -> FinegptError:
    """The one line for a save that found no room; the previous checkpoint and `latest` are untouched."""
    need = state_bytes(ckpt)
    free = shutil.disk_usage(out_dir).free
    last = _last_good(out_dir)
    then = (
        f"then resume from {str(last)!r} with `finegpt train --resume --out_dir={shlex.quote(str(out_dir))}`"
        if last
        else "then start the run again"
    )
    if err.errno == errno.EFBIG:  # a per-file limit (ulimit -f, FAT32's 4 GiB), not a full disk
        what, fix = "the file system refused a file this large", "Raise the file size limit or use another disk"
    else:
        what, fix = "the disk is full", f"Free at least {human_bytes(max(need - free, 0))} (or lower keep_checkpoints)"
    return bad(
        "out_dir",
        str(out_dir),
        f"{what} ({err.strerror}): the checkpoint of iter {ckpt['iter_num']} needs about {human_bytes(need)} "
        f"and {human_bytes(free)} is free, so it was not saved and no partial file is left",
        f"{fix}, {then}",
    )


def step_checkpoints(out_dir: str | Path) -> list[Path]:
    """The ckpt_NNNNNNN.pt files in out_dir, newest first."""
    out_dir = Path(out_dir)
    found = [(int(m.group(1)), p) for p in out_dir.glob("ckpt_*.pt") if (m := _STEP_NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(ckpt: dict, out_dir: str | Path, keep: int = 3) -> Path:
    """Write ckpt for iteration ckpt['iter_num']; keep the last `keep` step files; return ckpt.pt's path.
    Out of space: a one-line error naming the space needed; every earlier checkpoint is left as it was."""
    try:
        return _save(ckpt, Path(out_dir), keep)
    except OSError as e:
        if e.errno not in NO_SPACE:
            raise
        raise no_space(Path(out_dir), ckpt, e) from e


def _save(ckpt: dict, out_dir: Path, keep: int) -> Path:
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


_FOREIGN_FIX = "Pass a ckpt.pt written by finegpt train, or its out_dir; for GPT-2's own weights use --baseline gpt2"


def _sniff(path: Path) -> str | None:
    """What a file that is no finegpt checkpoint is, when its first bytes tell; None for a PyTorch
    checkpoint (maybe one cut short)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file"
    if head.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(path).namelist()
        except zipfile.BadZipFile:
            return None  # a torch zip whose end is missing: truncated
        if any("/code/" in n for n in names):
            return "a TorchScript model (torch.jit.save)"
        return None if any(n.endswith("data.pkl") for n in names) else "a zip archive of another kind"
    if head[:1] == b"\x80" or not head:
        return None  # a pickle: PyTorch's legacy format
    return "a text file" if b"\x00" not in head else "a binary file of another kind"


def _check_format(ckpt, path: Path) -> None:
    """A dict with finegpt's keys; nanoGPT checkpoints and bare state dicts get their own line."""
    if isinstance(ckpt, dict) and "model_args" in ckpt:
        what = "is a nanoGPT checkpoint (model_args and a flat config), not a finegpt one"
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        what = "holds bare weights (a state dict) without finegpt's model config"
    elif (
        not isinstance(ckpt, dict)
        or not {"model", "iter_num"} <= set(ckpt)
        or not isinstance(ckpt.get("config"), dict)
        or not isinstance(ckpt["config"].get("model"), dict)
    ):
        what = "is not a finegpt checkpoint (no model / iter_num / config)"
    else:
        return
    raise bad("checkpoint", str(path), what, _FOREIGN_FIX)


def load_checkpoint(path_or_out_dir: str | Path, map_location="cpu", mmap: bool = False) -> dict:
    """Load a finegpt checkpoint with torch.load(weights_only=True). A truncated or corrupt file is
    reported with the previous good checkpoint; a file carrying pickled objects is refused, and a file
    of another format is named. mmap=True maps the tensors instead of reading them (for a quick look)."""
    path = resolve_checkpoint(path_or_out_dir)
    if kind := _sniff(path):  # before torch.load, which would warn about (or try to run) some of these
        raise bad("checkpoint", str(path), f"is {kind}, not a finegpt checkpoint", _FOREIGN_FIX)
    try:
        mmap = mmap and zipfile.is_zipfile(path)  # the legacy (pickle) format cannot be mapped
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:  # weights_only refuses anything beyond tensors and plain data
        raise bad(
            "checkpoint",
            str(path),
            "holds pickled Python objects, which can run code when loaded, so finegpt refuses it",
            "Use a checkpoint written by finegpt, or re-save one you trust "
            "with plain data only (state dicts, numbers, strings)",
        ) from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        prev = previous_good(path)
        offer = (
            f"The previous good checkpoint is {str(prev)!r}: move the broken file aside and resume, or load that one"
            if prev
            else "No earlier good checkpoint is beside it; train again from scratch"
        )
        raise bad("checkpoint", str(path), "is truncated or corrupt (could not be read)", offer) from e
    _check_format(ckpt, path)
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


def model_config(ckpt: dict, where):
    """The checkpoint's ModelConfig; keys this version does not know are one line, not a TypeError."""
    from dataclasses import fields

    from finegpt.config import ModelConfig

    saved = ckpt["config"]["model"]
    unknown = sorted(set(saved) - {f.name for f in fields(ModelConfig)})
    if unknown:
        raise bad(
            "checkpoint",
            str(where),
            f"its model config has keys this finegpt does not know ({', '.join(unknown)})",
            "Load it with the finegpt version that wrote it",
        )
    return ModelConfig(**saved)


def load_model(path_or_out_dir: str | Path, device="cpu"):
    """(GPT in eval mode on `device`, checkpoint dict) for sampling and evaluation."""
    from finegpt.model import GPT

    ckpt = load_checkpoint(path_or_out_dir, map_location="cpu")
    model = GPT(model_config(ckpt, path_or_out_dir))
    try:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
    except RuntimeError as e:
        raise FinegptError(
            f"checkpoint={str(path_or_out_dir)!r}: its weights do not match its config "
            f"({str(e).splitlines()[0]}). Use an unmodified finegpt checkpoint."
        ) from e
    return model.to(device).eval(), ckpt
