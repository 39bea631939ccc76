"""A randomized search for the moments the memory model misses: sample configs across the corners, measure
each training step on CPU with the profiler's allocator events (ProfiledBytes), predict it with
finegpt.memory.estimate, and print the worst cases first.

    python bench/memory_search.py --seed 0 --n 60     # writes its section of docs/memory_validation.md
    python bench/memory_search.py --seed 0,8,9 --n 60  # several seeds: one table, a verdict per seed
    python bench/memory_search.py --seed 7 --n 12 --no-write

The corners: width/depth ratios (1 layer x 384 wide to 6 layers x 16), T from 16 to 2048, B, vocab from 64
to 50304, flash and math attention, dropout, activation checkpointing, gradient accumulation, fp32, bf16 and
pure bf16 (fp16 autocast is a GPU's: bench/gpu_check.py), eager and compiled, the chunked loss. Each sample
is kept small enough to measure in seconds (its predicted peak under --cap-mib); a miss becomes a named term
in finegpt/memory, never a fudge.
Entry points: sample(rng), search(seed, n), table(rows).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from finegpt.config import ModelConfig  # noqa: E402
from finegpt.memory import RunConfig, estimate  # noqa: E402

MIB = 2**20
PHASES = ("train", "optimizer", "eval", "first_eval")
SHAPES = [(1, 384), (1, 256), (1, 128), (2, 128), (2, 64), (3, 96), (4, 64), (4, 32), (6, 16), (2, 32)]  # (L, C)
BLOCK_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048]
VOCABS = [64, 256, 512, 2048, 8192, 50304]
DTYPES = ["fp32", "bf16", "pure_bf16"]  # fp16 autocast is CUDA's (finegpt refuses it on CPU): a GPU row checks it
SECTION = "## Randomized search for misses"


def sample(rng: random.Random, cap_bytes: int = 160 * MIB, compiled_share: float = 0.25, threads: int = 1):
    """One (ModelConfig, RunConfig) drawn across the corners whose predicted peak is under cap_bytes
    (compiled samples under a quarter of it: inductor compiles each cold)."""
    while True:
        L, C = rng.choice(SHAPES)
        H = rng.choice([h for h in (1, 2, 4, 8) if C % h == 0 and C // h >= 8])
        cfg = ModelConfig(
            n_layer=L,
            n_head=H,
            n_embd=C,
            block_size=rng.choice(BLOCK_SIZES),
            vocab_size=rng.choice(VOCABS),
            dropout=rng.choice([0.0, 0.0, 0.1]),
            bias=rng.random() < 0.7,
        )
        compiled = rng.random() < compiled_share
        run = RunConfig(
            batch_size=rng.choice([1, 2, 3, 4, 8]),
            gradient_accumulation_steps=rng.choice([1, 1, 2]),
            dtype=rng.choice(DTYPES),
            attention=rng.choice(["flash", "math"]),
            activation_checkpointing=rng.random() < 0.3,
            loss_chunks=rng.choice([0, 0, 2, 4, 8]),
            compile=compiled,
            device="cpu",
            cpu_threads=threads,
        )
        if estimate(cfg, run).peak_bytes <= cap_bytes // (4 if compiled else 1):
            return cfg, run


def describe(cfg: ModelConfig, run: RunConfig) -> str:
    words = [f"{cfg.n_layer}L/{cfg.n_embd}/{cfg.n_head}h T={cfg.block_size} V={cfg.vocab_size} B={run.batch_size}"]
    words.append(run.label)
    words.append(run.attention)
    words += [w for w, on in (("compiled", run.compile), ("ckpt", run.activation_checkpointing)) if on]
    if run.gradient_accumulation_steps > 1:
        words.append(f"acc {run.gradient_accumulation_steps}")
    if run.loss_chunks:
        words.append(f"chunks {run.loss_chunks}")
    if cfg.dropout:
        words.append(f"dropout {cfg.dropout}")
    if not cfg.bias:
        words.append("no bias")
    return " ".join(words)


def measure_one(cfg: ModelConfig, run: RunConfig) -> dict:
    """Peak bytes per phase, read from the profiler's allocation events (the allocator's own account)."""
    from finegpt.memory.measurement import measure
    from finegpt.memory.profiled import ProfiledBytes

    return measure(cfg, run, tracker=ProfiledBytes())


def errors(cfg: ModelConfig, run: RunConfig, measured: dict) -> dict:
    """Relative error (predicted - measured) / measured per phase and of the peak."""
    e = estimate(cfg, run)
    out = {p: (e.peaks[p] - measured[p]) / measured[p] for p in PHASES}
    out["peak"] = (e.peak_bytes - measured["peak"]) / measured["peak"]
    return out


def search(
    seed: int, n: int, cap_bytes: int = 160 * MIB, compiled_share: float = 0.25, log=print, pick=None
) -> list[dict]:
    """n samples from seed, each measured and predicted: [{'config', 'cfg', 'run', 'measured', 'errors'}].
    pick: only these sample numbers (1-based; the draws stay those of the full search)."""
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    rng, rows = random.Random(seed), []
    for i in range(n):
        cfg, run = sample(rng, cap_bytes, compiled_share, torch.get_num_threads())
        if pick and i + 1 not in pick:
            continue
        started = time.time()
        measured = measure_one(cfg, run)
        row = dict(config=describe(cfg, run), cfg=cfg, run=run, measured=measured, errors=errors(cfg, run, measured))
        rows.append(row)
        worst = max(row["errors"].values(), key=abs)
        log(f"{i + 1:3d}/{n} {row['config']:<70} worst {worst:+.2%} ({time.time() - started:.1f} s)")
    return rows


def worst_error(row: dict) -> float:
    return max(row["errors"].values(), key=abs)


def summary(rows: list[dict]) -> dict:
    """Largest |error| over every phase, eager and compiled, and the most negative (an under-prediction)."""
    out = {}
    for kind, compiled in (("eager", False), ("compiled", True)):
        errs = [e for r in rows if r["run"].compile == compiled for e in r["errors"].values()]
        out[kind] = (max(map(abs, errs)) if errs else 0.0, min(errs) if errs else 0.0, len(errs) // 5)
    return out


def table(rows: list[dict]) -> list[str]:
    """Markdown, worst first: measured / predicted MiB and the error of each phase."""
    head = ["config", "train MiB measured / predicted", "optimizer step", "eval", "iter-0 eval", "worst"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: -abs(worst_error(r))):
        e = estimate(r["cfg"], r["run"])
        cells = [r["config"]]
        for p in PHASES:
            cells.append(f"{r['measured'][p] / MIB:,.2f} / {e.peaks[p] / MIB:,.2f} ({r['errors'][p]:+.2%})")
        cells.append(f"{worst_error(r):+.2%}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_section(path: Path, lines: list[str]) -> None:
    """Replace (or append) this bench's section of docs/memory_validation.md; the rest of the file stays."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Memory model validation\n"
    before, _, after = text.partition(SECTION)
    rest = after.split("\n## ", 1)[1] if "\n## " in after else ""
    new = before.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n"
    if rest:
        new += "\n## " + rest
    path.write_text(new, encoding="utf-8")


