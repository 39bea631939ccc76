"""Every check that can fail before a run folder is created or changed: the folder's lock, device and
precision, the data (presence, each shard against meta.json, split sizes, vocab), a resumed checkpoint's
data, the memory model against the GPU, then the out_dir (earlier results, disk space).

Entry points: preflight, model_vocab, check_memory, check_resume_data. Device and precision are
finegpt.step's pick_device and pick_dtype.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from finegpt import folders, memory
from finegpt.config import GIB, ModelConfig, TrainConfig, count_params, local_accumulation, padded_vocab
from finegpt.errors import bad
from finegpt.step import pick_device, pick_dtype
from finegpt.train import rundir
from finegpt.train.checkpoint import load_checkpoint, model_config

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


def preflight(model_cfg: ModelConfig, cfg: TrainConfig, overwrite: bool, ckpt: dict | None = None) -> dict | None:
    """Run every check; return the checkpoint a resumed run starts from (ckpt when the caller has read it,
    else read here, once), None for a fresh run. Reads only: a failure leaves every file as it was."""
    from finegpt.data import load_meta
    from finegpt.data.shards import check_splits

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
        model_cfg = check_resume_data(out_dir, meta, data_dir, ckpt)
    check_splits(data_dir, meta, model_cfg.block_size)
    model_cfg = model_vocab(model_cfg, meta["vocab_size"], meta["tokenizer"], data_dir)
    check_memory(model_cfg, cfg, device, dtype, world_size)
    # fp32 weights + AdamW's two moments: 12 bytes per parameter
    checkpoint_bytes = 12 * count_params(model_cfg, non_embedding=False)
    rundir.check_out_dir(out_dir, cfg.init_from, overwrite, checkpoint_bytes, cfg.keep_checkpoints)
    return ckpt if cfg.init_from == "resume" else None
