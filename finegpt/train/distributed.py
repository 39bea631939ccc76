"""torchrun support: one process per device, DDP over NCCL (GPU) or gloo (CPU).

`torchrun --standalone --nproc_per_node=N -m finegpt train ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
without them training runs in one process. Entry points: setup, wrap_model, no_sync, all_mean, teardown.
FSDP2 sharding lives in finegpt.train.fsdp.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from finegpt.errors import bad


@dataclass
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0  # rank 0 logs and writes checkpoints


def setup(backend: str = "auto", device_type: str = "cpu") -> Dist:
    """Join the process group torchrun describes in the environment, or run alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return Dist()
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend not in ("nccl", "gloo"):
        raise bad("backend", backend, "is not supported", "Use backend='auto', 'nccl' (GPU) or 'gloo' (CPU)")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(
        rank=dist.get_rank(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=dist.get_world_size(),
        enabled=True,
    )


def local_accumulation(gradient_accumulation_steps: int, world_size: int) -> int:
    """Each rank runs its share of the micro-steps, so tokens per step do not change with N."""
    if gradient_accumulation_steps % world_size:
        raise bad(
            "gradient_accumulation_steps",
            gradient_accumulation_steps,
            f"not divisible by the {world_size} processes",
            f"Use a multiple of {world_size}, e.g. {world_size * max(1, gradient_accumulation_steps // world_size)}",
        )
    return gradient_accumulation_steps // world_size


def wrap_model(
    model: torch.nn.Module, d: Dist, device: torch.device, fsdp: bool = False, dtype: torch.dtype = torch.float32
) -> torch.nn.Module:
    """DDP around the (maybe compiled) model, or with fsdp=True FSDP2's fully_shard in place. FSDP2
    swaps in new (sharded) parameters: build the optimizer afterwards, or use fsdp.shard."""
    if not d.enabled:
        return model
    if fsdp:
        from finegpt.train.fsdp import shard_model

        shard_model(model, device, dtype)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index if device.index is not None else d.local_rank] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def no_sync(model: torch.nn.Module, last_micro_step: bool):
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP2) on all but the last micro-step of
    an accumulation. FSDP2 then holds full-size gradients until the last micro-step: fewer messages,
    more memory."""
    root = getattr(model, "_orig_mod", model)
    if hasattr(root, "set_requires_gradient_sync"):  # an FSDP2 module
        root.set_requires_gradient_sync(last_micro_step)
        return nullcontext()
    if last_micro_step or not hasattr(model, "no_sync"):
        return nullcontext()
    return model.no_sync()


def all_mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean over ranks (a copy); the value itself when running alone."""
    if not d.enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / d.world_size


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
