"""Solvers on top of estimate(): what fits, the largest micro-batch, a batch plan, FLOPs and hours (as
ranges: from finegpt.memory.speed's model of the run when its batch is known, else the card's MFU range),
Chinchilla tokens. The one planner built on them is finegpt.memory.planner.

Entry points: fits, max_micro_batch, plan, flops_per_token, train_time_s, train_time_range_s,
chinchilla_tokens, body_params, best_dtype, default_mfu, mfu_range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from finegpt.config import ModelConfig, count_params, tokens_per_step
from finegpt.errors import bad
from finegpt.gpus import Gpu, get_gpu
from finegpt.memory.gpus import mfu_range, peak_flops
from finegpt.memory.report import GIB, estimate, fits_memory
from finegpt.memory.speed import run_mfu_range
from finegpt.run import RunConfig

# The planners' margin beyond the high end of the estimate (other processes on the card, a notebook's leftovers):
# plan_budget, recommend and session_plan size their batches with it. A config's own verdict, fits() and
# max_micro_batch() use none, so "fits at batch B" and "largest micro-batch >= B" always agree.
HEADROOM = 0.05
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal D ~ 20 N


def default_mfu(gpu: str | Gpu, compiled: bool = False) -> float:
    """The low end of mfu_range: what a plan that must finish in time assumes."""
    return mfu_range(gpu, compiled)[0]


def best_dtype(gpu: str | Gpu) -> str:
    """bf16 autocast where the card has it, else fp16 autocast with a GradScaler."""
    return "bf16" if get_gpu(gpu).bf16 else "fp16"


# ---- memory ---------------------------------------------------------------------------------


def fits(model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = 0.0) -> bool:
    """estimate()'s "fits" verdict (report.fits_memory): the high end of what nvidia-smi will show stays under
    the card's memory, less `headroom` (the planners pass HEADROOM)."""
    gpu = get_gpu(gpu if gpu is not None else run.gpu or _no_gpu())
    return fits_memory(estimate(model_cfg, run).nvidia_smi_bytes, int(gpu.memory_gib * GIB), headroom)


def _no_gpu():
    raise bad("gpu", None, "no GPU given", "Pass gpu='4090' (or any key of GPUS, or custom:<GiB>)")


