"""Setting a run up: this process's device and precision, the run resolved once for them (finegpt.run), the
resume point's model settings, and a checkpoint's weights, optimizer state, loss scale and RNG restored.

Entry points: setup_device, resolved_run, resumed_model, restore (finegpt.train.loop calls them in this order);
make_loaders, reads, log_data_plan: the data the run reads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import torch

from finegpt import step
from finegpt.config import ModelConfig, TrainConfig
from finegpt.run import RunConfig, run_config
from finegpt.train import distributed, fsdp
from finegpt.train.checkpoint import clean_state_dict, resolve_checkpoint, set_rng_state


def setup_device(cfg: TrainConfig, d: distributed.Dist) -> tuple[torch.device, torch.dtype]:
    """This process's device and autocast dtype, with PyTorch's global switches for them."""
    device = step.pick_device(cfg.device, d.local_rank)
    dtype = step.pick_dtype(device, cfg.dtype)
    if cfg.deterministic:  # bitwise-repeatable runs: slower kernels, one fixed algorithm each
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~8x fp32 speed on Ampere+
        torch.backends.cudnn.allow_tf32 = True
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device, dtype


def resolved_run(cfg: TrainConfig, device: torch.device, dtype: torch.dtype, d: distributed.Dist) -> RunConfig:
    """The run this process trains, resolved once: the dtype picked for the device, accumulation per rank,
    the parallel mode for d.world_size processes. finegpt.memory predicts and measures the same object."""
    torch_name = str(dtype).removeprefix("torch.")
    return run_config(replace(cfg, dtype=torch_name), d.world_size, device="cpu" if device.type == "cpu" else "cuda")


def resumed_model(ckpt: dict, model_cfg: ModelConfig, d: distributed.Dist) -> ModelConfig:
    """The checkpoint's model settings: the weights fix the shape."""
    saved_cfg = ModelConfig(**ckpt["config"]["model"])
    if saved_cfg != model_cfg and model_cfg != ModelConfig():
        distributed.log(d, f"note: resuming keeps the checkpoint's model settings {asdict(saved_cfg)}")
    return saved_cfg


def restore(parts: step.Parts, ckpt: dict, cfg: TrainConfig, d: distributed.Dist, sharded: bool, out_dir: Path):
    """A resumed run's weights, optimizer state, loss scale and RNG, into parts before step.wrap; returns
    (iter_num, best_val_loss, dcp_dir). An FSDP run's optimizer state lives in its DCP shards (dcp_dir):
    read here unless this run is sharded too, then after step.wrap. The checkpoint is emptied: its host
    copy of the weights is freed."""
    dcp_dir = resolve_checkpoint(out_dir).parent / ckpt["dcp"] if ckpt.get("dcp") else None
    parts.raw_model.load_state_dict(clean_state_dict(ckpt["model"]))
    if dcp_dir is None:
        parts.optimizer.load_state_dict(ckpt["optimizer"])
    elif not sharded:
        fsdp.load_sharded(parts.raw_model, parts.optimizer, dcp_dir)
    if ckpt.get("scaler"):
        parts.scaler.load_state_dict(ckpt["scaler"])
    iter_num, best_val_loss = ckpt["iter_num"], ckpt["best_val_loss"]
    if d.rank == 0:
        set_rng_state(ckpt["rng"])
    else:  # only rank 0's RNG is saved; the others get a fresh stream per resume point
        torch.manual_seed(cfg.seed + d.rank + 1000 * iter_num)
    ckpt.clear()
    return iter_num, best_val_loss, dcp_dir


# ---- the data: loaders, and what the run will read of the prepared tokens ----------------------------


def make_loaders(cfg: TrainConfig, block_size: int, d: distributed.Dist) -> dict:
    """Training batches with cfg.sampling, plus fixed eval batches: eval batch k is the same at every eval,
    and the epoch sampler makes the eval windows distinct as long as the split holds them."""
    from finegpt.data import BatchLoader

    data_dir = cfg.resolved_data_dir()
    eval_b = cfg.eval_batch_size or cfg.batch_size
    kw = dict(rank=d.rank, world_size=d.world_size)
    return {
        "train": BatchLoader(data_dir, "train", cfg.batch_size, block_size, seed=cfg.seed, sampling=cfg.sampling, **kw),
        "eval_train": BatchLoader(data_dir, "train", eval_b, block_size, seed=cfg.seed + 1, sampling="epoch", **kw),
        "eval_val": BatchLoader(data_dir, "val", eval_b, block_size, seed=cfg.seed, sampling="epoch", **kw),
    }


def reads(cfg: TrainConfig, loaders: dict, tokens_read: int):
    """finegpt.data.budget's ReadBudget of the train split after tokens_read tokens."""
    from finegpt.data.budget import read_budget

    prepared = {"train": loaders["train"].num_tokens, "val": loaders["eval_val"].num_tokens}
    return read_budget(tokens_read, prepared, loaders["train"].block_size, cfg.sampling)


def log_data_plan(cfg: TrainConfig, loaders: dict, tokens_per_iter: int, d: distributed.Dist) -> None:
    """Before training: what the run will read of its prepared data, what the val loss scores, and a
    warning naming the `finegpt prepare` that covers the run when it reads more than was prepared."""
    from finegpt.data.budget import eval_summary, over_budget_warning

    distributed.log(d, f"eval: {eval_summary(loaders['eval_val'], cfg.eval_iters)}")
    if cfg.eval_only:
        return
    budget = reads(cfg, loaders, cfg.max_iters * tokens_per_iter)
    distributed.log(d, f"data: {budget.summary()}")
    warning = over_budget_warning(budget, loaders["train"].meta, cfg.resolved_data_dir())
    if warning is not None:
        distributed.log(d, warning)
