"""Every check that can fail before a run folder is created or changed: the folder's lock, device and
precision, the data (presence, each shard against meta.json, split sizes, vocab), a resumed checkpoint's
data, the memory model against the GPU, then the out_dir (earlier results, disk space).

Entry points: preflight, check_ranges, model_vocab, check_memory, check_resume_data, check_complete.
Device and precision are finegpt.step's pick_device and pick_dtype; a resume's settings against its
checkpoint's record are finegpt.train.identity's.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import torch

from finegpt import folders, memory
from finegpt.config import GIB, ModelConfig, TrainConfig, count_params, local_accumulation, padded_vocab
from finegpt.errors import bad
from finegpt.step import pick_device, pick_dtype
from finegpt.train import identity, rundir
from finegpt.train.checkpoint import load_checkpoint, model_config

# ---- numbers in range -----------------------------------------------------------------------------------

INT32_MAX = 2**31 - 1  # counts a run keeps (iterations, tokens of a micro-batch) fit a 32-bit int
_INT_RANGES = {  # name: (low, high, a usual value)
    "n_layer": (1, 1024, 12),
    "n_head": (1, 1024, 12),
    "n_embd": (1, 2**16, 768),
    "block_size": (1, 2**20, 1024),
    "vocab_size": (1, 2**31 - 1, 50304),
    "batch_size": (1, 2**20, 12),
    "eval_batch_size": (0, 2**20, 0),
    "gradient_accumulation_steps": (1, 2**20, 40),
    "max_iters": (1, INT32_MAX, 5000),
    "lr_decay_iters": (0, INT32_MAX, 5000),
    "warmup_iters": (0, INT32_MAX, 100),
    "eval_interval": (1, INT32_MAX, 250),
    "log_interval": (1, INT32_MAX, 10),
    "eval_iters": (1, 10**6, 200),
    "keep_checkpoints": (0, 10**4, 3),
    "seed": (0, INT32_MAX, 1337),  # numpy seeds must be below 2**32, and ranks add their number
}
_FLOATS = ("learning_rate", "min_lr", "weight_decay", "beta1", "beta2", "grad_clip", "dropout")


def check_ranges(model_cfg: ModelConfig, cfg: TrainConfig) -> None:
    """Every numeric setting in a range a run can use, before anything is made: a seed numpy refuses, a
    batch no memory holds or an eval of 1e11 batches fails here in one line, not after the folder exists."""
    values = {**vars(model_cfg), **vars(cfg)}
    for name, (low, high, usual) in _INT_RANGES.items():
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise bad(name, value, f"must be a whole number in [{low}, {high}]", f"Use e.g. {name}={usual}")
    for name in _FLOATS:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise bad(name, value, "must be a finite number >= 0", f"Use e.g. {name}={getattr(TrainConfig, name, 0.0)}")
    for name in ("batch_size", "eval_batch_size"):
        tokens = values[name] * model_cfg.block_size
        if tokens > INT32_MAX:
            raise bad(
                name,
                values[name],
                f"times block_size={model_cfg.block_size} is {tokens:,} tokens in one micro-batch, more than 2**31 - 1",
                "Use a smaller batch_size and more gradient_accumulation_steps",
            )


def check_complete(ckpt: dict, path) -> None:
    """A checkpoint to resume must hold the whole training state: weights alone would restart AdamW's
    moments and the RNG, and the run would silently go another way."""
    sharded = bool(ckpt.get("dcp"))  # FSDP: the optimizer state lives in its DCP shards
    optimizer = ckpt.get("optimizer")
    missing = [] if sharded or (isinstance(optimizer, dict) and optimizer.get("state")) else ["optimizer state"]
    missing += [key for key in ("rng", "best_val_loss") if key not in ckpt]
    missing += [] if isinstance(ckpt.get("config", {}).get("train"), dict) else ["train settings"]
    if missing:
        raise bad(
            "checkpoint",
            str(path),
            f"cannot be resumed: it has no {', no '.join(missing)}",
            "Sample or evaluate with it (finegpt sample / eval), or start a new run in another --out_dir",
        )


# ---- data and the model's vocab ----------------------------------------------------------------------


def model_vocab(model_cfg: ModelConfig, data_vocab: int, tokenizer: str, data_dir: str) -> ModelConfig:
    """The tokenizer's vocab padded to a multiple of 64 (50257 -> 50304, 257 -> 320), unless the config
    asks for another size; a model vocab smaller than the shards' cannot embed their tokens."""
    padded = padded_vocab(data_vocab)
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


def check_resume_data(out_dir: Path, meta: dict, data_dir: str, ckpt: dict) -> ModelConfig:
    """The resumed checkpoint's model settings; its tokenizer and vocab must be the shards' (a re-prepared
    data_dir would otherwise feed the model ids it never learned, or ids past its embedding)."""
    data = ckpt.get("data") or {}
    had = (data.get("tokenizer"), data.get("vocab_size"))
    if had != (meta["tokenizer"], meta["vocab_size"]):
        raise bad(
            "data_dir",
            data_dir,
            f"holds {meta['tokenizer']!r} shards (vocab {meta['vocab_size']}), but the checkpoint in "
            f"{str(out_dir)!r} was trained on {had[0]!r} (vocab {had[1]})",
            f"Resume with the data it was trained on (it was in {data.get('data_dir')!r}), "
            "or start a new run in another --out_dir",
        )
    return model_config(ckpt, out_dir)


