"""bench/gpu_check.py's speed sweep: five model sizes, eager and compiled, timed by finegpt.memory.probe (the
trainer's step) on the GPU at hand, against finegpt.memory.speed's prediction; the GPU's matmul share refitted
to them, for calibration.json's speed section.

sweep_section(ctx) -> markdown lines (and ctx.results["sweep"]); refit(rows, gpu) -> the share; updates(...).
"""

from __future__ import annotations

import math

from finegpt.config import ModelConfig, TrainConfig
from finegpt.gpus import get_gpu
from finegpt.memory import speed

# (n_layer, n_head, n_embd, micro-batch at T=1024): the planner's ladder from the lab's model to GPT-2 medium
SIZES = [(4, 4, 128, 32), (6, 6, 384, 16), (8, 8, 512, 16), (12, 12, 768, 16), (24, 16, 1024, 8)]
TINY_SIZES = [(1, 2, 16, 4), (2, 2, 32, 4), (2, 4, 64, 4), (3, 4, 64, 4), (4, 4, 96, 4)]


def sweep_section(ctx) -> list[str]:
    from finegpt.memory.probe import probe

    gpu = ctx.results.get("gpu_key") or "H100"  # a card not in the catalogue is predicted as an H100
    lines = [
        "| model | batch (B x T) | mode | tokens/s | MFU measured | MFU predicted (range) | in range |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    rows = ctx.results.setdefault("sweep", [])
    for L, H, C, B in TINY_SIZES if ctx.tiny else SIZES:
        T = 32 if ctx.tiny else 1024
        cfg = ModelConfig(
            n_layer=L, n_head=H, n_embd=C, block_size=T, vocab_size=320 if ctx.tiny else 50304, bias=False
        )
        for compiled in (False, True):
            run = TrainConfig(
                batch_size=B, gradient_accumulation_steps=1, device=ctx.device, dtype=ctx.torch_dtype, compile=compiled
            )
            s = probe(cfg, run, 0.2 if ctx.tiny else 2.0)
            p = speed.predict(cfg, gpu, B, 1, compiled, ctx.dtype_key)
            measured = s.mfu if s.mfu is not None else speed.mfu_of(cfg, s.tokens_per_s, gpu, ctx.dtype_key)
            rows.append((cfg, B, compiled, measured))
            lo, hi = p.mfu_range
            ok = "yes" if lo <= measured <= hi else "no"
            lines.append(
                f"| {L}L/{C} | {B} x {T} | {'compiled' if compiled else 'eager'} | {s.tokens_per_s:,.0f} | "
                f"{100 * measured:.2f} % | {100 * p.mfu:.2f} % ({100 * lo:.2f}-{100 * hi:.2f}) | {ok} |"
            )
    share = refit(rows, gpu, ctx.dtype_key)
    lines += ["", f"Refitted matmul share for the {get_gpu(gpu).family} family: {share:.3f}."]
    ctx.results["sweep_share"] = share
    return lines


def refit(rows: list, gpu: str, dtype: str = "bf16") -> float:
    """The matmul share (of the dense peak, at infinite width) that makes predict() closest to the measured
    MFUs in log terms, searched in steps of 0.01 from 0.05 to 1."""

    def error(share: float) -> float:
        with speed.share_override(get_gpu(gpu).family, share):
            return sum(math.log(speed.predict(c, gpu, b, 1, comp, dtype).mfu / m) ** 2 for c, b, comp, m in rows)

    return min((k / 100 for k in range(5, 101)), key=error)


def updates(results: dict, gpu_key: str | None, source: str) -> dict:
    """calibration.json's speed section for this GPU's family, from a sweep that ran."""
    if "sweep_share" not in results or not gpu_key:
        return {}
    family = get_gpu(gpu_key).family
    return {"speed": {family: {"matmul_share": round(results["sweep_share"], 3), "source": source}}}
