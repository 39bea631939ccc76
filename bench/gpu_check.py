"""One-shot GPU check: MFU of GPT-2 124M with and without torch.compile, predicted vs measured memory,
and KV-cache vs full-recompute sampling speed. Writes docs/gpu_results.md.

    python bench/gpu_check.py             # on a CUDA machine; no section starts after --budget_s (480 s)
    python bench/gpu_check.py --dry-run   # every section on CPU with a tiny model, in seconds; writes nothing
                                          # unless --out is given

Without a CUDA GPU the plain command says so, writes nothing and exits 0. MFU comes from finegpt's own
train() on random-token shards, against the dense peak in finegpt.memory's GPU table; memory reuses
bench/memory_validation.py; sampling uses GPT.generate. The file is rewritten after every section, so
a run stopped early keeps what it measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benches: memory_validation, train_throughput

from finegpt import memory  # noqa: E402
from finegpt.config import ModelConfig, TrainConfig  # noqa: E402
from finegpt.model import GPT  # noqa: E402
from finegpt.train import train  # noqa: E402

GPT2_124M = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, dropout=0.0, bias=False)
GAS = 4  # gradient accumulation steps in the MFU runs: the loop syncs with the host once per step
TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=320, dropout=0.0, bias=False)
MEMORY_LABELS = {  # rows of memory_validation.GPU_GRID, the compiled one last (it costs a compile)
    "bf16": ["124M bf16 B=8", "124M bf16 B=16", "guide 10L/640 bf16 B=16", "124M bf16 B=8 compiled"],
    "fp16": ["124M fp16 B=8", "124M fp16 B=16"],
}


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
        f"{props.name} ({props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor}), "
        f"CUDA {torch.version.cuda}, {cpu}"
    )


# ---- MFU: finegpt's train() on random tokens ------------------------------------------------------


def micro_batch(model_cfg: ModelConfig, dtype: str, device: str, tiny: bool) -> int:
    """The largest micro-batch (up to 16) the memory model fits in 90 % of this GPU."""
    if tiny or device != "cuda":
        return 4
    gpu = memory.gpu_from_device_name(torch.cuda.get_device_name()) or memory.custom_gpu(
        torch.cuda.get_device_properties(0).total_memory / 2**30
    )
    run = memory.RunConfig(
        batch_size=1, gradient_accumulation_steps=GAS, dtype={"bfloat16": "bf16", "float16": "fp16"}[dtype]
    )
    return max(1, min(16, memory.max_micro_batch(model_cfg, run, gpu)))


def mfu_run(
    model_cfg,
    data_dir: Path,
    out_dir: Path,
    device: str,
    dtype: str,
    batch_size: int,
    compiled: bool,
    iters: int,
    warmup: int,
) -> dict:
    cfg = TrainConfig(
        out_dir=str(out_dir),
        data_dir=str(data_dir),
        batch_size=batch_size,
        gradient_accumulation_steps=GAS,
        max_iters=warmup + iters,
        eval_interval=10**6,
        eval_iters=1,
        log_interval=1,
        always_save_checkpoint=False,
        warmup_iters=0,
        decay_lr=False,
        device=device,
        dtype=dtype,
        compile=compiled,
        seed=1,
    )
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # one log line per iteration
        result = train(model_cfg, cfg, overwrite=True)
    rows = [r for r in result["history"] if "dt_s" in r]
    timed = rows[warmup:]
    mfus = [r["mfu"] for r in timed if r["mfu"] is not None]
    return {
        "batch_size": batch_size,
        "tokens_per_iter": GAS * batch_size * model_cfg.block_size,
        "first_iter_s": rows[0]["dt_s"],
        "iter_s": statistics.median(r["dt_s"] for r in timed),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in timed),
        "mfu": statistics.median(mfus) if mfus else None,
        "data_share": statistics.median(r["data_share"] for r in timed),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
        "wall_s": time.perf_counter() - t0,
        "loss": rows[-1]["loss"],
    }


def mfu_section(model_cfg, device, dtype, tiny, root: Path, compiled: bool) -> list[str]:
    from train_throughput import make_shards

    tokenizer = "bytes" if tiny else "gpt2"
    data_dir = root / tokenizer if (root / tokenizer / "meta.json").exists() else make_shards(root, tokenizer)
    B = micro_batch(model_cfg, dtype, device, tiny)
    label = "torch.compile" if compiled else "eager"
    iters, warmup = (20, 10) if compiled else (20, 5)
    if tiny:
        iters, warmup = 3, 1
    while True:
        try:
            r = mfu_run(model_cfg, data_dir, root / "out", device, dtype, B, compiled, iters, warmup)
            break
        except torch.OutOfMemoryError:
            if B == 1:
                raise
            label += f" (batch_size={B} ran out of memory)"  # the memory model's pick did not fit: say so
            B //= 2
            print(f"out of memory; retrying with batch_size={B}", flush=True)
    mfu = "n/a (no peak for this device)" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
    peak = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
    return [
        f"| {label} | {r['batch_size']} x {GAS} x {model_cfg.block_size} | {r['tokens_per_s']:,.0f} | {mfu} | "
        f"{r['iter_s'] * 1e3:.1f} | {r['first_iter_s']:.1f} | {100 * r['data_share']:.2f} % | {peak} | "
        f"{r['loss']:.3f} |"
    ]


MFU_HEAD = [
    "| loop | batch (B x grad acc x T) | tokens/s | MFU | ms/iter | first iter s (compile) | data share "
    "| peak GiB allocated | last loss |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
]


# ---- memory: bench/memory_validation.py on this device --------------------------------------------


def memory_section(device: str, dtype: str, tiny: bool, compiled: bool) -> list[str]:
    import memory_validation as mv

    if tiny:
        grid = [g for g in mv.CPU_GRID if g[0] in ("fp32 flash", "bf16 flash")]
        lines, worst = mv.grid_table(grid, "cpu", mv.TINY)
        return lines + ["", f"Largest error {worst:.2%} (tiny model, CPU live-storage tracker)."]
    wanted = MEMORY_LABELS["bf16" if dtype == "bfloat16" else "fp16"]
    total_bytes = torch.cuda.get_device_properties(0).total_memory
    grid = []
    for label, model_kw, run_kw in mv.GPU_GRID:
        if label not in wanted or bool(run_kw.get("compile")) != compiled:
            continue
        predicted = memory.estimate(ModelConfig(**model_kw), memory.RunConfig(**{"batch_size": 4, **run_kw})).peak_bytes
        if predicted < 0.85 * total_bytes:  # what would not fit is not measured
            grid.append((label, model_kw, run_kw))
    lines, worst = mv.grid_table(grid, "cuda")
    if compiled:
        return lines + ["", "Compiled steps compare against the eager prediction, which is an upper bound for them."]
    return lines + ["", f"Largest error {worst:.2%}."]


# ---- sampling: GPT.generate with and without the KV cache -----------------------------------------


def sampling_section(model_cfg, device: str, dtype: str, tiny: bool) -> list[str]:
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


# ---- the report -----------------------------------------------------------------------------------


def write(path: Path | None, parts: list[str]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model and short runs instead of GPT-2 124M")
    ap.add_argument("--dry-run", action="store_true", help="same as --device cpu --tiny --compile_backend eager")
    ap.add_argument("--compile_backend", default="inductor", help="torch.compile backend for the compiled run")
    ap.add_argument("--budget_s", type=float, default=480, help="skip the sections that would start after this")
    ap.add_argument("--out", default=None, help="where to write (default docs/gpu_results.md on CUDA, nowhere on CPU)")
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
    out = (
        Path(args.out)
        if args.out
        else (None if args.device == "cpu" else Path(__file__).resolve().parents[1] / "docs" / "gpu_results.md")
    )
    threads = torch.get_num_threads()
    if args.device == "cpu":
        torch.set_num_threads(1)  # tiny models run fastest on one thread
    try:
        return run_checks(args, out)
    finally:
        torch.set_num_threads(threads)


def run_checks(args, out: Path | None) -> int:
    dtype = "bfloat16" if args.device == "cpu" or torch.cuda.is_bf16_supported() else "float16"
    model_cfg = ModelConfig(**(TINY if args.tiny else GPT2_124M))
    started = time.perf_counter()
    command = "python bench/gpu_check.py" + (" --dry-run" if args.dry_run else "")
    parts = [
        "# GPU check",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today().isoformat()}  ",
        f"Machine: {machine(args.device)}",
        "",
        f"Model: {'a tiny 2-layer GPT (dry run)' if args.tiny else 'GPT-2 124M'} "
        f"({GPT(model_cfg).get_num_params() / 1e6:.2f}M parameters without position embeddings), "
        f"T={model_cfg.block_size}, {dtype} autocast, fused AdamW, flash attention (SDPA).",
        "",
    ]
    write(out, parts)

    with tempfile.TemporaryDirectory() as tmp, compile_backend(args.compile_backend):
        root = Path(tmp)
        sections = [
            (
                "mfu",
                "## MFU: finegpt's train() on random tokens",
                lambda: mfu_section(model_cfg, args.device, dtype, args.tiny, root, compiled=False),
            ),
            (
                "memory",
                "## Memory: predicted vs measured peak",
                lambda: memory_section(args.device, dtype, args.tiny, compiled=False),
            ),
            (
                "sampling",
                "## Sampling: KV cache vs full recompute (batch 1, greedy)",
                lambda: sampling_section(model_cfg, args.device, dtype, args.tiny),
            ),
            (
                "mfu",
                "## MFU with torch.compile",
                lambda: mfu_section(model_cfg, args.device, dtype, args.tiny, root, compiled=True),
            ),
        ]
        if not args.tiny:
            sections.append(
                (
                    "memory",
                    "## Memory with torch.compile",
                    lambda: memory_section(args.device, dtype, args.tiny, compiled=True),
                )
            )
        notes = {
            "mfu": (
                "MFU = 6N + 12·L·C·T FLOPs per token (nanoGPT's estimate) x tokens/s / the dense 16-bit peak "
                "of this GPU in finegpt.memory's table. Median over the timed iterations, after warm-up "
                "ones (compilation happens in the first). Data share: host time fetching batches / "
                "iteration time. The batch is the largest micro-batch (up to 16) finegpt.memory fits on this GPU."
            ),
            "memory": (
                "From bench/memory_validation.py: measured / predicted peak MiB allocated in each phase "
                "(on CUDA, torch.cuda.max_memory_allocated around a steady-state step); configs the "
                "model predicts would not fit are left out."
            ),
            "sampling": (
                "Random weights: this measures speed only. float32 matmuls run as TF32 on GPUs that "
                "have it (the training loop enables it)."
            ),
        }
        for i, (kind, title, fn) in enumerate(sections):
            elapsed = time.perf_counter() - started
            if elapsed > args.budget_s:
                parts += [title, "", f"Skipped: {elapsed:.0f} s had passed (budget {args.budget_s:.0f} s).", ""]
                continue
            print(title, flush=True)
            t0 = time.perf_counter()
            lines = fn()
            head = MFU_HEAD if kind == "mfu" else []
            note = notes[kind] if title in {s[1] for s in sections[:3]} else ""
            parts += [
                title,
                "",
                *([note, ""] if note else []),
                *head,
                *lines,
                "",
                f"({time.perf_counter() - t0:.0f} s)",
                "",
            ]
            write(out, parts)
            if i == 0:
                print("\n".join(head + lines), flush=True)
    parts.append(f"Total time {time.perf_counter() - started:.0f} s.")
    write(out, parts)
    print(f"gpu_check: done in {time.perf_counter() - started:.0f} s" + (f"; wrote {out}" if out else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
