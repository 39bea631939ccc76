"""Solvers on top of estimate(): what fits, the largest micro-batch, a batch plan, FLOPs and hours,
Chinchilla tokens, a config per GPU (recommend) and a plan for one time-boxed session (session_plan).

Entry points: fits, max_micro_batch, plan, flops_per_token, train_time_s, chinchilla_tokens,
recommend, session_plan, default_mfu.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from finegpt.config import ModelConfig
from finegpt.errors import bad
from finegpt.memory.gpus import GPUS, Gpu, get_gpu, peak_flops
from finegpt.memory.report import GIB, estimate
from finegpt.memory.run import RunConfig
from finegpt.model import count_params

HEADROOM = 0.10  # keep 10 % of the card free: fragmentation, a longer eval batch, the notebook itself
CHINCHILLA_TOKENS_PER_PARAM = 20  # Hoffmann et al. 2022: compute-optimal D ~ 20 N

# Eager PyTorch on small GPTs rarely passes 30-40 % MFU even on an A100 (nanoGPT reports ~35-40 %
# with compile). A T4 is worse: it is capped at 70 W and throttles well below its 1.59 GHz boost,
# its 320 GB/s feeds the memory-bound ops (layer norm, GELU, the fp32 cross-entropy over 50k logits)
# slowly, and fp16 needs a GradScaler. 15 % of its 65 TFLOPS (~10 TFLOPS achieved) is a fair,
# conservative guess; measure your own with the MFU the training loop logs.
DEFAULT_MFU = {"T4": 0.15, "V100-16": 0.25, "V100-32": 0.25}
DEFAULT_MFU_OTHER = 0.30


def default_mfu(gpu: str | Gpu) -> float:
    g = get_gpu(gpu)
    return next((m for k, m in DEFAULT_MFU.items() if GPUS[k] == g), DEFAULT_MFU_OTHER)


def best_dtype(gpu: str | Gpu) -> str:
    """bf16 autocast where the card has it, else fp16 autocast with a GradScaler."""
    return "bf16" if get_gpu(gpu).bf16 else "fp16"


# ---- memory ---------------------------------------------------------------------------------


def fits(model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = HEADROOM) -> bool:
    """True when nvidia-smi's figure (reserved + context + NCCL) stays under (1 - headroom) of the card."""
    gpu = get_gpu(gpu if gpu is not None else run.gpu or _no_gpu())
    return estimate(model_cfg, run).nvidia_smi_bytes <= (1 - headroom) * gpu.memory_gib * GIB


def _no_gpu():
    raise bad("gpu", None, "no GPU given", "Pass gpu='4090' (or any key of GPUS, or custom:<GiB>)")


