"""One config, every answer: what `finegpt memory` prints. The run as configured, its eager and compiled
peaks side by side (each with its verdict and the term that decides it), tokens, the largest micro-batch,
a plan that keeps the tokens per step, and hours as a range. Entry points: fit_summary, format_fit_summary,
side_by_side, summary_from_settings (what `finegpt memory --json` prints, and the static page shows).
"""

from __future__ import annotations

from dataclasses import replace

from finegpt.config import ModelConfig, count_params
from finegpt.gpus import get_gpu
from finegpt.memory.report import GIB, MemoryReport, eager_and_compiled, estimate
from finegpt.memory.solve import (
    HEADROOM,
    body_params,
    chinchilla_tokens,
    max_micro_batch,
    plan,
    tokens_per_run,
    train_time_range_s,
)
from finegpt.memory.speed import run_mfu_range
from finegpt.run import RunConfig, run_from_settings


def _mode(report: MemoryReport) -> dict:
    """A report's headline as plain data: its peak, nvidia-smi range and verdict."""
    out = {
        "peak_bytes": report.peak_bytes,
        "peak_gib": round(report.peak_gib, 3),
        "peak_phase": report.peak_phase,
        "nvidia_smi_range_gib": [round(b / GIB, 3) for b in report.nvidia_smi_range],
        "compiled_status": report.compiled_status,
    }
    if report.verdict is not None:
        v = report.verdict
        out["verdict"] = {"status": v.status, "label": v.label, "deciding": v.deciding, "text": str(v)}
    return out


def side_by_side(model_cfg: ModelConfig, run: RunConfig) -> dict[str, dict]:
    """{'eager': ..., 'compiled': ...}: each mode's peak, nvidia-smi range and verdict (with run.gpu)."""
    return {mode: _mode(r) for mode, r in eager_and_compiled(model_cfg, run).items()}


