"""Speed for bench/gpu_check.py: finegpt's own train() on random-token shards (tokens/s and the MFU its
log prints), and sampling with and without the KV cache. Entry points: mfu_run, sampling_rows.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import time

import torch

from finegpt.config import ModelConfig
from finegpt.model import GPT


def mfu_run(model_cfg: ModelConfig, ctx, batch_size: int, gas: int, compiled: bool) -> dict:
    """train() for a few steps; medians over the steps after warm-up (compilation happens in the first).
    On out of memory the micro-batch halves and the label says so."""
    from train_throughput import make_shards, timing_config

    from finegpt.train import train

    tokenizer = "bytes" if ctx.tiny else "gpt2"
    data_dir = (
        ctx.root / tokenizer if (ctx.root / tokenizer / "meta.json").exists() else make_shards(ctx.root, tokenizer)
    )
    iters, warmup = ((3, 1) if ctx.tiny else (20, 10)) if compiled else ((3, 1) if ctx.tiny else (20, 5))
    while True:
        kw = dict(device=ctx.device, dtype=ctx.torch_dtype, compile=compiled)
        cfg = timing_config(data_dir, ctx.root / "out", batch_size, gas, warmup + iters, **kw)
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # one log line per iteration
                result = train(model_cfg, cfg, overwrite=True)
            break
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
            print(f"out of memory; retrying with batch_size={batch_size}", flush=True)
    rows = [r for r in result["history"] if "dt_s" in r]
    timed = rows[warmup:]
    mfus = [r["mfu"] for r in timed if r["mfu"] is not None]
    return {
        "batch_size": batch_size,
        "first_iter_s": rows[0]["dt_s"],
        "iter_s": statistics.median(r["dt_s"] for r in timed),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed),
        "mfu": statistics.median(mfus) if mfus else None,
        "data_share": statistics.median(r["data_share"] for r in timed),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if ctx.device == "cuda" else None,
        "loss": rows[-1]["loss"],
    }


def sampling_rows(model_cfg: ModelConfig, device: str, dtype: str, tiny: bool) -> list[str]:
    """GPT.generate with and without the KV cache, greedy, batch 1, random weights (speed only)."""
    lengths = (16, 32) if tiny else (128, 512)
    torch.manual_seed(0)
    model = GPT(model_cfg).to(device).eval()
    lines = [
        "| weights | new tokens | full recompute tokens/s | KV cache tokens/s | speed-up | same tokens |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for weights in ("float32", dtype):
        model.to(getattr(torch, weights))
        idx = torch.tensor([[model_cfg.vocab_size - 65]], device=device)  # one fixed start token
        model.generate(idx, 4, temperature=0, use_cache=True)  # warm-up: first-call allocations, kernels
        model.generate(idx, 4, temperature=0, use_cache=False)
        for n in lengths:
            out, secs = {}, {}
            for use_cache in (False, True):
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out[use_cache] = model.generate(idx, n, temperature=0, use_cache=use_cache)
                if device == "cuda":
                    torch.cuda.synchronize()
                secs[use_cache] = time.perf_counter() - t0
            same = "yes" if torch.equal(out[False], out[True]) else "no (16-bit/TF32 rounding differs by path)"
            lines.append(
                f"| {weights} | {n} | {n / secs[False]:,.0f} | {n / secs[True]:,.0f} | "
                f"{secs[False] / secs[True]:.1f}x | {same} |"
            )
            print(lines[-1], flush=True)
    return lines
