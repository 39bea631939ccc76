"""Every check that can fail before a run folder is created or changed: the folder's lock, device and
precision, the data (presence, each shard against meta.json, split sizes, vocab), a resumed checkpoint's
data, the memory model against the GPU, then the out_dir (earlier results, disk space).

Entry points: preflight, pick_device, pick_dtype, model_vocab, check_memory, check_resume_data.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from finegpt import folders, memory
from finegpt.config import ModelConfig, TrainConfig
from finegpt.errors import bad
from finegpt.model import count_params
from finegpt.train import distributed, rundir
from finegpt.train.checkpoint import load_checkpoint, model_config

# ---- device and precision ------------------------------------------------------------------------


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """'auto': CUDA, else Apple MPS, else CPU. Under torchrun each process takes cuda:LOCAL_RANK."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    asked = device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if device == "cuda":
        device = f"cuda:{local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise bad("device", asked, "CUDA is not available on this machine", "Use device='cpu' or 'auto'")
    index = device.split(":")[1] if device.startswith("cuda:") else ""
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        n = torch.cuda.device_count()
        raise bad("device", asked, f"this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}", "Use 'cuda'")
    if device == "mps" and not has_mps:
        raise bad("device", asked, "Apple MPS is not available on this machine", "Use device='cpu' or 'auto'")
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


def check_resume_data(out_dir: Path, meta: dict, data_dir: str) -> ModelConfig:
    """The resumed checkpoint's model settings; its tokenizer and vocab must be the shards' (a re-prepared
    data_dir would otherwise feed the model ids it never learned, or ids past its embedding)."""
    ckpt = load_checkpoint(out_dir, mmap=True)  # mapped, not read: only its small entries are looked at
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
    whole card, before anything is written. Silent where it cannot tell: CPU, MPS, and torch.compile (the
    model's eager figure is only an upper bound there)."""
    if (device.type != "cuda" and total_bytes is None) or cfg.compile:
        return
    total_bytes = total_bytes or torch.cuda.mem_get_info(device)[1]
    name = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    run = memory.RunConfig(
        batch_size=cfg.batch_size,
        gradient_accumulation_steps=distributed.local_accumulation(cfg.gradient_accumulation_steps, world_size),
        dtype=name,
        activation_checkpointing=cfg.activation_checkpointing,
        eval_batch_size=cfg.eval_batch_size,
        world_size=world_size,
        sharding="fsdp" if cfg.fsdp and world_size > 1 else "ddp",
    )
    report = memory.estimate(model_cfg, run)
    if report.peak_bytes <= total_bytes:
        return
    card = memory.custom_gpu(total_bytes / memory.GIB, bf16=name != "fp16")
    best = memory.max_micro_batch(model_cfg, run, card, headroom=0.0)
    tokens = cfg.batch_size * cfg.gradient_accumulation_steps
    fix = (
        f"Use batch_size={best} with gradient_accumulation_steps={-(-tokens // best)} (the same tokens per step); "
        "`finegpt memory` shows the terms"
        if best
        else "Use a smaller model, activation_checkpointing=True, or fsdp=True over several GPUs"
    )
    raise bad(
        "batch_size",
        cfg.batch_size,
        f"finegpt.memory predicts a {report.peak_bytes / memory.GIB:.1f} GiB peak ({report.peak_phase}), "
        f"more than the {total_bytes / memory.GIB:.1f} GiB of {device}",
        fix,
    )


# ---- all of them, in order -------------------------------------------------------------------------------


def preflight(model_cfg: ModelConfig, cfg: TrainConfig, overwrite: bool) -> ModelConfig:
    """Run every check; return the model settings the run will use (the checkpoint's when resuming,
    the vocab fitted to the shards). Reads only: a failure leaves every file as it was."""
    from finegpt.data import load_meta
    from finegpt.data.shards import check_splits

    out_dir = Path(cfg.out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # a second run fails at once; rank 0 of this one takes the lock
        folders.check_unlocked(rundir.lock_target(out_dir), "out_dir")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    distributed.local_accumulation(cfg.gradient_accumulation_steps, world_size)
    device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dtype = pick_dtype(device, cfg.dtype)
    data_dir = cfg.resolved_data_dir()
    meta = load_meta(data_dir)  # a missing directory or an unfinished prepare fails here, with the command to run
    if cfg.init_from == "resume":
        model_cfg = check_resume_data(out_dir, meta, data_dir)
    check_splits(data_dir, meta, model_cfg.block_size)
    model_cfg = model_vocab(model_cfg, meta["vocab_size"], meta["tokenizer"], data_dir)
    check_memory(model_cfg, cfg, device, dtype, world_size)
    # fp32 weights + AdamW's two moments: 12 bytes per parameter
    checkpoint_bytes = 12 * count_params(model_cfg, non_embedding=False)
    rundir.check_out_dir(out_dir, cfg.init_from, overwrite, checkpoint_bytes, cfg.keep_checkpoints)
    return model_cfg