def verdict_lines(rows: list[dict]) -> list[str]:
    return [
        f"{kind} ({count} configs): largest |error| {big:.2%}, most negative {low:+.2%}"
        for kind, (big, low, count) in summary(rows).items()
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="0", help="a seed, or several (0,8,9): one table, a verdict per seed")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--cap-mib", type=int, default=160, help="largest predicted peak to measure (MiB)")
    parser.add_argument("--compiled-share", type=float, default=0.25, help="the share of compiled samples")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/memory_validation.md")
    parser.add_argument("--pick", default="", help="measure only these samples, e.g. 3,17 (implies --no-write)")
    args = parser.parse_args(argv)
    started = time.time()
    pick = {int(i) for i in args.pick.split(",") if i}
    args.no_write = args.no_write or bool(pick)
    seeds = [int(s) for s in str(args.seed).split(",")]
    by_seed = {seed: search(seed, args.n, args.cap_mib * MIB, args.compiled_share, pick=pick) for seed in seeds}
    rows = [
        dict(r, config=f"s{seed}: {r['config']}" if len(seeds) > 1 else r["config"])
        for seed in seeds
        for r in by_seed[seed]
    ]
    lines = table(rows)
    print("\n".join(lines))
    verdicts = [f"seed {seed}: " + "; ".join(verdict_lines(by_seed[seed])) for seed in seeds]
    if len(seeds) > 1:
        verdicts.append("all: " + "; ".join(verdict_lines(rows)))
    print("\n".join(verdicts))
    if not args.no_write:
        import torch

        cmd = f"python bench/memory_search.py --seed {args.seed} --n {args.n}"
        cmd += f" --compiled-share {args.compiled_share}" if args.compiled_share != 0.25 else ""
        doc = [
            SECTION,
            "",
            "Configs drawn at random across the corners (bench/memory_search.py's docstring lists them), each "
            "measured on CPU with `ProfiledBytes` (the profiler's allocator events) and predicted by "
            "`estimate()`. Each cell is measured / predicted MiB (error); worst first. The draws keep configs "
            "whose predicted peak is under the cap, so a change to the model can change which configs a seed "
            "draws.",
            "",
            f"Command: `{cmd}` ({time.time() - started:.0f} s, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads)",
            "",
            *[f"- {v}" for v in verdicts],
            "",
            *lines,
        ]
        write_section(ROOT / "docs" / "memory_validation.md", doc)
        print("wrote docs/memory_validation.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
