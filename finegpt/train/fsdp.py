"""FSDP2 checkpoints: each rank's shards through torch.distributed.checkpoint (DCP), beside the usual ckpt file.

The sharding itself (fully_shard on each block, then the root) is finegpt.step.shard. Entry points:
load_sharded, save_sharded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from finegpt.files import fsync_dir
from finegpt.train.checkpoint import save_checkpoint, step_checkpoints


def load_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer, dcp_dir: Path) -> None:
    """Weights and optimizer state from a DCP directory, resharded to this run's ranks (any number,
    also one process without FSDP)."""
    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(dcp_dir), no_dist=not dist.is_initialized())
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])


def _dcp_name(iter_num: int) -> str:
    return f"dcp_{iter_num:07d}"


def save_sharded(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, out_dir: Path, keep: int, is_main: bool
) -> Path | None:
    """Called on every rank. Each writes its shards into <out_dir>/dcp_NNNNNNN.tmp, renamed whole once
    all are done; then rank 0 writes the usual ckpt file whose `dcp` names that directory and whose
    `model` is the full weights (gathered to CPU), so load_model works as for any run. Returns
    ckpt.pt's path on rank 0, None elsewhere."""
    out_dir = Path(out_dir)
    name = _dcp_name(state["iter_num"])
    tmp, final = out_dir / f"{name}.tmp", out_dir / name
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # left by a run killed while writing
    dist.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp))
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    dist.barrier()  # every rank's shards are on disk
    path = None
    if is_main:
        if final.exists():  # the same iteration written again (a resumed run): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(out_dir)
        path = save_checkpoint({**state, "model": full, "optimizer": {}, "dcp": name}, out_dir, keep)
        kept = {_dcp_name(int(p.stem.split("_")[1])) for p in step_checkpoints(out_dir)} | {name}
        for old in out_dir.glob("dcp_*"):
            if old.is_dir() and old.name not in kept:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return path