def max_micro_batch(
    model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = 0.0, limit: int = 4096
) -> int:
    """The largest batch_size that fits at run's gradient accumulation (eval batch scaled along when it
    is 0), or 0 if none does."""
    gpu = get_gpu(gpu if gpu is not None else run.gpu or _no_gpu())
    ok = lambda b: fits(model_cfg, replace(run, batch_size=b), gpu, headroom)  # noqa: E731
    if not ok(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and ok(hi):  # memory grows monotonically with the batch: double, then bisect
        lo, hi = hi, hi * 2
    hi = min(hi, limit + 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


@dataclass
class BatchPlan:
    batch_size: int
    gradient_accumulation_steps: int
    tokens_per_step: int
    peak_gib: float


def plan(
    model_cfg: ModelConfig,
    run: RunConfig,
    target_tokens_per_step: int,
    gpu: str | Gpu | None = None,
    headroom: float = 0.0,
    power_of_two: bool = False,
) -> BatchPlan:
    """Micro-batch and gradient accumulation that reach target tokens per optimizer step (all ranks).
    Accumulating holds the previous micro-steps' gradients, so the micro-batch is sized with them.
    power_of_two: round the micro-batch down to a power of two (tidier numbers, a little less memory)."""
    if not target_tokens_per_step > 0:
        raise bad("target_tokens_per_step", target_tokens_per_step, "must be > 0", "Use e.g. 524288 (0.5M)")
    seqs = max(1, math.ceil(target_tokens_per_step / model_cfg.block_size / run.world_size))
    single = replace(run, gradient_accumulation_steps=1)
    if max_micro_batch(model_cfg, single, gpu, headroom, limit=seqs) >= seqs:
        B, G = seqs, 1  # one micro-step reaches the target: no accumulation, no held gradients
    else:
        b_max = max_micro_batch(model_cfg, replace(run, gradient_accumulation_steps=2), gpu, headroom)
        if b_max == 0:
            one = estimate(model_cfg, replace(run, batch_size=1, gradient_accumulation_steps=2))
            raise bad(
                "batch_size",
                1,
                f"does not fit even at 1 on this GPU (about {one.nvidia_smi_bytes / GIB:.1f} GiB)",
                "Turn on activation_checkpointing or loss_chunks=8, use a smaller model or block_size, or a bigger GPU",
            )
        if power_of_two:
            b_max = 2 ** int(math.log2(b_max))
        exact = max(b for b in range(1, b_max + 1) if seqs % b == 0)
        if 2 * exact >= b_max:  # an exact split of the target, if it costs at most half the micro-batch
            B, G = exact, seqs // exact
        else:
            G = math.ceil(seqs / b_max)
            B = math.ceil(seqs / G)  # the smallest micro-batch that keeps G steps: less memory, ~same tokens
    peak = estimate(model_cfg, replace(run, batch_size=B, gradient_accumulation_steps=G)).peak_gib
    return BatchPlan(B, G, tokens_per_step(B, model_cfg.block_size, G * run.world_size), peak)


# ---- compute and time -----------------------------------------------------------------------


def flops_per_token(model_cfg: ModelConfig) -> int:
    # 6N (forward 2N + backward 4N, nanoGPT's N) + 12*L*C*T for attention scores: nanoGPT's estimate_mfu
    return 6 * count_params(model_cfg) + 12 * model_cfg.n_layer * model_cfg.n_embd * model_cfg.block_size


def tokens_per_run(
    max_iters: int, batch_size: int, gradient_accumulation_steps: int, block_size: int, world_size: int = 1
) -> int:
    return max_iters * tokens_per_step(batch_size, block_size, gradient_accumulation_steps * world_size)


def train_time_s(
    model_cfg: ModelConfig,
    tokens: int,
    gpu: str | Gpu,
    dtype: str = "bf16",
    mfu: float | None = None,
    world_size: int = 1,
    compiled: bool = False,
) -> float:
    """tokens * FLOPs/token / (peak * MFU * GPUs); MFU defaults to the low end of the card's range."""
    g = get_gpu(gpu)
    mfu = default_mfu(g, compiled) if mfu is None else mfu
    if not 0 < mfu <= 1:
        raise bad("mfu", mfu, "must be in (0, 1]", "Use the MFU your training log prints, e.g. 0.25")
    peak = peak_flops(g, dtype)
    return tokens * flops_per_token(model_cfg) / (peak * mfu * world_size)


def train_time_range_s(
    model_cfg: ModelConfig,
    tokens: int,
    gpu: str | Gpu,
    dtype: str = "bf16",
    world_size: int = 1,
    compiled: bool = False,
    batch_size: int | None = None,
    gradient_accumulation_steps: int = 1,
) -> tuple[float, float]:
    """(fastest, slowest) seconds: the time at the high and at the low end of the MFU range finegpt.memory.speed
    predicts for this model at batch_size x gradient_accumulation_steps (per rank); without a batch_size, the
    card's cited range (mfu_range)."""
    if batch_size:
        low, high = run_mfu_range(model_cfg, gpu, batch_size, gradient_accumulation_steps, compiled, dtype)
    else:
        low, high = mfu_range(gpu, compiled)
    return tuple(train_time_s(model_cfg, tokens, gpu, dtype, m, world_size) for m in (high, low))


def body_params(cfg: ModelConfig) -> int:
    # the blocks and norms: everything but the token and position embeddings (Kaplan et al. 2020 fit loss
    # to these; a 50k vocab makes the embedding most of a small model's count)
    return count_params(cfg, non_embedding=False) - cfg.vocab_size * cfg.n_embd - cfg.block_size * cfg.n_embd


def chinchilla_tokens(model_cfg: ModelConfig) -> int:
    """20 tokens per non-embedding parameter: the count the planner scores its models on."""
    return CHINCHILLA_TOKENS_PER_PARAM * body_params(model_cfg)
