"""One planner: the model a GPU trains Chinchilla-optimally in a time budget, which both `recommend` (a row
per GPU) and `session_plan` (one lab session) use, with the same search, shapes and defaults. The MFU it plans
at is finegpt.memory.speed's prediction for each candidate, or one the caller measured (a probe of each candidate).

Entry points: plan_budget, recommend, recommend_all, session_plan, budget_hours, budget_shape, LADDER.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from finegpt.config import ModelConfig, count_params
from finegpt.errors import bad
from finegpt.gpus import GPUS, Gpu, get_gpu, preset_key
from finegpt.memory.gpus import peak_flops
from finegpt.memory.report import GIB, estimate
from finegpt.memory.solve import (
    CHINCHILLA_TOKENS_PER_PARAM,
    HEADROOM,
    BatchPlan,
    best_dtype,
    body_params,
    chinchilla_tokens,
    flops_per_token,
    max_micro_batch,
    plan,
    train_time_range_s,
    train_time_s,
)
from finegpt.memory.speed import predict
from finegpt.run import RunConfig

# (n_layer, n_head, n_embd): a ladder from a toy to GPT-2 medium, through the guide's shapes and GPT-2 small
LADDER = [(4, 4, 128), (4, 4, 256), (6, 6, 384), (8, 8, 512), (10, 10, 640), (12, 12, 768), (24, 16, 1024)]
SESSION_MINUTES = 45.0  # a Colab T4 lab: 45 minutes of training inside a 90-minute session
RECOMMEND_HOURS = 24.0  # a day on the card
MIN_MICRO_BATCH = 4  # below this a GPU idles between small kernels
# The run's shape by budget, shared by recommend and session_plan: a lab session trains at T=512 with 128k
# tokens per step (hundreds of steps in 45 minutes, so its evals show a curve); a day at GPT-2's T=1024, 0.5M.
SESSION_SHAPE = dict(block_size=512, tokens_per_step=131_072)
DAY_SHAPE = dict(block_size=1024, tokens_per_step=524_288)
SESSION_MAX_HOURS = 2.0  # budgets up to this long are sessions


def budget_shape(hours: float) -> dict:
    """block_size and tokens_per_step for a budget of `hours`: SESSION_SHAPE for a session, else DAY_SHAPE."""
    return dict(SESSION_SHAPE if hours <= SESSION_MAX_HOURS else DAY_SHAPE)


def budget_hours(gpu: str | Gpu) -> float:
    """The default training budget the planner uses for a card: the lab session on the Colab T4, a day elsewhere."""
    return SESSION_MINUTES / 60 if get_gpu(gpu).family == "t4" else RECOMMEND_HOURS


@dataclass
class BudgetPlan:
    """One planned run: the model, its batch (with accumulation), the token budget at the planned MFU, and times."""

    gpu: str
    model: ModelConfig
    dtype: str
    compiled: bool
    batch: BatchPlan
    max_iters: int
    tokens: int
    mfu_range: tuple[float, float]
    seconds_range: tuple[float, float]  # (at the high MFU, at the low MFU)
    headroom: float
    mfu: float = 0.0  # what the plan assumes: the speed model's prediction for this model and batch, or the one given


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
    measure=None,
) -> BudgetPlan:
    """Among LADDER's models that fit this GPU (micro-batch >= min_micro_batch, accumulation's held
    gradients and headroom counted), the one whose tokens in budget_s, at the MFU finegpt.memory.speed predicts
    for it and its batch, come closest to Chinchilla's 20 per non-embedding parameter (log scale); mfu: plan at
    this MFU instead; measure: a function (model_cfg, BatchPlan) -> MFU measured on the card at hand (finegpt.lab
    passes finegpt.memory.probe's), called for each candidate. A run that must end on time sets max_minutes (the
    loop then fits max_iters to its measured speed). Time = tokens * FLOPs/token / (peak * MFU)."""
    if not budget_s > 0:
        raise bad("train_minutes", budget_s / 60, "must be > 0", "Use e.g. 45")
    g = get_gpu(gpu)
    dtype = best_dtype(g)
    best = None
    for L, H, C in LADDER:
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=block_size, vocab_size=vocab_size, bias=False)
        run = RunConfig(batch_size=1, dtype=dtype, compile=compiled)
        if max_micro_batch(cfg, replace(run, gradient_accumulation_steps=2), g, headroom) < min_micro_batch:
            continue
        batch = plan(cfg, run, tokens_per_step, g, headroom, power_of_two=True)
        pred = predict(cfg, g, batch.batch_size, batch.gradient_accumulation_steps, compiled, dtype)
        planned = pred.mfu if mfu is None else mfu
        if measure is not None and mfu is None:
            planned = measure(cfg, batch)
            pred.mfu_range = (planned, planned)
        iters = max(1, int(peak_flops(g, dtype) * planned * budget_s / flops_per_token(cfg) / batch.tokens_per_step))
        tokens = iters * batch.tokens_per_step
        score = abs(math.log(tokens / body_params(cfg) / CHINCHILLA_TOKENS_PER_PARAM))
        if best is None or score < best[0]:
            best = (score, cfg, batch, iters, tokens, pred.mfu_range if mfu is None else (mfu, mfu), planned)
    if best is None:
        raise bad("gpu", g.name, "fits none of the planner's models", "Use a bigger GPU or a smaller block_size")
    _, cfg, batch, iters, tokens, lo_hi, planned = best
    seconds = tuple(train_time_s(cfg, tokens, g, dtype, m, compiled=compiled) for m in (lo_hi[1], lo_hi[0]))
    return BudgetPlan(preset_key(g), cfg, dtype, compiled, batch, iters, tokens, lo_hi, seconds, headroom, planned)


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
    tokens: int  # what the budget trains at the planned MFU
    chinchilla_tokens: int
    hours_chinchilla: tuple[float, float]  # (fast, slow): the Chinchilla tokens at the high and low MFU
    mfu_range: tuple[float, float]
    block_size: int
    max_iters: int  # the budget's optimizer steps at the planned MFU

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    gpu: str | Gpu,
    block_size: int | None = None,
    hours: float | None = None,
    vocab_size: int = 50304,
    compiled: bool = False,
    tokens_per_step: int | None = None,
) -> Recommendation:
    """plan_budget for this GPU: the model it trains Chinchilla-optimally in `hours` (default budget_hours(gpu):
    the lab session on the T4, so the row is session_plan's plan), at budget_shape(hours) unless given."""
    g = get_gpu(gpu)
    hours = budget_hours(g) if hours is None else hours
    shape = budget_shape(hours)
    block_size, tokens_per_step = block_size or shape["block_size"], tokens_per_step or shape["tokens_per_step"]
    p = plan_budget(g, hours * 3600, block_size, tokens_per_step, vocab_size, compiled)
    cfg, b = p.model, p.batch
    run = RunConfig(b.batch_size, b.gradient_accumulation_steps, p.dtype, compile=compiled)
    r = estimate(cfg, run)
    tokens = chinchilla_tokens(cfg)
    kw = dict(batch_size=b.batch_size, gradient_accumulation_steps=b.gradient_accumulation_steps)
    fast, slow = train_time_range_s(cfg, tokens, g, p.dtype, compiled=compiled, **kw)
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
        cfg.block_size,
        p.max_iters,
    )


