"""Predicted vs measured peak memory for finegpt's GPT, over grids of configs, eager and compiled.

    python bench/memory_validation.py            # CPU: eager grid, eval phase, compiled (inductor) grid, ...
    python bench/memory_validation.py --gpu      # also the CUDA grid (needs a GPU)

Writes docs/memory_validation.md, its summary to docs/benchmarks.md, and the compiled coefficients the
CPU-inductor grid implies to finegpt/memory/calibration.json (its compiled_cpu section; a GPU's are
bench/gpu_check.py's). The compiled grid compiles each config cold once (minutes on 2 cores);
inductor's cache makes a second run fast.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from machine import append_to_benchmarks  # bench/machine.py: a script sees its own folder

from finegpt.config import ModelConfig
from finegpt.memory import RunConfig, estimate
from finegpt.memory import calibration as cal
from finegpt.memory.calibrate import fit_compiled, write
from finegpt.memory.measurement import measure

MIB = 2**20
PHASES = ("train", "optimizer", "eval", "first_eval")
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=512)

CPU_GRID = [  # (label, model overrides, run settings): every knob, one or two at a time
    ("fp32 flash", {}, dict(dtype="fp32")),
    ("bf16 flash", {}, dict(dtype="bf16")),
    ("fp16 flash", {}, dict(dtype="fp16")),
    ("pure bf16 flash", {}, dict(dtype="pure_bf16")),
    ("fp32 math", {}, dict(dtype="fp32", attention="math")),
    ("bf16 math", {}, dict(dtype="bf16", attention="math")),
    ("pure bf16 math", {}, dict(dtype="pure_bf16", attention="math")),
    ("fp32 math dropout 0.1", {"dropout": 0.1}, dict(dtype="fp32", attention="math")),
    ("bf16 math dropout 0.1", {"dropout": 0.1}, dict(dtype="bf16", attention="math")),
    ("fp32 grad acc 2", {}, dict(dtype="fp32", gradient_accumulation_steps=2)),
    ("bf16 grad acc 2", {}, dict(dtype="bf16", gradient_accumulation_steps=2)),
    ("fp32 checkpointing", {}, dict(dtype="fp32", activation_checkpointing=True)),
    ("bf16 checkpointing", {}, dict(dtype="bf16", activation_checkpointing=True)),
    (
        "bf16 checkpointing + grad acc 2",
        {},
        dict(dtype="bf16", activation_checkpointing=True, gradient_accumulation_steps=2),
    ),
    ("fp32 math checkpointing", {}, dict(dtype="fp32", attention="math", activation_checkpointing=True)),
    ("fp32 adamw foreach", {}, dict(dtype="fp32", optimizer="adamw_foreach")),
    ("bf16 adamw foreach", {}, dict(dtype="bf16", optimizer="adamw_foreach")),
    ("fp32 sgd momentum", {}, dict(dtype="fp32", optimizer="sgd_momentum")),
    ("fp32 sgd", {}, dict(dtype="fp32", optimizer="sgd")),
    ("bf16 bias=False", {"bias": False}, dict(dtype="bf16")),
    ("fp32 eval batch 16", {}, dict(dtype="fp32", eval_batch_size=16)),
    ("bf16 4 layers, 4 heads, C=64", {"n_layer": 4, "n_head": 4, "n_embd": 64}, dict(dtype="bf16")),
    ("fp32 T=64, V=1024, B=2", {"block_size": 64, "vocab_size": 1024}, dict(dtype="fp32", batch_size=2)),
]

LONG_T = {"n_head": 4, "block_size": 128, "vocab_size": 256}  # no-grad T x T transients outgrow the logits
EVAL_GRID = [  # where the eval phases peak: a big training batch beside a small eval one, math attention, iter 0
    ("math T=128 fp32", LONG_T, dict(dtype="fp32", attention="math", batch_size=2)),
    ("math T=128 bf16", LONG_T, dict(dtype="bf16", attention="math", batch_size=2)),
    ("math T=128 pure bf16", LONG_T, dict(dtype="pure_bf16", attention="math", batch_size=2)),
    ("math T=128 fp32 dropout 0.1", {**LONG_T, "dropout": 0.1}, dict(dtype="fp32", attention="math", batch_size=2)),
    ("train B=16, eval B=2 (prefetched batch)", {}, dict(dtype="bf16", batch_size=16, eval_batch_size=2)),
    ("sgd, eval B=16 (iter 0)", {}, dict(dtype="fp32", optimizer="sgd", eval_batch_size=16)),
    ("bf16 checkpointing, eval B=8", {}, dict(dtype="bf16", activation_checkpointing=True, eval_batch_size=8)),
]

S = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=50304)  # GPT-2's vocab: logits dominate
M = dict(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=50304)
A = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, vocab_size=512)  # activations dominate
COMPILED_GRID = [  # torch.compile (inductor) on CPU, vocab 50304 unless stated
    ("1L/32, T=32, fp32 flash, B=8", S, dict(dtype="fp32", batch_size=8)),
    ("1L/32, T=32, bf16 flash, B=8", S, dict(dtype="bf16", batch_size=8)),
    ("1L/32, T=32, fp32 flash, B=16", S, dict(dtype="fp32", batch_size=16)),
    ("1L/32, T=32, bf16 flash, B=16", S, dict(dtype="bf16", batch_size=16)),
    ("1L/32, T=32, fp32 math, B=8", S, dict(dtype="fp32", attention="math", batch_size=8)),
    ("1L/32, T=32, bf16 math, B=8", S, dict(dtype="bf16", attention="math", batch_size=8)),
    ("2L/64, T=64, fp32 flash, B=4", M, dict(dtype="fp32", batch_size=4)),
    ("2L/64, T=64, bf16 flash, B=4", M, dict(dtype="bf16", batch_size=4)),
    ("2L/64, T=64, fp32 math, B=4", M, dict(dtype="fp32", attention="math", batch_size=4)),
    ("2L/64, T=64, bf16 math, B=4", M, dict(dtype="bf16", attention="math", batch_size=4)),
    ("1L/32, bf16 flash, B=8, grad acc 2", S, dict(dtype="bf16", batch_size=8, gradient_accumulation_steps=2)),
    ("1L/32, bf16 flash, B=8, adamw foreach", S, dict(dtype="bf16", batch_size=8, optimizer="adamw_foreach")),
    ("1L/32, pure bf16 flash, B=8", S, dict(dtype="pure_bf16", batch_size=8)),
    ("1L/32, fp32 flash, B=4, eval B=16", S, dict(dtype="fp32", batch_size=4, eval_batch_size=16)),
    ("2L/128, T=64, V=512, bf16 flash, B=4", A, dict(dtype="bf16", batch_size=4)),
    ("2L/128, T=64, V=512, fp32 math, B=4", A, dict(dtype="fp32", attention="math", batch_size=4)),
]

GPT2 = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False)
GPT2_MEDIUM = dict(GPT2, n_layer=24, n_head=16, n_embd=1024)
GUIDE = dict(GPT2, n_layer=10, n_head=10, n_embd=640)
FAKE_GRID = [  # big configs measured under FakeTensorMode: same step, no memory spent
    ("124M fp32 B=4", GPT2, dict(dtype="fp32", batch_size=4)),
    ("124M bf16 B=8", GPT2, dict(dtype="bf16", batch_size=8)),
    ("124M bf16 B=8 checkpointing", GPT2, dict(dtype="bf16", batch_size=8, activation_checkpointing=True)),
    ("guide 10L/640 bf16 B=32", GUIDE, dict(dtype="bf16", batch_size=32)),
]

GPU_GRID = [
    ("124M bf16 B=8", GPT2, dict(dtype="bf16", batch_size=8)),
    ("124M bf16 B=16", GPT2, dict(dtype="bf16", batch_size=16)),
    ("124M fp16 B=8", GPT2, dict(dtype="fp16", batch_size=8)),
    ("124M fp16 B=16", GPT2, dict(dtype="fp16", batch_size=16)),
    ("124M fp32 B=4", GPT2, dict(dtype="fp32", batch_size=4)),
    ("124M bf16 B=8 grad acc 2", GPT2, dict(dtype="bf16", batch_size=8, gradient_accumulation_steps=2)),
    ("124M bf16 B=8 math", GPT2, dict(dtype="bf16", batch_size=8, attention="math")),
    ("124M bf16 B=16 checkpointing", GPT2, dict(dtype="bf16", batch_size=16, activation_checkpointing=True)),
    ("124M bf16 B=8 adamw foreach", GPT2, dict(dtype="bf16", batch_size=8, optimizer="adamw_foreach")),
    ("124M bf16 B=8 dropout 0.1", dict(GPT2, dropout=0.1), dict(dtype="bf16", batch_size=8)),
    ("350M bf16 B=8", GPT2_MEDIUM, dict(dtype="bf16", batch_size=8)),
    ("guide 10L/640 bf16 B=16", GUIDE, dict(dtype="bf16", batch_size=16)),
    ("guide 10L/640 bf16 B=32", GUIDE, dict(dtype="bf16", batch_size=32)),
    ("124M bf16 B=16 compiled", GPT2, dict(dtype="bf16", batch_size=16, compile=True)),
    ("guide 10L/640 bf16 B=32 compiled", GUIDE, dict(dtype="bf16", batch_size=32, compile=True)),
]


def machine() -> str:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}{gpu}"


def row(label, cfg, run, measured, phases=PHASES):
    """Table cells (measured / predicted MiB and error per phase, then the peak's error) and the worst error."""
    e = estimate(cfg, run)
    cells, worst = [label], 0.0
    for phase in phases:
        err = (e.peaks[phase] - measured[phase]) / measured[phase]
        worst = max(worst, abs(err))
        cells.append(f"{measured[phase] / MIB:,.2f} / {e.peaks[phase] / MIB:,.2f} ({err:+.2%})")
    peak_err = (e.peak_bytes - measured["peak"]) / measured["peak"]
    cells.append(f"{peak_err:+.2%}")
    return cells, max(worst, abs(peak_err))


def grid_table(grid, device, base=None, compiled=False):
    """Measure each config (compiled: with torch.compile, beside the eager prediction); returns
    (markdown lines, worst error, [(cfg, run, measured)])."""
    head = ["config", "train MiB measured / predicted", "optimizer step", "eval", "iter-0 eval", "peak error"]
    if compiled:
        head += ["eager peak MiB (predicted)", "compiled / eager"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    worst, rows = 0.0, []
    for label, model_kw, run_kw in grid:
        cfg = ModelConfig(**{**(base or {}), **model_kw})
        run = RunConfig(**{"batch_size": 4, "device": "cuda" if device == "cuda" else "cpu", **run_kw})
        run = replace(run, compile=True) if compiled else run
        measured = measure(cfg, run, device=device)
        cells, w = row(label, cfg, run, measured)
        if compiled:
            eager = estimate(cfg, replace(run, compile=False)).peak_bytes
            cells += [f"{eager / MIB:,.2f}", f"{measured['peak'] / eager:.2f}"]
        worst = max(worst, w)
        rows.append((cfg, run, measured))
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines, worst, rows


def tracker_table():
    """The profiler's allocation events (ProfiledBytes, which sees inductor's buffers) against the
    dispatch mode (LiveBytes) on the same eager steps."""
    from finegpt.memory.measurement import LiveBytes
    from finegpt.memory.profiled import ProfiledBytes

    lines = ["| eager config | phase | LiveBytes | ProfiledBytes | difference (bytes) |", "|---|---|---:|---:|---:|"]
    wide = dict(n_layer=1, n_head=4, n_embd=256, block_size=64, vocab_size=50304)  # the tied sum decides its peak
    for label, model_kw, run_kw in [
        ("fp32 flash", TINY, dict(dtype="fp32")),
        ("bf16 math", TINY, dict(dtype="bf16", attention="math")),
        ("1 layer x 256, vocab 50304, bf16", wide, dict(dtype="bf16", batch_size=2)),
    ]:
        cfg, run = ModelConfig(**model_kw), RunConfig(**{"batch_size": 4, "device": "cpu", **run_kw})
        live, prof = measure(cfg, run, tracker=LiveBytes()), measure(cfg, run, tracker=ProfiledBytes())
        for phase in ("first_eval", "train", "optimizer", "eval"):
            lines.append(f"| {label} | {phase} | {live[phase]:,} | {prof[phase]:,} | {prof[phase] - live[phase]:+,} |")
    return lines


def ddp_table():
    import tempfile

    from finegpt.memory.measurement import measure_ranks

    lines = [
        "| config | rank | train MiB measured / predicted | optimizer step | eval | peak error |",
        "|---|---|---|---|---|---|",
    ]
    for label, kw in [
        ("DDP fp32", {}),
        ("DDP fp32 gradient_as_bucket_view", dict(gradient_as_bucket_view=True)),
        ("DDP bf16 grad acc 2", dict(dtype="bf16", gradient_accumulation_steps=2)),
    ]:
        cfg = ModelConfig(**TINY)
        run = RunConfig(**{"batch_size": 4, "dtype": "fp32", "device": "cpu", "world_size": 2, **kw})
        with tempfile.TemporaryDirectory() as d:
            for rank, measured in enumerate(measure_ranks(cfg, run, str(Path(d) / "store"))):
                cells, _ = row(label, cfg, run, measured, phases=("train", "optimizer", "eval"))
                lines.append("| " + " | ".join([cells[0], str(rank)] + cells[1:]) + " |")
                print(lines[-1], flush=True)
    lines += [
        "",
        "FSDP per-rank figures (shards plus the gathered root and one block) are checked against each "
        "gloo rank's measured peak by tests/test_memory_ranks.py. ZeRO-1/2 figures are analytic (weights, "
        "grads, states divided by the world size) and not yet checked against a measurement.",
    ]
    return lines


def calibrate_compiled(rows) -> str:
    """The compiled coefficients the CPU grid implies, written to calibration.json's compiled_cpu section
    (a GPU's measurement, in 'compiled', is bench/gpu_check.py's)."""
    fitted = fit_compiled([(c, r, m) for c, r, m in rows if c.vocab_size == 50304 and r.compile])
    source = f"python bench/memory_validation.py, CPU inductor, torch {torch.__version__}, {datetime.date.today()}"
    write({"compiled_cpu": {**fitted, "status": cal.CPU_MEASURED, "source": source}})
    return f"Fitted {fitted}: written to finegpt/memory/calibration.json (compiled_cpu, {cal.CPU_MEASURED})."


def speed_line():
    cfg, run = ModelConfig(**GPT2), RunConfig(batch_size=16, gpu="4090")
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        estimate(cfg, run)
    line = f"estimate() for 124M on a 4090: {(time.perf_counter() - t0) / n * 1e3:.3f} ms per call (mean of {n})"
    print(line)
    return line


def section(title: str, intro: str, lines: list[str]) -> list[str]:
    return [f"## {title}", "", intro, "", *lines, ""]


def cpu_sections() -> tuple[list[str], dict[str, float]]:
    """The CPU grids' sections (eager, eval phase, two trackers, compiled) and their worst errors."""
    doc = []
    print("CPU grid, eager (the profiler's allocator events)")
    lines, worst_cpu, _ = grid_table(CPU_GRID, "cpu", TINY)
    doc += section(
        "CPU, eager: tiny models, every knob",
        f"Base model {TINY}, batch_size=4 unless stated. Measured with `ProfiledBytes`, the profiler's "
        f"allocator events. {len(CPU_GRID)} configs; largest error {worst_cpu:.2%}.",
        lines
        + [
            "",
            "Flash attention with dropout > 0 on CPU: PyTorch's CPU SDPA falls back to its math kernel, while "
            "CUDA's flash kernel keeps no T x T matrix; the model names the CPU fallback as its own term (device "
            "cpu only). On CPU, dropout masks are kept in the input's dtype; on CUDA as bool.",
        ],
    )
    print("Eval phase, eager")
    lines, worst_eval, _ = grid_table(EVAL_GRID, "cpu", TINY)
    doc += section(
        "CPU, eager: the eval phase",
        "Configs where an eval peaks: a big training batch beside a small eval batch (finegpt.step's "
        "`forward_backward` frees the last micro-step's logits when it returns, where nanoGPT's loop keeps "
        "them bound through `estimate_loss`; the prefetched next batch stays), math attention's no-grad "
        "B*H*T*T transients (long block, small vocab), and the iteration-0 eval, which has no optimizer state "
        "and no prefetched batch yet. "
        f"{len(EVAL_GRID)} configs; largest error {worst_eval:.2%}.",
        lines,
    )
    print("Trackers: the profiler against the dispatch mode, eager")
    doc += section(
        "Two trackers, one step",
        "Every CPU table here is measured with `ProfiledBytes`, the profiler's allocation events: the "
        "allocator's own account. `LiveBytes`, a TorchDispatchMode, is kept only for FakeTensorMode (the big "
        "configs below): a dispatch mode sees none of inductor's buffers, stops dynamo compiling, and changes "
        "what it watches, since under one autograd sums the tied embedding's two gradients out of place. "
        "Where that sum decides the peak (the last row) it reads one V x C fp32 tensor more; elsewhere the "
        "two agree to a few bytes (the profiler also sees an op's internal scratch):",
        tracker_table(),
    )
    print("CPU grid, torch.compile (inductor; profiler allocation events)")
    lines, worst_compiled, rows = grid_table(COMPILED_GRID, "cpu", compiled=True)
    doc += section(
        f"CPU, torch.compile (inductor): {cal.CPU_MEASURED}",
        "Inductor on CPU makes the fusion decisions a GPU run makes for the loss and the norms: its "
        "cross-entropy keeps no fp32 copy of the logits. The compiled terms (terms.py, `run.compile`) are "
        "calibrated on these steps, measured with `ProfiledBytes`. Vocab 50304 (GPT-2's, padded) so the "
        "logits dominate as in real configs; the last two rows (vocab 512) are dominated by activations. "
        f"{len(COMPILED_GRID)} configs; largest error {worst_compiled:.2%} (acceptance: 5 %). The last column "
        "is the measured compiled peak over the eager prediction. With a tiny vocab and fp32 math attention, "
        "a compiled step can peak in the middle of backward (the last block's gradients beside all saved "
        "activations), a moment the model does not list; with GPT-2's vocab the start of backward is the peak.",
        lines + ["", calibrate_compiled(rows)],
    )
    return doc, {"eager": worst_cpu, "eval": worst_eval, "compiled": worst_compiled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="also run the CUDA grid")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "memory_validation.md"))
    args = parser.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    started = time.time()
    cmd = "python bench/memory_validation.py" + (" --gpu" if args.gpu else "")
    doc = [
        "# Memory model validation",
        "",
        "`finegpt.memory.estimate()` (no tensors) against real training steps of finegpt's GPT, run by "
        "finegpt.step's functions in the training loop's order: an eval at iteration 0 (no optimizer state "
        "yet), two steps (the first creates the optimizer state; the next micro-batch is prefetched during "
        "each forward), then two eval batches. Each cell is measured / predicted peak allocated MiB in that "
        "phase, and the prediction's error.",
        "",
        f"Command: `{cmd}`  ",
        f"Date: {datetime.date.today()}  ",
        f"Machine: {machine()}",
        "",
    ]
    doc_cpu, worst = cpu_sections()
    doc += doc_cpu
    worst_cpu, worst_eval, worst_compiled = worst["eager"], worst["eval"], worst["compiled"]
    print("FakeTensorMode: big configs, no memory spent")
    lines, worst_fake, _ = grid_table(FAKE_GRID, "fake")
    doc += section(
        "Big configs under FakeTensorMode (CPU semantics, nothing allocated)",
        f"Measured with `LiveBytes` under FakeTensorMode. Largest error {worst_fake:.2%}.",
        lines,
    )
    print("DDP on gloo: each rank measures its own peaks")
    doc += section(
        "Per rank under DDP (2 processes, gloo, CPU)",
        "Eager, measured with `LiveBytes` on each rank (gloo's own copies vary run to run; NCCL has none).",
        ddp_table(),
    )
    speed = speed_line()
    doc += ["## Speed", "", speed, ""]
    worst_gpu = None
    if args.gpu:
        if not torch.cuda.is_available():
            print("--gpu: no CUDA device here", file=sys.stderr)
            return 2
        print("GPU grid (torch.cuda.max_memory_allocated)")
        lines, worst_gpu, _ = grid_table(GPU_GRID, "cuda")
        doc += section("GPU (CUDA caching allocator)", f"Largest error {worst_gpu:.2%}.", lines)
    doc += [f"Total time {time.time() - started:.0f} s."]
    out = Path(args.out)
    search = "## Randomized search for misses"  # bench/memory_search.py's section: kept
    if out.exists() and search in out.read_text(encoding="utf-8"):
        doc += ["", search + out.read_text(encoding="utf-8").split(search, 1)[1].rstrip("\n")]
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(doc) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    summary = [
        f"## Memory model: predicted vs measured peak ({datetime.date.today()})",
        "",
        f"Command: `{cmd}`; machine: {machine()}.",
        "",
        f"- CPU grid, eager, {len(CPU_GRID)} configs: largest error {worst_cpu:.2%}",
        f"- eval phase, eager, {len(EVAL_GRID)} configs: largest error {worst_eval:.2%}",
        f"- torch.compile (inductor, CPU), {len(COMPILED_GRID)} configs: largest error {worst_compiled:.2%}",
        f"- FakeTensorMode, {len(FAKE_GRID)} big configs (124M, the guide's 10L/640): largest error {worst_fake:.2%}",
    ]
    if worst_gpu is not None:
        summary.append(f"- CUDA, {len(GPU_GRID)} configs: largest error {worst_gpu:.2%}")
    summary += [f"- {speed}", "", "Tables: [memory_validation.md](memory_validation.md).", ""]
    append_to_benchmarks("\n".join(summary), out.parent / "benchmarks.md")  # other benches write there too
    return 0


if __name__ == "__main__":
    sys.exit(main())
