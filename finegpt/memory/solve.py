"""Solvers on top of estimate(): what fits, the largest micro-batch, a batch plan, FLOPs and hours (as
ranges, from the MFU ranges), Chinchilla tokens, and one planner: the model a GPU can train Chinchilla-
optimally in a time budget, which both `recommend` (a row per GPU) and `session_plan` (one lab session) use.

Entry points: fits, max_micro_batch, plan, flops_per_token, train_time_s, train_time_range_s,
chinchilla_tokens, plan_budget, recommend, session_plan, default_mfu, mfu_range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from finegpt.config import ModelConfig
from finegpt.errors import bad
from finegpt.memory.gpus import Gpu, get_gpu, mfu_range, peak_flops, preset_key
from finegpt.memory.report import GIB, estimate
from finegpt.memory.run import RunConfig
from finegpt.model import count_params

HEADROOM = 0.05  # beyond the high end of the estimate: other processes on the card, a notebook's leftovers
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal D ~ 20 N


def default_mfu(gpu: str | Gpu, compiled: bool = False) -> float:
    """The low end of mfu_range: what a plan that must finish in time assumes."""
    return mfu_range(gpu, compiled)[0]


def best_dtype(gpu: str | Gpu) -> str:
    """bf16 autocast where the card has it, else fp16 autocast with a GradScaler."""
    return "bf16" if get_gpu(gpu).bf16 else "fp16"


# ---- memory ---------------------------------------------------------------------------------


def fits(model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = HEADROOM) -> bool:
    """True when the high end of what nvidia-smi will show stays under (1 - headroom) of the card."""
    gpu = get_gpu(gpu if gpu is not None else run.gpu or _no_gpu())
    return estimate(model_cfg, run).nvidia_smi_bytes <= (1 - headroom) * gpu.memory_gib * GIB


def _no_gpu():
    raise bad("gpu", None, "no GPU given", "Pass gpu='4090' (or any key of GPUS, or custom:<GiB>)")


def max_micro_batch(
    model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = HEADROOM, limit: int = 4096
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
    headroom: float = HEADROOM,
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
    return BatchPlan(B, G, B * G * run.world_size * model_cfg.block_size, peak)


# ---- compute and time -----------------------------------------------------------------------


def flops_per_token(model_cfg: ModelConfig) -> int:
    # 6N (forward 2N + backward 4N, nanoGPT's N) + 12*L*C*T for attention scores: nanoGPT's estimate_mfu
    return 6 * count_params(model_cfg) + 12 * model_cfg.n_layer * model_cfg.n_embd * model_cfg.block_size


def tokens_per_run(
    max_iters: int, batch_size: int, gradient_accumulation_steps: int, block_size: int, world_size: int = 1
) -> int:
    return max_iters * batch_size * gradient_accumulation_steps * block_size * world_size


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
) -> tuple[float, float]:
    """(fastest, slowest) seconds: the time at the high and at the low end of the card's MFU range."""
    low, high = mfu_range(gpu, compiled)
    return tuple(train_time_s(model_cfg, tokens, gpu, dtype, m, world_size) for m in (high, low))


def chinchilla_tokens(model_cfg: ModelConfig) -> int:
    return CHINCHILLA_TOKENS_PER_PARAM * count_params(model_cfg)


def body_params(cfg: ModelConfig) -> int:
    # the blocks and norms: everything but the token and position embeddings (Kaplan et al. 2020 fit loss
    # to these; a 50k vocab makes the embedding most of a small model's count)
    return count_params(cfg, non_embedding=False) - cfg.vocab_size * cfg.n_embd - cfg.block_size * cfg.n_embd


# ---- one planner: the model a GPU trains Chinchilla-optimally in a budget ------------------------

# (n_layer, n_head, n_embd): a ladder from a toy to GPT-2 medium, through the guide's shapes and GPT-2 small
LADDER = [(4, 4, 128), (4, 4, 256), (6, 6, 384), (8, 8, 512), (10, 10, 640), (12, 12, 768), (24, 16, 1024)]
SESSION_MINUTES = 45.0  # a Colab T4 lab: 45 minutes of training inside a 90-minute session
RECOMMEND_HOURS = 24.0  # a day on the card
MIN_MICRO_BATCH = 4  # below this a GPU idles between small kernels


