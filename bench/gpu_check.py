"""One-shot GPU check, most valuable first: the CUDA context and allocator overheads; eager vs compiled
peaks of the guide's 24 GB config and of GPT-2 124M (vocab 50304); tokens/s and MFU, eager and
compiled; the eager grid; sampling speed; a sweep of five model sizes, eager and compiled, against
finegpt.memory.speed (bench/speed_sweep.py; about 150 s more: --budget_s 420). Writes docs/gpu_results.md and,
from what it measured only, finegpt/memory/calibration.json (the compiled coefficients, the overheads, this
GPU's MFU, its family's matmul share).

    python bench/gpu_check.py             # on a CUDA machine; a section starts only if it fits --budget_s (270)
    python bench/gpu_check.py --dry-run   # every section on CPU with a tiny model, in seconds; writes nothing
                                          # unless --out is given, and never the calibration

Without a CUDA GPU the plain command says so, writes nothing and exits 0. Both files are rewritten after
every section, and a section that fails is reported and skipped, so a run stopped early or a section
that breaks keeps everything else.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benches: memory_validation, train_throughput

import speed_sweep  # noqa: E402

from finegpt import memory  # noqa: E402
from finegpt.config import ModelConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GPT2_124M = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, dropout=0.0, bias=False)
GUIDE_24GB = dict(GPT2_124M, n_layer=10, n_head=10, n_embd=640)
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=320, dropout=0.0, bias=False)
GAS = 4  # gradient accumulation steps in the speed runs: the loop syncs with the host once per step
MIB, GIB = 2**20, 2**30


@contextlib.contextmanager
def compile_backend(backend: str):
    """torch.compile with another backend for the duration ('eager' traces with dynamo but skips
    inductor's C++ build: a CPU dry run then takes seconds, not minutes)."""
    if backend == "inductor":
        yield
        return
    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


def machine(device: str) -> str:
    cpu = f"{os.cpu_count()} CPU cores, torch {torch.__version__}, Python {platform.python_version()}"
    if device != "cuda":
        return f"CPU only ({platform.machine()}), {cpu}"
    props = torch.cuda.get_device_properties(0)
    return (
        f"{props.name} ({props.total_memory / GIB:.1f} GiB, compute capability {props.major}.{props.minor}), "
        f"CUDA {torch.version.cuda}, {cpu}"
    )


def _used_bytes() -> int:
    """What nvidia-smi shows for the card: total - free (the whole card: other processes count too)."""
    free, total = torch.cuda.mem_get_info()
    return total - free


# ---- overheads: what the allocator does not count --------------------------------------------------


def overhead_section(ctx) -> list[str]:
    if ctx.device != "cuda":
        return ["No CUDA device (dry run): nothing to measure."]
    lines = [
        "| moment | total - free (nvidia-smi) GiB | reserved GiB | allocated GiB | outside the allocator GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    a = torch.zeros(1, device="cuda")  # creates the CUDA context
    for label in ("CUDA context created", "after a bf16 matmul (cuBLAS handle and workspace)"):
        if label.startswith("after"):
            a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)
            a = a @ a
        torch.cuda.synchronize()
        used, reserved, allocated = _used_bytes(), torch.cuda.memory_reserved(), torch.cuda.memory_allocated()
        ctx.results["overhead"][label] = used - reserved
        gib = [f"{b / GIB:.3f}" for b in (used, reserved, allocated, used - reserved)]
        lines.append(f"| {label} | " + " | ".join(gib) + " |")
    del a
    torch.cuda.empty_cache()
    return lines + ["", "The memory sections below measure the same after real steps (kernels loaded)."]


# ---- memory: eager vs compiled peaks, predicted vs measured ------------------------------------------


def measure_both(ctx, label: str, model_kw: dict, batch_size: int, modes=(False, True), **run_kw) -> list[str]:
    """measure() eager and compiled, with what nvidia-smi shows afterwards against the predicted range.
    run_kw: the row's other RunConfig knobs (attention, activation_checkpointing, optimizer, accumulation)."""
    from finegpt.memory.measurement import measure

    cfg = ModelConfig(**model_kw)
    lines = []
    for compiled in modes:
        run = memory.RunConfig(
            **{"dtype": ctx.dtype_key, **run_kw}, batch_size=batch_size, compile=compiled, device=ctx.run_device
        )
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        measured = measure(cfg, run, device=ctx.device)
        report = memory.estimate(cfg, run)
        cells = [label, "compiled" if compiled else "eager"]
        for phase in ("train", "optimizer", "eval", "first_eval"):
            err = (report.peaks[phase] - measured[phase]) / measured[phase]
            cells.append(f"{measured[phase] / MIB:,.1f} / {report.peaks[phase] / MIB:,.1f} ({err:+.1%})")
        extra = {}
        if ctx.device == "cuda":
            used, reserved = _used_bytes(), torch.cuda.memory_reserved()
            extra = {"context_bytes": used - reserved, "reserved_factor": reserved / measured["peak"], "smi": used}
            low, high = report.nvidia_smi_range
            cells += [
                f"{extra['reserved_factor']:.3f}",
                f"{extra['context_bytes'] / GIB:.2f}",
                f"{used / GIB:.2f} ({low / GIB:.2f}-{high / GIB:.2f})",
            ]
        else:
            cells += ["n/a", "n/a", "n/a"]
        ctx.results["memory"].append((label, cfg, run, measured, extra))
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


MEMORY_HEAD = [
    "| config | mode | train MiB measured / predicted | optimizer step | eval | iter-0 eval | reserved / allocated "
    "| outside the allocator GiB | nvidia-smi GiB measured (predicted range) |",
    "|---|---|---|---|---|---|---:|---:|---|",
]


def guide_section(ctx) -> list[str]:
    model, b, label = (TINY, 4, "tiny (dry run)") if ctx.tiny else (GUIDE_24GB, 32, "guide 24 GB: 10L/640, B=32")
    lines = MEMORY_HEAD + measure_both(ctx, label, model, b)
    if ctx.tiny:
        lines += ["", "Dry run: the compiled rows use dynamo's eager backend, not inductor, so they match eager."]
    if ctx.device == "cuda":
        gpu = memory.get_gpu("4090")
        for _, _, run, _, extra in ctx.results["memory"][-2:]:
            mode = "compiled" if run.compile else "eager"
            fits = extra["smi"] <= gpu.memory_gib * GIB
            lines.append(
                f"\n{mode}: {extra['smi'] / GIB:.1f} GiB in use on this card at the end; a {gpu.name} has "
                f"{gpu.memory_gib} GiB: {'fits' if fits else 'does not fit'} (its context may differ)."
            )
    return lines


def gpt2_section(ctx) -> list[str]:
    model, b, label = (TINY, 8, "tiny B=8 (dry run)") if ctx.tiny else (GPT2_124M, 16, "GPT-2 124M, B=16")
    return MEMORY_HEAD + measure_both(ctx, label, model, b)


def eager_grid_section(ctx) -> list[str]:
    if ctx.tiny:
        return MEMORY_HEAD + measure_both(ctx, "tiny fp32", TINY, 4, modes=(False,))
    import memory_validation as mv

    lines = list(MEMORY_HEAD)
    for label, model_kw, run_kw in mv.GPU_GRID:
        if run_kw.get("compile") or run_kw["dtype"] != ctx.dtype_key or label.startswith("guide"):
            continue
        if time.perf_counter() - ctx.started > ctx.budget_s - 15:
            lines.append(f"| {label} | skipped: out of budget |")
            continue
        knobs = {k: v for k, v in run_kw.items() if k != "batch_size"}  # each row's what-if, applied
        lines += measure_both(ctx, label, model_kw, run_kw["batch_size"], modes=(False,), **knobs)
    return lines


OWED_ROWS = [  # (label, model, batch_size, modes, knobs): rows no GPU has measured yet, each a term CPU-calibrated
    ("GPT-2 124M fp16 B=8", GPT2_124M, 8, (True,), dict(dtype="fp16")),
    ("GPT-2 124M B=16 checkpointing", GPT2_124M, 16, (True,), dict(activation_checkpointing=True)),
    ("GPT-2 124M B=4 grad acc 4 (small batch)", GPT2_124M, 4, (True,), dict(gradient_accumulation_steps=4)),
    ("guide 24 GB B=32, loss_chunks=8", GUIDE_24GB, 32, (False, True), dict(loss_chunks=8)),
]


def owed_section(ctx) -> list[str]:
    """The rows still owed: compiled fp16, compiled with checkpointing, a small batch (124M, B=4 x 4, compiled,
    with nvidia-smi's figure) and the chunked loss on the guide's config, eager and compiled. Their eager rows
    feed the eager bytes per logit (eager_cuda) like the others."""
    lines = list(MEMORY_HEAD)
    for label, model, batch_size, modes, knobs in OWED_ROWS:
        if ctx.tiny:
            model, batch_size, label = TINY, min(batch_size, 4), f"{label} (dry run: tiny)"
        if time.perf_counter() - ctx.started > ctx.budget_s - 15:
            lines.append(f"| {label} | skipped: out of budget |")
            continue
        lines += measure_both(ctx, label, model, batch_size, modes=modes, **knobs)
    return lines


# ---- speed: finegpt's train() on random tokens -----------------------------------------------------


def speed_section(ctx, compiled: bool) -> list[str]:
    from gpu_speed import mfu_run

    model_cfg = ModelConfig(**(TINY if ctx.tiny else GPT2_124M))
    batch_size = 4 if ctx.tiny else 16
    r = mfu_run(model_cfg, ctx, batch_size, GAS, compiled)
    ctx.results["mfu"]["compiled" if compiled else "eager"] = r["mfu"]
    mfu = "n/a (no peak for this device)" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
    peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
    return [
        "| loop | batch (B x grad acc x T) | tokens/s | MFU | ms/iter | first iter s (compile) | data share "
        "| peak GiB allocated | last loss |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {'torch.compile' if compiled else 'eager'} | {batch_size} x {GAS} x {model_cfg.block_size} | "
        f"{r['tokens_per_s']:,.0f} | {mfu} | {r['iter_s'] * 1e3:.1f} | {r['first_iter_s']:.1f} | "
        f"{100 * r['data_share']:.2f} % | {peak} | {r['loss']:.3f} |",
    ]


def sampling_section(ctx) -> list[str]:
    from gpu_speed import sampling_rows

    return sampling_rows(ModelConfig(**(TINY if ctx.tiny else GPT2_124M)), ctx.device, ctx.torch_dtype, ctx.tiny)


# ---- calibration: only what was measured -------------------------------------------------------------


def calibration_updates(results: dict, device_name: str, gpu_key: str | None, date: str) -> dict:
    """The sections of calibration.json this run measured: the compiled coefficients fitted to the compiled
    peaks, the bytes per logit fitted to the eager peaks (per dtype), the context and reserve seen after
    eager and compiled steps, and this GPU's MFU. Nothing else."""
    from finegpt.memory.calibrate import fit_compiled, fit_eager_cuda

    updates, source = {}, f"python bench/gpu_check.py on {device_name}, {date}"
    status = f"GPU-measured ({device_name}, {date})"
    eager = [(cfg, run, m) for _, cfg, run, m, _ in results["memory"] if not run.compile]
    by_dtype = fit_eager_cuda(eager) if eager else {}
    if by_dtype:
        updates["eager_cuda"] = {dtype: {**v, "status": status, "source": source} for dtype, v in by_dtype.items()}
    compiled = [(cfg, run, m) for _, cfg, run, m, _ in results["memory"] if run.compile]
    fitted = fit_compiled(compiled) if compiled else {}
    if fitted:
        measured = {label: m["peak"] for label, _, run, m, _ in results["memory"] if run.compile}
        updates["compiled"] = {**fitted, "status": status, "source": source}
        updates["compiled"]["measured_peak_bytes"] = measured
    overheads = {}
    for mode in ("eager", "compiled"):
        extras = [e for _, _, run, _, e in results["memory"] if e and run.compile == (mode == "compiled")]
        if extras:
            overheads[f"cuda_context_gib_{mode}"] = round(max(e["context_bytes"] for e in extras) / GIB, 3)
            overheads[f"reserved_factor_{mode}"] = round(max(e["reserved_factor"] for e in extras), 3)
    if overheads:
        updates["overheads"] = {**overheads, "source": source}
    updates.update(speed_sweep.updates(results, gpu_key, source))  # the speed model's matmul share, refitted
    mfu = {k: round(v, 4) for k, v in results["mfu"].items() if v is not None}
    if mfu and gpu_key:
        updates["mfu"] = {
            gpu_key: {**mfu, "model": f"GPT-2 124M, 16 x {GAS} x 1024, the training loop (train())", "source": source}
        }
    return updates


# ---- the run ------------------------------------------------------------------------------------------

NOTES = {
    "overhead": "nvidia-smi's figure is the card's total - free (torch.cuda.mem_get_info); the caching allocator's "
    "reserved memory is part of it, and the rest (CUDA context, loaded kernels, cuBLAS handles) is outside it.",
    "memory": "finegpt.memory.measure on this GPU (torch.cuda.max_memory_allocated per phase) against "
    "finegpt.memory.estimate: measured / predicted MiB (error). After each run, reserved / allocated is the "
    "allocator's reserve, and total - free - reserved what the CUDA context and kernels take.",
    "speed": "finegpt's train() on random tokens: MFU = (6N + 12LCT) FLOPs per token x tokens/s / the dense 16-bit "
    "peak of this GPU in finegpt.memory's table, median over the steps after warm-up.",
    "sampling": "Random weights: this measures speed only.",
    "sweep": "finegpt.memory.probe (the trainer's step, random tokens, 2 s after warm-up) per size and mode, against "
    "finegpt.memory.speed's prediction for this card; the family's matmul share is refitted to the rows.",
}
SECTIONS = [  # (kind, title, estimated seconds on an H100-class GPU, function): most valuable first
    ("overhead", "Overheads: CUDA context, cuBLAS, allocator", 10, overhead_section),
    ("memory", "Memory: the guide's 24 GB config (10L/640, B=32), eager vs torch.compile", 100, guide_section),
    ("memory", "Memory: GPT-2 124M at vocab 50304 (B=16), eager vs torch.compile", 90, gpt2_section),
    (
        "memory",
        "Memory: the rows still owed (compiled fp16 and checkpointing, a small batch, the chunked loss)",
        120,
        owed_section,
    ),
    ("speed", "Speed: tokens/s and MFU, eager", 30, lambda ctx: speed_section(ctx, False)),
    ("speed", "Speed: tokens/s and MFU, torch.compile", 60, lambda ctx: speed_section(ctx, True)),
    ("memory", "Memory: the eager grid", 30, eager_grid_section),
    ("sampling", "Sampling: KV cache vs full recompute (batch 1, greedy)", 15, sampling_section),
    (
        "sweep",
        "Speed sweep: five sizes, eager and compiled, against finegpt.memory.speed",
        150,
        speed_sweep.sweep_section,
    ),
]


def write(path: Path | None, parts: list[str]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)


def run_section(ctx, kind: str, title: str, estimate_s: float, fn) -> list[str]:
    """One section's markdown; a section that would not fit the budget is skipped, one that fails says why."""
    elapsed = time.perf_counter() - ctx.started
    if elapsed + (0 if ctx.tiny else estimate_s) > ctx.budget_s:
        return [f"## {title}", "", f"Skipped: {elapsed:.0f} s had passed (budget {ctx.budget_s:.0f} s).", ""]
    print(f"## {title}", flush=True)
    t0 = time.perf_counter()
    try:
        lines = fn(ctx)
    except Exception as e:  # one broken section must not lose the others
        last = traceback.format_exc().strip().splitlines()[-1]
        lines = [f"Failed after {time.perf_counter() - t0:.0f} s: {type(e).__name__}: {e}".splitlines()[0], "", last]
        print("\n".join(lines), flush=True)
    finally:
        if ctx.device == "cuda":
            torch.cuda.empty_cache()
    return [f"## {title}", "", NOTES[kind], "", *lines, "", f"({time.perf_counter() - t0:.0f} s)", ""]


def calibrate(ctx, args, device_name: str, gpu_key: str | None) -> str:
    """Write what this GPU run has measured so far to the calibration file; returns the sections written."""
    if ctx.device != "cuda" or ctx.tiny or not args.calibration:
        return ""
    updates = calibration_updates(ctx.results, device_name, gpu_key, datetime.date.today().isoformat())
    if not updates:
        return ""
    from finegpt.memory.calibrate import write as write_calibration

    write_calibration(updates, args.calibration)
    return ", ".join(updates)


def run_checks(args, out: Path | None) -> int:
    from types import SimpleNamespace

    cuda = args.device == "cuda"
    dtype = "bfloat16" if not cuda or torch.cuda.is_bf16_supported() else "float16"
    device_name = torch.cuda.get_device_name() if cuda else "CPU"
    gpu = memory.gpu_from_device_name(device_name) if cuda else None
    gpu_key = memory.gpus.preset_key(gpu) if gpu else None
    with tempfile.TemporaryDirectory() as tmp:
        ctx = SimpleNamespace(
            device=args.device, run_device=args.device, tiny=args.tiny, torch_dtype=dtype, root=Path(tmp),
            dtype_key={"bfloat16": "bf16", "float16": "fp16"}[dtype], budget_s=args.budget_s,
            started=time.perf_counter(), results={"overhead": {}, "memory": [], "mfu": {}, "gpu_key": gpu_key},
        )  # fmt: skip
        command = "python bench/gpu_check.py" + (" --dry-run" if args.dry_run else "")
        parts = [
            "# GPU check",
            "",
            f"Command: `{command}`  ",
            f"Date: {datetime.date.today().isoformat()}  ",
            f"Machine: {machine(args.device)}",
            "",
            f"Models: {'a tiny 2-layer GPT (dry run)' if args.tiny else 'the guide 24 GB config and GPT-2 124M'}, "
            f"{dtype} autocast, fused AdamW, flash attention (SDPA). Preset: {gpu_key or 'none'}.",
            "",
        ]
        write(out, parts)
        written = ""
        with compile_backend(args.compile_backend):
            for kind, title, estimate_s, fn in SECTIONS:
                parts += run_section(ctx, kind, title, estimate_s, fn)
                write(out, parts)
                written = calibrate(ctx, args, device_name, gpu_key) or written
    if written:
        parts += [
            "## Calibration",
            "",
            f"Wrote {written} to `finegpt/memory/calibration.json`: measured values only.",
            "",
        ]
    parts.append(f"Total time {time.perf_counter() - ctx.started:.0f} s.")
    write(out, parts)
    print(f"gpu_check: done in {time.perf_counter() - ctx.started:.0f} s" + (f"; wrote {out}" if out else ""))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model and short runs instead of the real configs")
    ap.add_argument("--dry-run", action="store_true", help="same as --device cpu --tiny --compile_backend eager")
    ap.add_argument("--compile_backend", default="inductor", help="torch.compile backend for the compiled runs")
    ap.add_argument("--budget_s", type=float, default=270, help="a section starts only if it fits in this many seconds")
    ap.add_argument("--out", default=None, help="where to write (default docs/gpu_results.md on CUDA, nowhere on CPU)")
    ap.add_argument(
        "--calibration",
        default=str(ROOT / "finegpt" / "memory" / "calibration.json"),
        help="the calibration file to update from what a GPU run measured ('' to leave it alone)",
    )
    args = ap.parse_args(argv)
    if args.dry_run:
        args.device, args.tiny, args.compile_backend = "cpu", True, "eager"
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA GPU on this machine (torch {torch.__version__}); nothing measured, nothing "
            "written. Run it where a GPU is, or check the script on CPU with --dry-run."
        )
        return 0
    if args.device == "cpu" and not args.tiny:
        print("gpu_check: GPT-2 124M on CPU would take hours; use --tiny (or --dry-run) on CPU.")
        return 2
    out = Path(args.out) if args.out else (None if args.device == "cpu" else ROOT / "docs" / "gpu_results.md")
    threads = torch.get_num_threads()
    if args.device == "cpu":
        torch.set_num_threads(1)  # tiny models run fastest on one thread
    try:
        return run_checks(args, out)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