# ---- memory ----------------------------------------------------------------------------------------------


def check_memory(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    device: torch.device,
    dtype: torch.dtype,
    world_size: int = 1,
    total_bytes: int | None = None,
) -> None:
    """On a CUDA device, refuse a run whose predicted peak (finegpt.memory, allocated bytes) exceeds the
    whole card, before anything is written. Silent where it cannot tell: CPU, MPS, and torch.compile while
    its terms are only CPU-inductor calibrated (a wrong refusal would cost more than the OOM it prevents);
    once bench/gpu_check.py has measured them on a GPU, compiled runs are checked too."""
    from finegpt.memory.calibration import gpu_measured

    if (device.type != "cuda" and total_bytes is None) or (cfg.compile and not gpu_measured()):
        return
    total_bytes = total_bytes or torch.cuda.mem_get_info(device)[1]
    run = memory.run_config(replace(cfg, dtype=str(dtype).removeprefix("torch.")), world_size)
    report = memory.estimate(model_cfg, run)
    if report.peak_bytes <= total_bytes:
        return
    card = memory.custom_gpu(total_bytes / GIB, bf16=dtype != torch.float16)
    best = memory.max_micro_batch(model_cfg, run, card, headroom=0.0)
    tokens = cfg.batch_size * cfg.gradient_accumulation_steps  # sequences per step
    fix = (
        f"Use batch_size={best} with gradient_accumulation_steps={-(-tokens // best)} (the same tokens per step); "
        "`finegpt memory` shows the terms"
        if best
        else "Use a smaller model, activation_checkpointing=True, or fsdp=True over several GPUs"
    )
    raise bad(
        "batch_size",
        cfg.batch_size,
        f"finegpt.memory predicts a {report.peak_bytes / GIB:.1f} GiB peak ({report.peak_phase}), "
        f"more than the {total_bytes / GIB:.1f} GiB of {device}",
        fix,
    )


# ---- all of them, in order -------------------------------------------------------------------------------


def check_resume_stream(out_dir, model_cfg: ModelConfig, cfg: TrainConfig, ckpt: dict, meta: dict, allowed) -> None:
    """The resume reads the batch stream its checkpoint was on, or every change is allowed by name; the
    allowed changes go to the run in ckpt['resume_changes'] (logged, and the run is no longer exact)."""
    from finegpt.data.checks import data_fingerprint

    saved = identity.saved_record(ckpt)
    block_size = saved.get("block_size") if model_cfg == ModelConfig() else model_cfg.block_size
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    data_dir = cfg.resolved_data_dir()
    now = identity.stream_record(cfg, block_size, world_size, data_fingerprint(data_dir, meta))
    found = identity.check_same_run(out_dir, saved, now, identity.allowed_changes(allowed))
    ckpt["resume_changes"] = {k: list(v) for k, v in found.items()}
    ckpt["resume_exact"] = bool(saved.get("exact", True)) and not found


def preflight(
    model_cfg: ModelConfig, cfg: TrainConfig, overwrite: bool, ckpt: dict | None = None, resume_changed=()
) -> dict | None:
    """Run every check; return the checkpoint a resumed run starts from (ckpt when the caller has read it,
    else read here, once), None for a fresh run. Reads only: a failure leaves every file as it was.
    resume_changed: the recorded settings (identity.STREAM_KEYS) a resume may change on purpose."""
    from finegpt.data import load_meta
    from finegpt.data.shards import check_splits

    check_ranges(model_cfg, cfg)
    out_dir = Path(cfg.out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # a second run fails at once; rank 0 of this one takes the lock
        folders.check_unlocked(rundir.lock_target(out_dir), "out_dir")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_accumulation(cfg.gradient_accumulation_steps, world_size)
    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dtype = pick_dtype(device, cfg.dtype)
    data_dir = cfg.resolved_data_dir()
    meta = load_meta(data_dir)  # a missing directory or an unfinished prepare fails here, with the command to run
    if cfg.init_from == "resume":
        ckpt = ckpt or load_checkpoint(out_dir, map_location="cpu")  # the weights too: train() reads no more
        check_complete(ckpt, out_dir)
        requested = model_cfg
        model_cfg = check_resume_data(out_dir, meta, data_dir, ckpt)
        check_resume_stream(out_dir, requested, cfg, ckpt, meta, resume_changed)
    check_splits(data_dir, meta, model_cfg.block_size)
    model_cfg = model_vocab(model_cfg, meta["vocab_size"], meta["tokenizer"], data_dir)
    check_memory(model_cfg, cfg, device, dtype, world_size)
    # fp32 weights + AdamW's two moments: 12 bytes per parameter
    checkpoint_bytes = 12 * count_params(model_cfg, non_embedding=False)
    rundir.check_out_dir(out_dir, cfg.init_from, overwrite, checkpoint_bytes, cfg.keep_checkpoints)
    return ckpt if cfg.init_from == "resume" else None