def budget_hours(gpu: str | Gpu) -> float:
    """The default training budget the planner uses for a card: the lab session on the Colab T4, a day elsewhere."""
    return SESSION_MINUTES / 60 if get_gpu(gpu).family == "t4" else RECOMMEND_HOURS


@dataclass
class BudgetPlan:
    """One planned run: the model, its batch (with accumulation), the token budget at the low MFU, and times."""

    gpu: str
    model: ModelConfig
    dtype: str
    compiled: bool
    batch: BatchPlan
    max_iters: int
    tokens: int
    mfu_range: tuple[float, float]
    seconds_range: tuple[float, float]  # (at the high MFU, at the low MFU = the budget)
    headroom: float


def plan_budget(
    gpu: str | Gpu,
    budget_s: float,
    block_size: int = 1024,
    tokens_per_step: int = 524_288,
    vocab_size: int = 50304,
    compiled: bool = False,
    headroom: float = HEADROOM,
    min_micro_batch: int = MIN_MICRO_BATCH,
    mfu: float | None = None,
) -> BudgetPlan:
    """Among LADDER's models that fit this GPU (micro-batch >= min_micro_batch, accumulation's held
    gradients and headroom counted), the one whose tokens in budget_s, at the low end of the MFU range,
    come closest to Chinchilla's 20 per non-embedding parameter (log scale). The low end, so the run
    finishes in time even when slow; mfu: plan at this MFU instead. Time = tokens * FLOPs/token / (peak * MFU)."""
    if not budget_s > 0:
        raise bad("train_minutes", budget_s / 60, "must be > 0", "Use e.g. 45")
    g = get_gpu(gpu)
    dtype, low = best_dtype(g), mfu_range(g, compiled)[0] if mfu is None else mfu
    best = None
    for L, H, C in LADDER:
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=block_size, vocab_size=vocab_size, bias=False)
        run = RunConfig(batch_size=1, dtype=dtype, compile=compiled)
        if max_micro_batch(cfg, replace(run, gradient_accumulation_steps=2), g, headroom) < min_micro_batch:
            continue
        batch = plan(cfg, run, tokens_per_step, g, headroom, power_of_two=True)
        iters = max(1, int(peak_flops(g, dtype) * low * budget_s / flops_per_token(cfg) / batch.tokens_per_step))
        tokens = iters * batch.tokens_per_step
        score = abs(math.log(tokens / body_params(cfg) / CHINCHILLA_TOKENS_PER_PARAM))
        if best is None or score < best[0]:
            best = (score, cfg, batch, iters, tokens)
    if best is None:
        raise bad("gpu", g.name, "fits none of the planner's models", "Use a bigger GPU or a smaller block_size")
    _, cfg, batch, iters, tokens = best
    lo_hi = mfu_range(g, compiled) if mfu is None else (mfu, mfu)
    seconds = tuple(train_time_s(cfg, tokens, g, dtype, m, compiled=compiled) for m in (lo_hi[1], lo_hi[0]))
    return BudgetPlan(preset_key(g), cfg, dtype, compiled, batch, iters, tokens, lo_hi, seconds, headroom)


