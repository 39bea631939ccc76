"""torchrun support: one process per device, DDP over NCCL (GPU) or gloo (CPU).

`torchrun --standalone --nproc_per_node=N -m finegpt train ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
without them training runs in one process. Entry points: setup, all_mean, barrier, teardown. Wrapping the
model (DDP, FSDP2) and skipping the sync between micro-steps are finegpt.step's; FSDP checkpoints are
finegpt.train.fsdp's.
"""

from __future__ import annotations

import os
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


def log(d: Dist, msg: str) -> None:
    """print on rank 0 only, flushed: one line per event, whatever the number of processes."""
    if d.is_main:
        print(msg, flush=True)
