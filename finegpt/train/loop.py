"""The training loop: nanoGPT's train.py as a function, with exact resume and DDP.

train(model_cfg, train_cfg, callback=None) -> {"history", "final_val_loss", "best_val_loss", "checkpoint", ...}.
Pieces a notebook can use alone: pick_device, pick_dtype, get_lr, estimate_loss.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from finegpt import memory
from finegpt.config import ModelConfig, TrainConfig, config_dict
from finegpt.errors import FinegptError, bad
from finegpt.model import GPT, count_params
from finegpt.progress import progress
from finegpt.train import distributed
from finegpt.train.checkpoint import (
    clean_state_dict,
    clear_run,
    load_checkpoint,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

# ---- device, precision, schedule -----------------------------------------------------------------


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto': CUDA, else Apple MPS, else CPU. Under torchrun each process takes cuda:LOCAL_RANK."""
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise bad("device", device, "CUDA is not available on this machine", "Use device='cpu' or 'auto'")
    return torch.device(device)


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """'auto': bf16 on GPUs that have it (Ampere+), fp16 + GradScaler on older ones (T4), fp32 elsewhere.
    MPS stays fp32: autocast there covers too few ops to be worth the surprises."""
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    chosen = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if device.type == "cpu" and chosen == torch.float16:
        raise bad("dtype", dtype, "float16 autocast is a GPU feature", "Use dtype='float32' or 'bfloat16' on CPU")
    if device.type == "cuda" and chosen == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise bad("dtype", dtype, "this GPU has no bfloat16", "Use dtype='float16' (with a GradScaler) or 'auto'")
    return chosen


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


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """This GPU's dense peak FLOP/s from finegpt.memory's table, or None when unknown (CPU, MPS)."""
    tflops = memory.device_peak_tflops(device, dtype)
    return None if tflops is None else tflops * 1e12


# ---- data and the model's vocab ----------------------------------------------------------------------