def fit_summary(model_cfg: ModelConfig, run: RunConfig, max_iters: int) -> dict:
    """The memory report of the run as configured, eager and compiled side by side, tokens per step and
    per run, and with run.gpu: the largest micro-batch, the micro-batch + accumulation that keep the
    tokens per step, and hours (fast, slow). Plain data (JSON-ready). Accumulation in the plan is
    counted as the trainer counts it: over all ranks."""
    report = estimate(model_cfg, run)
    tokens_per_step = run.tokens_per_step(model_cfg.block_size)
    tokens = tokens_per_run(
        max_iters, run.batch_size, run.gradient_accumulation_steps, model_cfg.block_size, run.world_size
    )
    params = count_params(model_cfg, non_embedding=False)
    out = {
        "report": report.to_dict(),
        "compile": run.compile,
        **side_by_side(model_cfg, run),
        "params": params,
        "tokens_per_step": tokens_per_step,
        "max_iters": max_iters,
        "tokens_per_run": tokens,
        "tokens_per_param": tokens / body_params(model_cfg),  # per non-embedding parameter, as Chinchilla here
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
        kw = dict(batch_size=run.batch_size, gradient_accumulation_steps=run.gradient_accumulation_steps)
        seconds = train_time_range_s(model_cfg, tokens, gpu, run.label, run.world_size, run.compile, **kw)
        mfu = run_mfu_range(model_cfg, gpu, run.batch_size, run.gradient_accumulation_steps, run.compile, run.label)
        out["hours"] = [_digits(s / 3600) for s in seconds]
        out["mfu_range"] = [_digits(x) for x in mfu]
    return out


def _digits(x: float) -> float:
    """12 significant digits: a time model's pow and exp differ in the last bits between libms (glibc here,
    WebAssembly's in the browser page), and the JSON must read the same everywhere."""
    return float(f"{x:.12g}")


def summary_from_settings(values: dict, gpu: str | None = None, notes: list[str] = ()) -> tuple:
    """nanoGPT-style settings (a config file's dict + overrides, with the file's `notes`) -> (ModelConfig,
    RunConfig, fit_summary with its notes). `finegpt memory --json` prints json.dumps of the summary; the
    static calculator page (finegpt.calculator) shows the same."""
    model_cfg, run, train_cfg, more = run_from_settings(values, gpu=gpu)
    summary = fit_summary(model_cfg, run, train_cfg.max_iters)
    summary["notes"] = [*notes, *more]
    return model_cfg, run, summary


SUGGESTED_LOSS_CHUNKS = 8


def loss_chunks_hint(model_cfg: ModelConfig, run: RunConfig) -> str | None:
    """When the logits decide a verdict that does not fit, what --loss_chunks would give instead: the loss
    over chunks of tokens, each chunk's logits recomputed in backward (finegpt.model.GPT.chunked_loss)."""
    report = estimate(model_cfg, run)
    v = report.verdict
    if run.loss_chunks or v is None or v.status == "fits" or "logits" not in v.deciding:
        return None
    chunked = estimate(model_cfg, replace(run, loss_chunks=SUGGESTED_LOSS_CHUNKS))
    return (
        f"the logits decide it: --loss_chunks={SUGGESTED_LOSS_CHUNKS} computes the loss in chunks of tokens, each "
        f"chunk's logits recomputed in backward: peak {chunked.peak_gib:.1f} GiB -> {chunked.verdict}"
    )


def format_fit_summary(model_cfg: ModelConfig, run: RunConfig, out: dict) -> str:
    """fit_summary as the lines `finegpt memory` prints."""
    tokens = out["tokens_per_run"]
    mode = "compiled" if run.compile else "eager"
    lines = [
        f"{model_cfg.n_layer}L/{model_cfg.n_head}H/{model_cfg.n_embd}, block_size={model_cfg.block_size}, "
        f"{out['params'] / 1e6:.1f}M parameters; batch_size={run.batch_size} x "
        f"gradient_accumulation_steps={run.gradient_accumulation_steps}, {run.label}, compile={run.compile}",
        str(estimate(model_cfg, run)),
    ]
    hint = loss_chunks_hint(model_cfg, run)
    lines += [f"hint: {hint}"] if hint else []
    lines.append("eager and compiled side by side:")
    for name in ("eager", "compiled"):
        m = out[name]
        verdict = f" -> {m['verdict']['text']}" if "verdict" in m else ""
        mark = "  <- this run" if name == mode else ""
        lines.append(f"  {name:<9}peak {m['peak_gib']:.1f} GiB ({m['peak_phase']}){verdict}{mark}")
    if out["compiled"]["compiled_status"]:
        lines.append(f"  (compiled terms: {out['compiled']['compiled_status']})")
    lines.append(
        f"tokens per step {out['tokens_per_step']:,}; per run ({out['max_iters']:,} iters) {tokens / 1e9:.2f}B = "
        f"{out['tokens_per_param']:.0f} tokens per non-embedding parameter (Chinchilla ~20: "
        f"{out['chinchilla_tokens'] / 1e9:.2f}B)"
    )
    if run.gpu:
        if "plan" in out:
            same = "same" if out["plan"]["tokens_per_step"] == out["tokens_per_step"] else "about the same"
            lines.append(
                f"largest micro-batch that fits ({mode}, the high end under the card): {out['max_micro_batch']}; "
                f"{same} tokens per step: --batch_size={out['plan']['batch_size']} "
                f"--gradient_accumulation_steps={out['plan']['gradient_accumulation_steps']}"
            )
        else:
            lines.append(
                "does not fit even at batch_size=1: try --activation_checkpointing=True, --loss_chunks=8 "
                "or a smaller model"
            )
        gpus = f"{run.world_size} x " if run.world_size > 1 else "one "
        (fast, slow), (lo, hi) = out["hours"], out["mfu_range"]
        lines.append(
            f"time on {gpus}{get_gpu(run.gpu).name}: {fast:.1f}-{slow:.1f} h at {hi:.0%}-{lo:.0%} MFU ({mode})"
        )
    return "\n".join(lines)


def format_recommendations(rows: list, compiled: bool = False) -> str:
    """recommend()'s rows as the table `finegpt recommend` prints."""
    lines = [
        f"{'gpu':<9}{'GiB':>7}  {'model':<12}{'params':>8}  {'dtype':<6}{'batch':>6}{'x acc':>7}"
        f"{'peak GiB':>10}{'smi GiB':>9}{'budget h':>10}{'Chinchilla h':>14}{'MFU':>10}"
    ]
    for r in rows:
        fast, slow = r.hours_chinchilla
        lo, hi = r.mfu_range
        lines.append(
            f"{r.gpu:<9}{r.memory_gib:>7.1f}  {f'{r.n_layer}L/{r.n_head}H/{r.n_embd}':<12}{r.params / 1e6:>7.1f}M  "
            f"{r.dtype:<6}{r.batch_size:>6}{r.gradient_accumulation_steps:>7}{r.peak_gib:>10.1f}"
            f"{r.nvidia_smi_gib:>9.1f}{r.budget_hours:>10.2f}{f'{fast:.1f}-{slow:.1f}':>14}{f'{lo:.0%}-{hi:.0%}':>10}"
        )
    mode = "compiled" if compiled else "eager"
    lines.append(
        f"{mode}, bias=False; tokens per step: 128k at T=512 for a session budget (<= 2 h), else 0.5M at T=1024; "
        "the model whose tokens in the budget (at the MFU finegpt's speed model predicts for it) come closest to 20 "
        "per non-embedding parameter, "
        f"that fits with {HEADROOM:.0%} headroom over the high end of nvidia-smi (smi GiB); Chinchilla h: the same "
        "20 tokens per non-embedding parameter at the high-low MFU"
    )
    return "\n".join(lines)
