"""The training loop: nanoGPT's train.py as a function, with exact resume, DDP and FSDP2.

train(model_cfg, train_cfg, callback=None) -> {"history", "final_val_loss", "best_val_loss", "checkpoint", ...}.
It reads as train.py does: checks, device, resume point, data, model, then the loop (learning rate,
eval + checkpoint, one step, log). The step itself is finegpt.step's, the one finegpt.memory measures.
Every check runs first (finegpt.train.preflight); the run folder is locked and owned (rundir), and
Ctrl-C / SIGTERM save before stopping (interrupt). Pieces a notebook can use alone: get_lr, estimate_loss,
model_vocab.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from finegpt import memory, step
from finegpt.config import ModelConfig, TrainConfig, config_dict, local_accumulation
from finegpt.errors import FinegptError
from finegpt.progress import progress
from finegpt.tracking import open_trackers
from finegpt.train import distributed, fsdp
from finegpt.train.checkpoint import (
    clean_state_dict,
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from finegpt.train.interrupt import GracefulStop
from finegpt.train.preflight import model_vocab, preflight
from finegpt.train.rundir import RunFolder

# ---- schedule, data, eval --------------------------------------------------------------------------


def get_lr(it: int, cfg: TrainConfig) -> float:
    """nanoGPT's schedule: linear warmup for warmup_iters, cosine to min_lr at lr_decay_iters, then flat."""
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    decay_ratio = (it - cfg.warmup_iters) / max(1, cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


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

    _log(d, f"eval: {eval_summary(loaders['eval_val'], cfg.eval_iters)}")
    if cfg.eval_only:
        return
    budget = reads(cfg, loaders, cfg.max_iters * tokens_per_iter)
    _log(d, f"data: {budget.summary()}")
    warning = over_budget_warning(budget, loaders["train"].meta, cfg.resolved_data_dir())
    if warning is not None:
        _log(d, warning)


def estimate_loss(parts: step.Parts, loaders: dict, eval_iters: int, d: distributed.Dist | None = None) -> dict:
    """Mean loss over the same eval_iters batches of each split (averaged over ranks under DDP)."""
    d = d or distributed.Dist()
    return {
        split: distributed.all_mean(step.eval_loss(parts, loaders[f"eval_{split}"], eval_iters), d).item()
        for split in ("train", "val")
    }


def diverged(loss: float, iter_num: int, last_ckpt) -> FinegptError:
    where = f"Last good checkpoint: {str(last_ckpt)!r}" if last_ckpt else "No checkpoint was saved yet"
    return FinegptError(
        f"loss={loss}: training diverged at iter {iter_num}. {where}. Lower learning_rate "
        f"or raise warmup_iters, then resume from it with --resume."
    )


def _log(d: distributed.Dist, msg: str) -> None:
    if d.is_main:
        print(msg, flush=True)


# ---- setting up: device, resume point, model ---------------------------------------------------------


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


def resumed_model(ckpt: dict, model_cfg: ModelConfig, d: distributed.Dist) -> ModelConfig:
    """The checkpoint's model settings: the weights fix the shape."""
    saved_cfg = ModelConfig(**ckpt["config"]["model"])
    if saved_cfg != model_cfg and model_cfg != ModelConfig():
        _log(d, f"note: resuming keeps the checkpoint's model settings {asdict(saved_cfg)}")
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


# ---- the run's state: what nanoGPT's train.py keeps in globals -----------------------------------------


@dataclass
class Run:
    """One run's settings, parts, counters and logs, and what it does at an eval and a log line."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    d: distributed.Dist
    parts: step.Parts
    data: dict  # {"data_dir", "tokenizer", "vocab_size"}, saved in every checkpoint
    out_dir: Path  # where checkpoints go: cfg.out_dir, or the folder an --overwrite run is built in
    sharded: bool = False  # FSDP2: every rank writes its shards of each checkpoint
    iter_num: int = 0
    best_val_loss: float = float("inf")
    last_ckpt: Path | None = None
    saved_at: int = 0  # the iteration of the newest checkpoint on disk
    final_val: float | None = None
    history: list = field(default_factory=list)
    trackers: object = None
    callback: object = None

    def emit(self, row: dict) -> None:
        """A logged row: kept, sent to the trackers, shown to the callback (rank 0 only)."""
        self.history.append(row)
        if self.trackers is not None:
            self.trackers.log(row["iter"], {k: v for k, v in row.items() if k != "iter"})
        if self.callback is not None and self.d.is_main:
            self.callback(dict(row))

    def save(self) -> Path | None:
        """A checkpoint of this iteration; returns ckpt.pt's path (None on ranks other than 0)."""
        cfg, parts = self.cfg, self.parts
        state = {
            "scaler": parts.scaler.state_dict() if parts.scaler.is_enabled() else {},
            "rng": rng_state(),
            "iter_num": self.iter_num,
            "best_val_loss": self.best_val_loss,
            "config": config_dict(self.model_cfg, cfg),
            "data": self.data,
        }
        if self.sharded:  # every rank writes its shards; rank 0 adds the full weights for load_model
            return fsdp.save_sharded(
                parts.raw_model, parts.optimizer, state, self.out_dir, cfg.keep_checkpoints, self.d.is_main
            )
        state.update(model=parts.raw_model.state_dict(), optimizer=parts.optimizer.state_dict())
        return save_checkpoint(state, self.out_dir, cfg.keep_checkpoints)

    def evaluate(self, loaders: dict, lr: float, may_save: bool) -> None:
        """Both splits' losses, logged; a checkpoint when val improved, or always with always_save_checkpoint.
        may_save=False at the iteration a run resumed from: that checkpoint is already on disk."""
        cfg, d = self.cfg, self.d
        losses = estimate_loss(self.parts, loaders, cfg.eval_iters, d)
        if not all(map(math.isfinite, losses.values())):
            raise diverged(losses["val"], self.iter_num, self.last_ckpt)
        self.final_val = losses["val"]
        _log(d, f"iter {self.iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        if d.is_main:
            self.emit({"iter": self.iter_num, "train/loss": losses["train"], "val/loss": losses["val"], "lr": lr})
        if (losses["val"] < self.best_val_loss or cfg.always_save_checkpoint) and not cfg.eval_only:
            self.best_val_loss = min(self.best_val_loss, losses["val"])
            if may_save and (d.is_main or self.sharded):
                self.last_ckpt, self.saved_at = self.save() or self.last_ckpt, self.iter_num
                _log(d, f"saved checkpoint iter {self.iter_num} to {self.last_ckpt}")
        distributed.barrier(d)

    def log_step(self, lossf: float, lr: float, dt_s: float, data_s: float, tokens: int, peak_flops, budget) -> None:
        """One row for the last log_interval steps, which took dt_s (data_s of it fetching batches) for `tokens`;
        budget: the ReadBudget of the train split so far (tokens read, distinct tokens, epochs)."""
        flops = memory.flops_per_token(self.model_cfg) * tokens  # 6N + 12·L·C·T per token, nanoGPT's estimate_mfu
        mfu = flops / dt_s / (peak_flops * self.d.world_size) if peak_flops else None
        row = {
            "iter": self.iter_num,
            "loss": lossf,
            "lr": lr,
            "tokens_per_s": tokens / max(dt_s, 1e-9),
            "mfu": mfu,
            "dt_s": dt_s / self.cfg.log_interval,
            "data_share": data_s / max(dt_s, 1e-9),
            "tokens_read": budget.tokens_read,
            "distinct_tokens": budget.distinct_tokens,
            "epoch": budget.epochs,
        }
        print(
            f"iter {self.iter_num}: loss {lossf:.4f}, lr {lr:.2e}, {row['tokens_per_s']:,.0f} tokens/s"
            + (f", mfu {100 * mfu:.1f}%" if mfu is not None else "")
            + f", data {100 * row['data_share']:.1f}%, epoch {row['epoch']:.2f}",
            flush=True,
        )
        self.emit(row)

    def result(self) -> dict:
        return {
            "history": self.history,
            "final_val_loss": self.final_val,
            "best_val_loss": self.best_val_loss,
            "checkpoint": str(self.last_ckpt) if self.last_ckpt else None,
            "iter_num": self.iter_num,
            "model_config": asdict(self.model_cfg),
            "model": self.parts.raw_model,
        }


# ---- the loop --------------------------------------------------------------------------------------


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    callback=None,
    overwrite: bool = False,
    checkpoint: dict | None = None,
) -> dict:
    """Train (or with init_from='resume', continue) a GPT; return the logged metrics and the checkpoint.
    A scratch run refuses an out_dir that holds an earlier run's results unless overwrite=True; then the
    new run is built beside the old one, which it replaces only once it has finished. Ctrl-C / SIGTERM
    finish the step, save, and raise TrainingInterrupted (a KeyboardInterrupt) saying how to resume.
    checkpoint: the resume point when the caller has read it already (`finegpt train --resume` does, for
    its settings); it is emptied once restored, so its host copy of the weights is freed.

    Logged rows: {"iter", "loss", "lr", "tokens_per_s", "mfu", "dt_s", "data_share", "tokens_read",
    "distinct_tokens", "epoch"} every log_interval steps (data_share: the part of dt_s the host spent
    fetching batches; epoch: tokens read / one pass over the train split), and
    {"iter", "train/loss", "val/loss", "lr"} at each eval. callback(row) sees each row (rank 0 only).
    """
    cfg = train_cfg
    checkpoint = preflight(model_cfg, cfg, overwrite, checkpoint)  # every check, before the run folder is touched
    device_type = (
        "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    with RunFolder(Path(cfg.out_dir), cfg.init_from, overwrite) as run:  # lock, owner; --overwrite stages
        if run.recovered:  # an --overwrite cut short was finished just now: the checkpoint read may be the old one
            checkpoint = None
        with GracefulStop(run.last_good, run.resume_hint()) as stop:
            d = distributed.setup(cfg.backend, device_type)
            try:
                result = _train(model_cfg, cfg, d, callback, checkpoint, run.work_dir, stop)
            finally:
                distributed.teardown(d)
        return run.finish(result)


def _train(model_cfg: ModelConfig, cfg: TrainConfig, d: distributed.Dist, callback, ckpt, out_dir, stop) -> dict:
    """train() inside its locked run folder: out_dir is where this run writes (run.work_dir)."""
    device, dtype = setup_device(cfg, d)
    if cfg.init_from == "resume":
        ckpt = ckpt or load_checkpoint(out_dir, map_location="cpu")  # read once: weights, state and settings
        model_cfg = resumed_model(ckpt, model_cfg, d)
        _log(d, f"resuming from {resolve_checkpoint(out_dir)} at iter {ckpt['iter_num']}")

    loaders = make_loaders(cfg, model_cfg.block_size, d)
    shards = loaders["train"]
    data = {"data_dir": cfg.resolved_data_dir(), "tokenizer": str(shards.tokenizer), "vocab_size": shards.vocab_size}
    model_cfg = model_vocab(model_cfg, data["vocab_size"], data["tokenizer"], data["data_dir"])
    gas = local_accumulation(cfg.gradient_accumulation_steps, d.world_size)

    torch.manual_seed(cfg.seed + d.rank)
    np.random.seed(cfg.seed + d.rank)
    parts = step.build(
        model_cfg,
        device,
        dtype,
        activation_checkpointing=cfg.activation_checkpointing,
        weight_decay=cfg.weight_decay,
        learning_rate=cfg.learning_rate,
        betas=(cfg.beta1, cfg.beta2),
    )
    parts.raw_model.loss_chunks = cfg.loss_chunks  # the loss in chunks, logits recomputed in backward (0: off)
    sharded = cfg.fsdp and d.enabled  # FSDP2 under torchrun; one process has nothing to shard
    iter_num, best_val_loss, dcp_dir = 0, float("inf"), None
    if cfg.init_from == "resume":
        iter_num, best_val_loss, dcp_dir = restore(parts, ckpt, cfg, d, sharded, out_dir)
    parallel = ("fsdp" if sharded else "ddp") if d.enabled else None
    parts = step.wrap(parts, compile=cfg.compile, parallel=parallel)
    if sharded and dcp_dir is not None:  # weights and optimizer state from the shards, resharded to this run
        fsdp.load_sharded(parts.raw_model, parts.optimizer, dcp_dir)

    run = Run(cfg, model_cfg, d, parts, data, out_dir, sharded, iter_num, best_val_loss, callback=callback)
    if (out_dir / "ckpt.pt").exists():
        run.last_ckpt = out_dir / "ckpt.pt"
    run.trackers = open_trackers(cfg, out_dir, config_dict(model_cfg, cfg)) if d.is_main else None
    try:
        _loop(run, loaders, gas, stop)
    finally:
        if run.trackers is not None:
            run.trackers.close()
    return run.result()


def _loop(run: Run, loaders: dict, gas: int, stop: GracefulStop) -> None:
    """nanoGPT's training loop: set the learning rate, eval (and checkpoint), one step, log; until max_iters,
    or until Ctrl-C / SIGTERM, which save the step just finished and stop."""
    cfg, d, parts = run.cfg, run.d, run.parts
    tokens_per_iter = gas * d.world_size * cfg.batch_size * run.model_cfg.block_size
    name = step.gpu_name(parts.device)
    peak_flops = memory.peak_flops(name, str(parts.dtype).removeprefix("torch.")) if name else None
    _log(
        d,
        f"{parts.raw_model.get_num_params() / 1e6:.2f}M parameters | {tokens_per_iter:,} tokens/iter | "
        f"{parts.device} {str(parts.dtype).removeprefix('torch.')} | world_size {d.world_size}",
    )
    log_data_plan(cfg, loaders, tokens_per_iter, d)
    batches = step.Prefetch(loaders["train"], parts.device)
    start_iter = run.iter_num
    run.saved_at = start_iter  # the resume point is already on disk
    total_tokens, done_tokens = cfg.max_iters * tokens_per_iter, start_iter * tokens_per_iter
    # a context manager: in a terminal the bar routes print() above itself until it closes, Ctrl-C included
    with progress(total_tokens, "train", initial=done_tokens, enabled=d.is_main and not cfg.eval_only) as bar:
        t0 = time.time()
        stop.arm()
        while True:
            lr = get_lr(run.iter_num, cfg)
            for group in parts.optimizer.param_groups:
                group["lr"] = lr
            if run.iter_num % cfg.eval_interval == 0 or run.iter_num == cfg.max_iters or cfg.eval_only:
                run.evaluate(loaders, lr, may_save=run.iter_num > start_iter)
                t0, batches.busy_s = time.time(), 0.0  # eval time is not training time
            if cfg.eval_only or run.iter_num >= cfg.max_iters:
                break

            loss_sum = step.forward_backward(parts, batches, run.iter_num * gas, gas)
            lossf = distributed.all_mean(loss_sum, d).item()
            if not math.isfinite(lossf):  # stop before the step: the weights stay as they were
                raise diverged(lossf, run.iter_num, run.last_ckpt)
            step.optimizer_step(parts, cfg.grad_clip)
            run.iter_num += 1
            bar.update(tokens_per_iter)

            if run.iter_num % cfg.log_interval == 0 and d.is_main:
                dt_s, t0 = time.time() - t0, time.time()
                budget = reads(cfg, loaders, run.iter_num * tokens_per_iter)
                run.log_step(lossf, lr, dt_s, batches.busy_s, tokens_per_iter * cfg.log_interval, peak_flops, budget)
                batches.busy_s = 0.0
            if stop.requested(d, parts.device):  # Ctrl-C / SIGTERM: this step is done; save it and say how to resume
                if run.iter_num > run.saved_at and (d.is_main or run.sharded):
                    run.last_ckpt = run.save() or run.last_ckpt
                raise stop.stopped(run.iter_num, run.last_ckpt)