def recommend_all(**kw) -> list[Recommendation]:
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
    minutes: float  # at the planned MFU: the budget
    minutes_range: tuple[float, float]  # (at the high MFU, at the low MFU)
    mfu: float  # what the plan assumes: the speed model's prediction, or the mfu given
    mfu_range: tuple[float, float]
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def session_plan(
    gpu: str | Gpu = "T4",
    train_minutes: float = SESSION_MINUTES,
    mfu: float | None = None,
    block_size: int | None = None,
    tokens_per_step: int | None = None,
    vocab_size: int = 50304,
    compiled: bool = False,
    measure=None,
) -> SessionPlan:
    """plan_budget for train_minutes on one GPU (the notebooks' lab plan), at budget_shape(train_minutes / 60)
    unless given: the same search and defaults as recommend(). mfu: plan at this MFU instead of finegpt's speed
    model's (e.g. the one `finegpt speed` measured on the card at hand, or a training log printed); measure:
    plan_budget's, a probe of each candidate on this GPU."""
    g = get_gpu(gpu)
    if mfu is not None and not 0 < mfu <= 1:
        raise bad("mfu", mfu, "must be in (0, 1]", "Use the MFU your training log prints, e.g. 0.12")
    shape = budget_shape(train_minutes / 60)
    block_size, tokens_per_step = block_size or shape["block_size"], tokens_per_step or shape["tokens_per_step"]
    p = plan_budget(g, train_minutes * 60, block_size, tokens_per_step, vocab_size, compiled, mfu=mfu, measure=measure)
    cfg, b, (lo, hi) = p.model, p.batch, p.mfu_range
    fast, slow = (sec / 60 for sec in p.seconds_range)
    how = "given" if mfu is not None else f"finegpt's speed model for this model and batch on the {g.name}"
    if measure is not None and mfu is None:
        how = f"measured on this {g.name} by finegpt speed, a few seconds per candidate model"
    notes = [
        f"planned at {p.mfu:.1%} MFU of {g.tflops_16bit:g} TFLOPS ({p.dtype}, {how}; "
        f"{'compiled' if compiled else 'eager'} range {lo:.1%}-{hi:.1%}: {fast:.0f}-{slow:.0f} min). "
        "`finegpt speed` measures the card at hand; max_minutes makes the run end on time whatever the speed"
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
        round(train_minutes, 1),
        (round(fast, 1), round(slow, 1)),
        p.mfu,
        (lo, hi),
        notes,
    )