def max_micro_batch(
    model_cfg: ModelConfig, run: RunConfig, gpu: str | Gpu | None = None, headroom: float = HEADROOM, limit: int = 4096
) -> int:
    """The largest batch_size that fits (eval batch scaled along when it is 0), or 0 if none does."""
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
    power_of_two: round the micro-batch down to a power of two (tidier numbers, a little less memory)."""
    if not target_tokens_per_step > 0:
        raise bad("target_tokens_per_step", target_tokens_per_step, "must be > 0", "Use e.g. 524288 (0.5M)")
    b_max = max_micro_batch(model_cfg, run, gpu, headroom)
    if b_max == 0:
        raise bad(
            "batch_size",
            1,
            f"does not fit even at 1 on this GPU ({estimate(model_cfg, replace(run, batch_size=1)).peak_gib:.1f} GiB)",
            "Turn on activation_checkpointing, use a smaller model or block_size, or a bigger GPU",
        )
    seqs = max(1, math.ceil(target_tokens_per_step / model_cfg.block_size / run.world_size))
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
) -> float:
    """tokens * FLOPs/token / (peak * MFU * GPUs)."""
    g = get_gpu(gpu)
    mfu = default_mfu(g) if mfu is None else mfu
    if not 0 < mfu <= 1:
        raise bad("mfu", mfu, "must be in (0, 1]", "Use 0.3 for eager PyTorch, 0.15 on a T4")
    peak = peak_flops(g, dtype)
    return tokens * flops_per_token(model_cfg) / (peak * mfu * world_size)


def chinchilla_tokens(model_cfg: ModelConfig) -> int:
    return CHINCHILLA_TOKENS_PER_PARAM * count_params(model_cfg)


# ---- recommendations ------------------------------------------------------------------------

# (n_layer, n_head, n_embd): the guide's shapes, GPT-2 small and medium
CANDIDATES = [(4, 4, 256), (6, 6, 384), (8, 8, 512), (10, 10, 640), (12, 12, 768), (24, 16, 1024)]
TARGET_TOKENS_PER_STEP = 524_288  # 0.5M, GPT-3 small's batch; the guide's 512 x 1024


@dataclass
class Recommendation:
    gpu: str
    n_layer: int
    n_head: int
    n_embd: int
    params: int  # nanoGPT's convention
    dtype: str
    batch_size: int
    gradient_accumulation_steps: int
    tokens_per_step: int
    peak_gib: float
    memory_gib: float
    chinchilla_tokens: int
    hours_chinchilla: float  # at default_mfu(gpu)

    def to_dict(self) -> dict:
        return asdict(self)


def recommend(
    gpu: str | Gpu, block_size: int = 1024, min_micro_batch: int = 8, vocab_size: int = 50304
) -> Recommendation:
    """The largest candidate model that fits this GPU at micro-batch >= min_micro_batch (eager,
    bias=False, 10 % headroom), with the accumulation that reaches 0.5M tokens per step."""
    g = get_gpu(gpu)
    dtype = best_dtype(g)
    best = None
    for L, H, C in CANDIDATES:
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=block_size, vocab_size=vocab_size, bias=False)
        run = RunConfig(batch_size=1, dtype=dtype)
        if max_micro_batch(cfg, run, g) >= min_micro_batch:
            best = cfg
    cfg = best or ModelConfig(n_layer=4, n_head=4, n_embd=256, block_size=block_size, vocab_size=vocab_size, bias=False)
    p = plan(cfg, RunConfig(batch_size=1, dtype=dtype), TARGET_TOKENS_PER_STEP, g)
    tokens = chinchilla_tokens(cfg)
    key = next(k for k, v in GPUS.items() if v == g) if g in GPUS.values() else g.name
    return Recommendation(
        key,
        cfg.n_layer,
        cfg.n_head,
        cfg.n_embd,
        count_params(cfg),
        dtype,
        p.batch_size,
        p.gradient_accumulation_steps,
        p.tokens_per_step,
        round(p.peak_gib, 2),
        g.memory_gib,
        tokens,
        round(train_time_s(cfg, tokens, g, dtype) / 3600, 2),
    )


def recommend_all(**kw) -> list[Recommendation]:
    return [recommend(k, **kw) for k in GPUS]


# ---- one time-boxed session (a Colab T4 for an hour and a half) -----------------------------

SESSION_CANDIDATES = [(4, 4, 128), (4, 4, 256), (6, 6, 384), (8, 8, 512), (12, 12, 768)]


def _body_params(cfg: ModelConfig) -> int:
    return count_params(cfg, non_embedding=False) - cfg.vocab_size * cfg.n_embd - cfg.block_size * cfg.n_embd


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
    minutes: float
    mfu: float
    notes: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


def session_plan(
    gpu: str | Gpu = "T4",
    train_minutes: float = 45.0,
    mfu: float | None = None,
    block_size: int = 512,
    tokens_per_step: int = 131_072,
    vocab_size: int = 50304,
) -> SessionPlan:
    """Model size, token budget and micro-batch for a training budget of train_minutes on one GPU.

    Compute C = peak * MFU * seconds; each candidate gets the tokens C affords, and the one whose
    tokens per non-embedding parameter is closest to Chinchilla's 20 (on a log scale) wins, among
    those that fit with headroom at the eval peak too. Non-embedding, because a 50k-token vocab makes
    the embedding most of a small model's count while the blocks decide how well it writes (Kaplan
    et al. 2020 fit loss to non-embedding parameters). Time = tokens * FLOPs/token / (peak * MFU)."""
    if not train_minutes > 0:
        raise bad("train_minutes", train_minutes, "must be > 0", "Use e.g. 45")
    g = get_gpu(gpu)
    mfu = default_mfu(g) if mfu is None else mfu
    dtype = best_dtype(g)
    peak = peak_flops(g, dtype)
    best = None
    for L, H, C in SESSION_CANDIDATES:
        cfg = ModelConfig(n_layer=L, n_head=H, n_embd=C, block_size=block_size, vocab_size=vocab_size, bias=False)
        run = RunConfig(batch_size=1, dtype=dtype)
        if max_micro_batch(cfg, run, g) == 0:
            continue
        p = plan(cfg, run, tokens_per_step, g, power_of_two=True)
        iters = max(1, int(peak * mfu * train_minutes * 60 / flops_per_token(cfg) / p.tokens_per_step))
        tokens = iters * p.tokens_per_step
        score = abs(math.log(tokens / _body_params(cfg) / CHINCHILLA_TOKENS_PER_PARAM))
        if best is None or score < best[0]:
            best = (score, cfg, p, iters, tokens)
    _, cfg, p, iters, tokens = best
    minutes = train_time_s(cfg, tokens, g, dtype, mfu) / 60
    notes = [
        f"MFU {mfu:.0%} of {g.tflops_16bit:g} TFLOPS ({dtype}) is assumed, not measured; "
        f"the training log prints the real MFU: rescale max_iters by real/assumed"
    ]
    if not g.bf16:
        notes.append(f"{g.name} has no bf16: fp16 autocast with a GradScaler")
    return SessionPlan(
        next((k for k, v in GPUS.items() if v == g), g.name),
        asdict(cfg),
        dtype,
        p.batch_size,
        p.gradient_accumulation_steps,
        iters,
        tokens,
        count_params(cfg),
        round(tokens / count_params(cfg), 1),
        round(tokens / _body_params(cfg), 1),
        round(p.peak_gib, 2),
        round(minutes, 1),
        mfu,
        notes,
    )


# ---- one config, every answer: what `finegpt memory` prints ------------------------------------


def fit_summary(model_cfg: ModelConfig, run: RunConfig, max_iters: int) -> dict:
    """The memory report, tokens per step and per run, and with run.gpu: the largest micro-batch, the
    micro-batch + accumulation that keep the tokens per step, and hours. Plain data (JSON-ready).
    Accumulation in the plan is counted as the trainer counts it: over all ranks."""
    report = estimate(model_cfg, run)
    tokens_per_step = run.batch_size * run.gradient_accumulation_steps * run.world_size * model_cfg.block_size
    tokens = tokens_per_run(
        max_iters, run.batch_size, run.gradient_accumulation_steps, model_cfg.block_size, run.world_size
    )
    params = count_params(model_cfg, non_embedding=False)
    out = {
        "report": report.to_dict(),
        "params": params,
        "tokens_per_step": tokens_per_step,
        "max_iters": max_iters,
        "tokens_per_run": tokens,
        "tokens_per_param": tokens / params,
        "chinchilla_tokens": chinchilla_tokens(model_cfg),
    }
    if run.gpu:
        gpu = get_gpu(run.gpu)
        out["max_micro_batch"] = max_micro_batch(model_cfg, run, gpu)
        if out["max_micro_batch"]:
            p = plan(model_cfg, run, tokens_per_step, gpu)
            out["plan"] = {
                "batch_size": p.batch_size,
                "gradient_accumulation_steps": p.gradient_accumulation_steps * run.world_size,
                "tokens_per_step": p.tokens_per_step,
            }
        out["hours"] = train_time_s(model_cfg, tokens, gpu, run.dtype, world_size=run.world_size) / 3600
        out["mfu_assumed"] = default_mfu(gpu)
    return out


def format_fit_summary(model_cfg: ModelConfig, run: RunConfig, out: dict) -> str:
    """fit_summary as the lines `finegpt memory` prints."""
    tokens = out["tokens_per_run"]
    lines = [
        f"{model_cfg.n_layer}L/{model_cfg.n_head}H/{model_cfg.n_embd}, block_size={model_cfg.block_size}, "
        f"{out['params'] / 1e6:.1f}M parameters; batch_size={run.batch_size} x "
        f"gradient_accumulation_steps={run.gradient_accumulation_steps}, {run.dtype}",
        str(estimate(model_cfg, run)),
        f"tokens per step {out['tokens_per_step']:,}; per run ({out['max_iters']:,} iters) {tokens / 1e9:.2f}B = "
        f"{out['tokens_per_param']:.0f} tokens/param (Chinchilla ~20: {out['chinchilla_tokens'] / 1e9:.2f}B)",
    ]
    if run.gpu:
        if "plan" in out:
            same = "same" if out["plan"]["tokens_per_step"] == out["tokens_per_step"] else "about the same"
            lines.append(
                f"largest micro-batch with {HEADROOM:.0%} headroom: {out['max_micro_batch']}; {same} tokens "
                f"per step: --batch_size={out['plan']['batch_size']} "
                f"--gradient_accumulation_steps={out['plan']['gradient_accumulation_steps']}"
            )
        else:
            lines.append("does not fit even at batch_size=1: try --activation_checkpointing=True or a smaller model")
        gpus = f"{run.world_size} x " if run.world_size > 1 else "one "
        lines.append(f"time on {gpus}{get_gpu(run.gpu).name}: {out['hours']:.1f} h at {out['mfu_assumed']:.0%} MFU")
    return "\n".join(lines)