@dataclass
class Recommendation:
    gpu: str
    n_layer: int
    n_head: int
    n_embd: int
    params: int  # nanoGPT's convention
    dtype: str
    compiled: bool
    batch_size: int
    gradient_accumulation_steps: int
    tokens_per_step: int
    peak_gib: float
    nvidia_smi_gib: float  # the high end of what nvidia-smi will show
    memory_gib: float
    headroom: float
    budget_hours: float
    tokens: int  # what the budget trains at the low MFU
    chinchilla_tokens: int
    hours_chinchilla: tuple[float, float]  # (fast, slow): the Chinchilla tokens at the high and low MFU
    mfu_range: tuple[float, float]

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    gpu: str | Gpu, block_size: int = 1024, hours: float | None = None, vocab_size: int = 50304, compiled: bool = False
) -> Recommendation:
    """plan_budget for this GPU with 0.5M tokens per step: the model it trains Chinchilla-optimally in
    `hours` (default budget_hours(gpu): the lab session on the T4, so the row is session_plan's model)."""
    g = get_gpu(gpu)
    hours = budget_hours(g) if hours is None else hours
    p = plan_budget(g, hours * 3600, block_size, 524_288, vocab_size, compiled)
    cfg, b = p.model, p.batch
    run = RunConfig(b.batch_size, b.gradient_accumulation_steps, p.dtype, compile=compiled)
    r = estimate(cfg, run)
    tokens = chinchilla_tokens(cfg)
    fast, slow = train_time_range_s(cfg, tokens, g, p.dtype, compiled=compiled)
    return Recommendation(
        p.gpu,
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        count_params(cfg),
        p.dtype,
        compiled,
        b.batch_size,
        b.gradient_accumulation_steps,
        b.tokens_per_step,
        round(b.peak_gib, 2),
        round(r.nvidia_smi_bytes / GIB, 2),
        g.memory_gib,
        p.headroom,
        hours,
        p.tokens,
        tokens,
        (round(fast / 3600, 2), round(slow / 3600, 2)),
        p.mfu_range,
    )


def recommend_all(**kw) -> list[Recommendation]:
    from finegpt.memory.gpus import GPUS

    return [recommend(k, **kw) for k in GPUS]


# ---- one time-boxed session (a Colab T4 for an hour and a half) -----------------------------


@dataclass
class SessionPlan:
    gpu: str
    model: dict  # ModelConfig fields
    dtype: str
    batch_size: int
    gradient_accumulation_steps: int
    max_iters: int
    tokens: int
    params: int
    tokens_per_param: float  # over all parameters (nanoGPT's count, tied embedding included)
    tokens_per_body_param: float  # over the non-embedding parameters: what the choice is scored on
    peak_gib: float
    minutes: float  # at the low end of the MFU range: the budget
    minutes_range: tuple[float, float]  # (at the high MFU, at the low MFU)
    mfu: float  # the low end, which the plan assumes
    mfu_range: tuple[float, float]
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def session_plan(
    gpu: str | Gpu = "T4",
    train_minutes: float = SESSION_MINUTES,
    mfu: float | None = None,
    block_size: int = 512,
    tokens_per_step: int = 131_072,
    vocab_size: int = 50304,
    compiled: bool = False,
) -> SessionPlan:
    """plan_budget for train_minutes on one GPU (the notebooks' lab plan). mfu: plan at this MFU
    instead of the low end of the card's range (e.g. the one your training log printed)."""
    g = get_gpu(gpu)
    if mfu is not None and not 0 < mfu <= 1:
        raise bad("mfu", mfu, "must be in (0, 1]", "Use the MFU your training log prints, e.g. 0.12")
    p = plan_budget(g, train_minutes * 60, block_size, tokens_per_step, vocab_size, compiled, mfu=mfu)
    cfg, b, (lo, hi) = p.model, p.batch, p.mfu_range
    fast, slow = (sec / 60 for sec in p.seconds_range)
    notes = [
        f"planned at {lo:.0%} MFU of {g.tflops_16bit:g} TFLOPS ({p.dtype}), the low end of the {g.name}'s "
        f"{'compiled' if compiled else 'eager'} range {lo:.0%}-{hi:.0%}: {slow:.0f} min at {lo:.0%}, {fast:.0f} at "
        f"{hi:.0%}. The training log prints the real MFU: rescale max_iters by real / {lo:.0%}"
    ]
    if not g.bf16:
        notes.append(f"{g.name} has no bf16: fp16 autocast with a GradScaler")
    return SessionPlan(
        p.gpu,
        asdict(cfg),
        p.dtype,
        b.batch_size,
        b.gradient_accumulation_steps,
        p.max_iters,
        p.tokens,
        count_params(cfg),
        round(p.tokens / count_params(cfg), 1),
        round(p.tokens / body_params(cfg), 1),
        round(b.peak_gib, 2),
        round(slow, 1),
        (round(fast, 1), round(slow, 1)),
        lo,
        (lo, hi),
        notes,
    )