def model_vocab(model_cfg: ModelConfig, data_vocab: int, tokenizer: str, data_dir: str) -> ModelConfig:
    """The tokenizer's vocab rounded up to a multiple of 64 (50257 -> 50304, 257 -> 320), unless the
    config asks for another size; a model vocab smaller than the shards' cannot embed their tokens."""
    padded = -(-data_vocab // 64) * 64
    if model_cfg.vocab_size == ModelConfig.vocab_size:  # nanoGPT's default: not a choice the user made
        return replace(model_cfg, vocab_size=padded)
    if model_cfg.vocab_size < data_vocab:
        raise bad(
            "vocab_size",
            model_cfg.vocab_size,
            f"smaller than the {data_vocab} tokens of the {tokenizer!r} shards in {data_dir!r}",
            f"Use vocab_size={padded} (leave it unset to get that), or prepare data with a smaller tokenizer",
        )
    return model_cfg


def _loaders(cfg: TrainConfig, block_size: int, d: distributed.Dist) -> dict:
    """Training batches, plus fixed eval batches: eval batch k is the same at every eval."""
    from finegpt.data import BatchLoader

    data_dir = cfg.resolved_data_dir()
    eval_b = cfg.eval_batch_size or cfg.batch_size
    kw = dict(rank=d.rank, world_size=d.world_size)
    return {
        "train": BatchLoader(data_dir, "train", cfg.batch_size, block_size, seed=cfg.seed, **kw),
        "eval_train": BatchLoader(data_dir, "train", eval_b, block_size, seed=cfg.seed + 1, **kw),
        "eval_val": BatchLoader(data_dir, "val", eval_b, block_size, seed=cfg.seed, **kw),
    }


def _to_device(batch, device: torch.device):
    if device.type == "cuda":  # pinned host memory lets the copy overlap the GPU's work
        return tuple(t.pin_memory().to(device, non_blocking=True) for t in batch)
    return tuple(t.to(device) for t in batch)


class _Prefetch:
    """Training batches fetched one micro-step ahead, so the host's work overlaps the device's.
    get_batch(step) is a pure function of step: fetching early changes nothing the model sees.
    busy_s: host seconds spent fetching (window reads + copy), to report the data path's share."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device
        self.ahead, self.busy_s = None, 0.0

    def _fetch(self, step: int):
        t = time.perf_counter()
        batch = _to_device(self.loader.get_batch(step), self.device)
        self.busy_s += time.perf_counter() - t
        return step, batch

    def get(self, step: int):
        ahead, self.ahead = self.ahead, None
        return (ahead if ahead is not None and ahead[0] == step else self._fetch(step))[1]

    def prefetch(self, step: int) -> None:
        self.ahead = self._fetch(step)


@torch.no_grad()
def estimate_loss(model, loaders: dict, eval_iters: int, device, ctx, d: distributed.Dist | None = None) -> dict:
    """Mean loss over the same eval_iters batches of each split (averaged over ranks under DDP)."""
    d = d or distributed.Dist()
    out = {}
    model.eval()
    for split in ("train", "val"):
        losses = torch.zeros(eval_iters, device=device)
        for k in range(eval_iters):
            X, Y = _to_device(loaders[f"eval_{split}"].get_batch(k), device)
            with ctx:
                _, loss = model(X, Y)
            losses[k] = loss.float()
        out[split] = distributed.all_mean(losses.mean(), d).item()
    model.train()
    return out


# ---- checks that must pass before any expensive work -------------------------------------------------


def check_out_dir(out_dir: Path, init_from: str, overwrite: bool, checkpoint_bytes: int = 0) -> None:
    """out_dir must be writable, and a scratch run must not replace an earlier run's checkpoints.
    Nothing is created here: a run that fails a later check leaves no empty directory behind."""
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise bad("out_dir", str(out_dir), f"{str(existing)!r} is a file, not a directory", "Choose another --out_dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise bad(
            "out_dir",
            str(out_dir),
            f"cannot be written ({str(existing)!r} is read-only)",
            "Choose a directory you can write to, e.g. --out_dir=out",
        )
    free_bytes = shutil.disk_usage(existing).free
    if free_bytes < 2 * checkpoint_bytes:  # a new checkpoint is written beside the previous one
        raise bad(
            "out_dir",
            str(out_dir),
            f"has {free_bytes / 2**30:.2f} GiB free, but a checkpoint takes "
            f"{checkpoint_bytes / 2**30:.2f} GiB and two must fit",
            "Free some disk space or pick another --out_dir",
        )
    if init_from == "scratch" and not overwrite and (out_dir / "ckpt.pt").exists():
        raise bad(
            "out_dir",
            str(out_dir),
            "already holds a checkpoint from an earlier run",
            "Continue it with --resume, start over with --overwrite, or pick a new --out_dir",
        )


def check_data_dir(data_dir: str) -> None:
    from finegpt.data import load_meta

    load_meta(data_dir)  # a missing directory or an unfinished prepare fails here, with the command to run


def _log(d: distributed.Dist, msg: str) -> None:
    if d.is_main:
        print(msg, flush=True)


# ---- the loop --------------------------------------------------------------------------------------


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, *, callback=None, overwrite: bool = False) -> dict:
    """Train (or with init_from='resume', continue) a GPT; return the logged metrics and the checkpoint.
    A scratch run refuses an out_dir that holds a checkpoint unless overwrite=True.

    Logged rows: {"iter", "loss", "lr", "tokens_per_s", "mfu", "dt_s", "data_share"} every log_interval
    steps (data_share: the part of dt_s the host spent fetching batches), and
    {"iter", "train/loss", "val/loss", "lr"} at each eval. callback(row) sees each row (rank 0 only).
    """
    cfg = train_cfg
    out_dir = Path(cfg.out_dir)
    data_dir = cfg.resolved_data_dir()
    # fp32 weights + AdamW's two moments: 12 bytes per parameter
    check_out_dir(out_dir, cfg.init_from, overwrite, 12 * count_params(model_cfg, non_embedding=False))
    check_data_dir(data_dir)
    device_type = (
        "cuda" if cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    d = distributed.setup(cfg.backend, device_type)
    try:
        return _train(model_cfg, cfg, d, out_dir, data_dir, callback)
    finally:
        distributed.teardown(d)


def _train(model_cfg, cfg, d, out_dir, data_dir, callback) -> dict:
    gas = distributed.local_accumulation(cfg.gradient_accumulation_steps, d.world_size)
    device = pick_device(cfg.device, d.local_rank)
    dtype = pick_dtype(device, cfg.dtype)
    if cfg.deterministic:  # bitwise-repeatable runs: slower kernels, one fixed algorithm each
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~8x fp32 speed on Ampere+
        torch.backends.cudnn.allow_tf32 = True
    if device.type == "cuda":
        torch.cuda.set_device(device)

    ckpt = None
    if cfg.init_from == "resume":
        ckpt = load_checkpoint(out_dir, map_location="cpu")
        saved_cfg = ModelConfig(**ckpt["config"]["model"])  # the weights fix the shape
        if saved_cfg != model_cfg and model_cfg != ModelConfig():
            _log(d, f"note: resuming keeps the checkpoint's model settings {asdict(saved_cfg)}")
        model_cfg = saved_cfg
        _log(d, f"resuming from {resolve_checkpoint(out_dir)} at iter {ckpt['iter_num']}")

    loaders = _loaders(cfg, model_cfg.block_size, d)
    meta_vocab, tokenizer = loaders["train"].vocab_size, loaders["train"].tokenizer
    model_cfg = model_vocab(model_cfg, meta_vocab, getattr(tokenizer, "name", str(tokenizer)), data_dir)

    torch.manual_seed(cfg.seed + d.rank)
    np.random.seed(cfg.seed + d.rank)
    model = GPT(model_cfg).to(device)
    model.activation_checkpointing = cfg.activation_checkpointing
    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.learning_rate, (cfg.beta1, cfg.beta2), device.type)
    scaler = torch.amp.GradScaler(device.type, enabled=(dtype == torch.float16))
    iter_num, best_val_loss = 0, float("inf")
    sharded, dcp_dir = cfg.fsdp and d.enabled, None  # FSDP2 under torchrun; one process has nothing to shard
    if ckpt is not None:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
        if ckpt.get("dcp"):  # an FSDP run: its optimizer state lives in the DCP shards
            dcp_dir = resolve_checkpoint(out_dir).parent / ckpt["dcp"]
        if dcp_dir is None:
            optimizer.load_state_dict(ckpt["optimizer"])
        elif not sharded:
            from finegpt.train.fsdp import load_sharded

            load_sharded(model, optimizer, dcp_dir)
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        iter_num, best_val_loss = ckpt["iter_num"], ckpt["best_val_loss"]
        if d.rank == 0:
            set_rng_state(ckpt["rng"])
        else:  # only rank 0's RNG is saved; the others get a fresh stream per resume point
            torch.manual_seed(cfg.seed + d.rank + 1000 * iter_num)
        ckpt = None  # free the host copy

    raw_model = model
    if cfg.compile:
        model = torch.compile(model)
    if sharded:  # fully_shard swaps in DTensor parameters: the optimizer is rebuilt over them
        from finegpt.train import fsdp

        optimizer, scaler = fsdp.shard(raw_model, optimizer, device, dtype, dcp_dir), fsdp.sharded_scaler(scaler)
    else:
        model = distributed.wrap_model(model, d, device)
    ctx = nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)

    if cfg.init_from == "scratch" and d.is_main:  # every check passed: an earlier run here is replaced
        clear_run(out_dir)
    trackers = _open_trackers(cfg, out_dir, config_dict(model_cfg, cfg)) if d.is_main else None
    tokens_per_iter = gas * d.world_size * cfg.batch_size * model_cfg.block_size
    fpt = memory.flops_per_token(model_cfg)  # 6N + 12·L·C·T, nanoGPT's estimate_mfu
    peak = peak_flops(device, dtype)
    _log(
        d,
        f"{raw_model.get_num_params() / 1e6:.2f}M parameters | {tokens_per_iter:,} tokens/iter | "
        f"{device} {str(dtype).replace('torch.', '')} | world_size {d.world_size}",
    )

    history, last_ckpt, final_val = [], None, None
    if (out_dir / "ckpt.pt").exists():
        last_ckpt = out_dir / "ckpt.pt"

    def emit(row):
        history.append(row)
        if trackers is not None:
            trackers.log(row["iter"], {k: v for k, v in row.items() if k != "iter"})
        if callback is not None and d.is_main:
            callback(dict(row))

    def checkpoint_now():
        state = {
            "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": rng_state(),
            "iter_num": iter_num,
            "best_val_loss": best_val_loss,
            "config": config_dict(model_cfg, cfg),
            "data": {
                "data_dir": data_dir,
                "tokenizer": getattr(tokenizer, "name", str(tokenizer)),
                "vocab_size": meta_vocab,
            },
        }
        if sharded:  # every rank writes its shards; rank 0 adds the full weights for load_model
            return fsdp.save_sharded(raw_model, optimizer, state, out_dir, cfg.keep_checkpoints, d.is_main)
        state.update(model=raw_model.state_dict(), optimizer=optimizer.state_dict())
        return save_checkpoint(state, out_dir, cfg.keep_checkpoints)

    model.train()
    start_iter = iter_num
    batches = _Prefetch(loaders["train"], device)
    bar = progress(
        cfg.max_iters * tokens_per_iter,
        "train",
        initial=start_iter * tokens_per_iter,
        enabled=d.is_main and not cfg.eval_only,
    )
    t0 = time.time()
    try:
        while True:
            lr = get_lr(iter_num, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if iter_num % cfg.eval_interval == 0 or iter_num == cfg.max_iters or cfg.eval_only:
                losses = estimate_loss(model, loaders, cfg.eval_iters, device, ctx, d)
                if not all(map(math.isfinite, losses.values())):
                    raise diverged(losses["val"], iter_num, last_ckpt)
                final_val = losses["val"]
                _log(d, f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
                if d.is_main:
                    emit({"iter": iter_num, "train/loss": losses["train"], "val/loss": losses["val"], "lr": lr})
                if (losses["val"] < best_val_loss or cfg.always_save_checkpoint) and not cfg.eval_only:
                    best_val_loss = min(best_val_loss, losses["val"])
                    if iter_num > start_iter and (d.is_main or sharded):  # the resume point is already on disk
                        last_ckpt = checkpoint_now() or last_ckpt
                        _log(d, f"saved checkpoint iter {iter_num} to {last_ckpt}")
                distributed.barrier(d)
                t0, batches.busy_s = time.time(), 0.0  # eval time is not training time
            if cfg.eval_only or iter_num >= cfg.max_iters:
                break

            loss_sum = torch.zeros((), device=device)
            for k in range(gas):
                X, Y = batches.get(iter_num * gas + k)
                with distributed.no_sync(model, k == gas - 1), ctx:
                    _, loss = model(X, Y)
                    loss = loss / gas  # the step's gradient is the mean over its micro-batches
                batches.prefetch(iter_num * gas + k + 1)  # while the GPU runs the forward (CUDA is asynchronous)
                scaler.scale(loss).backward()
                loss_sum += loss.detach().float()
            lossf = distributed.all_mean(loss_sum, d).item()
            if not math.isfinite(lossf):  # stop before the step: the weights stay as they were
                raise diverged(lossf, iter_num, last_ckpt)
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            bar.update(tokens_per_iter)

            if iter_num % cfg.log_interval == 0 and d.is_main:
                dt_s = time.time() - t0
                t0 = time.time()
                mfu = fpt * tokens_per_iter * cfg.log_interval / dt_s / (peak * d.world_size) if peak else None
                row = {
                    "iter": iter_num,
                    "loss": lossf,
                    "lr": lr,
                    "tokens_per_s": tokens_per_iter * cfg.log_interval / max(dt_s, 1e-9),
                    "mfu": mfu,
                    "dt_s": dt_s / cfg.log_interval,
                    "data_share": batches.busy_s / max(dt_s, 1e-9),
                }
                batches.busy_s = 0.0
                print(
                    f"iter {iter_num}: loss {lossf:.4f}, lr {lr:.2e}, {row['tokens_per_s']:,.0f} tokens/s"
                    + (f", mfu {100 * mfu:.1f}%" if mfu is not None else "")
                    + f", data {100 * row['data_share']:.1f}%",
                    flush=True,
                )
                emit(row)
    finally:
        bar.close()
        if trackers is not None:
            trackers.close()
    return {
        "history": history,
        "final_val_loss": final_val,
        "best_val_loss": best_val_loss,
        "checkpoint": str(last_ckpt) if last_ckpt else None,
        "iter_num": iter_num,
        "model_config": asdict(model_cfg),
        "model": raw_model,
    }


def diverged(loss: float, iter_num: int, last_ckpt) -> FinegptError:
    where = f"Last good checkpoint: {str(last_ckpt)!r}" if last_ckpt else "No checkpoint was saved yet"
    return FinegptError(
        f"loss={loss}: training diverged at iter {iter_num}. {where}. Lower learning_rate "
        f"or raise warmup_iters, then resume from it with --resume."
    )


def _open_trackers(cfg, out_dir, config):
    try:
        from finegpt.tracking import open_trackers
    except ImportError:
        return None
    return open_trackers(cfg, out_dir, config)
