"""FSDP2: shard each transformer block and the root with `fully_shard`, checkpoint with DCP.

Each rank keeps 1/N of the weights, gradients and AdamW states; a block's full weights exist only
while it runs. Entry points: shard_model, shard, sharded_scaler, load_sharded, save_sharded.
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
    get_optimizer_state_dict,
    get_state_dict,
    set_optimizer_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

from finegpt.files import fsync_dir
from finegpt.train.checkpoint import save_checkpoint, step_checkpoints


def mixed_precision(device: torch.device, dtype: torch.dtype) -> MixedPrecisionPolicy:
    """16-bit gathered weights for compute on GPU, gradients reduced in fp32; fp32 throughout on CPU."""
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()


def shard_model(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """fully_shard each block, then the root, in place. The root owns the embeddings, ln_f and the
    lm_head, so the tied wte / lm_head weight stays one parameter in one shard group."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper: shard the module it runs
    mp = mixed_precision(device, dtype)
    for block in model.transformer.h:
        fully_shard(block, mp_policy=mp)
    fully_shard(model, mp_policy=mp)
    return model


def _by_name(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def shard(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    dtype: torch.dtype,
    dcp_dir: Path | None = None,
) -> torch.optim.Optimizer:
    """Shard `model` in place and return an optimizer of the same kind and groups over the shards.
    State the old optimizer held (a resumed DDP / one-process checkpoint) is carried over, split
    across ranks; with dcp_dir, weights and optimizer state come from that FSDP checkpoint instead."""
    names = _by_name(model)
    full_state = get_optimizer_state_dict(model, optimizer) if optimizer.state else None  # keyed by name
    group_names = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    for t in [*model.parameters(), *model.buffers()]:  # every rank shards rank 0's weights, as DDP would
        dist.broadcast(t.data, src=0)
    shard_model(model, device, dtype)
    params = dict(model.named_parameters())  # the same names, now DTensor shards
    groups = [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [params[n] for n in group]}
        for g, group in zip(optimizer.param_groups, group_names)
    ]
    sharded = type(optimizer)(groups)
    if dcp_dir is not None:
        load_sharded(model, sharded, dcp_dir)
    elif full_state is not None:
        set_optimizer_state_dict(model, sharded, full_state, options=StateDictOptions(full_state_dict=True))
    return sharded


def sharded_scaler(scaler: torch.amp.GradScaler) -> torch.amp.GradScaler:
    """fp16 under FSDP: a rank sees only its own shard of the gradients, so the inf check must be
    all-reduced before every rank decides to skip a step; ShardedGradScaler does that."""
    if not scaler.is_enabled():
        return scaler
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

    sharded = ShardedGradScaler(getattr(scaler, "_device", "cuda"))
    sharded.load_state_dict(scaler.state_dict())
    return sharded


# ---- checkpoints -------------------------------------------------------------------------------


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
