"""Training tokens/s on CPU: finegpt's train() against a plain nanoGPT-style loop, same configs, same shards.

    python bench/train_throughput.py                # 3 configs, 5 interleaved repeats each, 1 thread
    python bench/train_throughput.py --no_write     # print the table only

The reference loop is written here the way a typical nanoGPT-style script does it: eager, for-loop
AdamW (no fused or foreach kernels), a fresh np.memmap and torch.from_numpy per batch of random
windows. Both loops train the same GPT on the same shards; runs alternate (finegpt, reference,
reference, finegpt, ...) so a noisy machine slows both alike, and the table reports medians. One
thread by default: on a shared machine, OpenMP threads that wait for each other add more noise than
they save. Appends to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from machine import append_to_benchmarks, cpu_name  # bench/machine.py: a script sees its own folder

from finegpt.config import ModelConfig, TrainConfig, padded_vocab
from finegpt.data.shards import HEADER_BYTES, write_meta, write_shard
from finegpt.model import GPT
from finegpt.train import train

CONFIGS = [  # (label, model, batch_size, gradient_accumulation_steps, tokenizer)
    ("tiny 2L/64, T=64, B=16, bytes vocab", dict(n_layer=2, n_head=2, n_embd=64, block_size=64), 16, 1, "bytes"),
    (
        "baby 4L/128, T=128, B=8, grad acc 2, bytes vocab",
        dict(n_layer=4, n_head=4, n_embd=128, block_size=128),
        8,
        2,
        "bytes",
    ),
    ("4L/256, T=128, B=4, GPT-2 vocab", dict(n_layer=4, n_head=4, n_embd=256, block_size=128), 4, 1, "gpt2"),
]
TOKENIZERS = {
    "bytes": SimpleNamespace(name="bytes", vocab_size=257, eot=256),
    "gpt2": SimpleNamespace(name="gpt2", vocab_size=50257, eot=50256),
}


def make_shards(root: Path, tokenizer: str, train_tokens: int = 2_000_000, val_tokens: int = 50_000) -> Path:
    """Random tokens in finegpt's shard format: what a batch holds does not change its cost."""
    tok = TOKENIZERS[tokenizer]
    out = root / tokenizer
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shards = []
    for split, n in (("val", val_tokens), ("train", train_tokens)):
        name = f"{split}_000000.bin"
        write_shard(out / name, rng.integers(0, tok.vocab_size, n), tok)
        shards.append({"file": name, "split": split, "tokens": n})
    write_meta(out, tok, shards)
    return out


def model_config(model_kw: dict, tokenizer: str) -> ModelConfig:
    vocab = padded_vocab(TOKENIZERS[tokenizer].vocab_size)  # as train() pads it
    return ModelConfig(**model_kw, vocab_size=vocab, dropout=0.0, bias=True)


# ---- finegpt: the real train() ---------------------------------------------------------------------


def run_finegpt(
    model_cfg: ModelConfig, data_dir: Path, out_dir: Path, batch_size: int, gas: int, iters: int, warmup: int
) -> dict:
    cfg = TrainConfig(
        out_dir=str(out_dir),
        data_dir=str(data_dir),
        batch_size=batch_size,
        gradient_accumulation_steps=gas,
        max_iters=warmup + iters,
        eval_interval=10**6,
        eval_iters=1,
        log_interval=1,
        always_save_checkpoint=False,
        warmup_iters=0,
        decay_lr=False,
        device="cpu",
        dtype="float32",
        seed=1,
    )
    cpu_s = []  # process CPU time at each logged iteration: a busy machine delays it less than wall time
    result = train(model_cfg, cfg, overwrite=True, callback=lambda row: cpu_s.append(time.process_time()))
    rows = [r for r in result["history"] if "dt_s" in r]
    cpu_iter_s = [b - a for a, b in zip(cpu_s[1:], cpu_s[2:])][warmup - 1 :]  # cpu_s[0] is the eval at iter 0
    return {
        "iter_s": statistics.median(r["dt_s"] for r in rows[warmup:]),
        "cpu_iter_s": statistics.median(cpu_iter_s),
        "data_share": statistics.median(r["data_share"] for r in rows[warmup:]),
    }


# ---- reference: a plain nanoGPT-style loop -----------------------------------------------------------


def run_reference(model_cfg: ModelConfig, data_dir: Path, batch_size: int, gas: int, iters: int, warmup: int) -> dict:
    block_size = model_cfg.block_size
    path = data_dir / "train_000000.bin"
    dtype = np.uint16

    def get_batch():
        data = np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES)  # re-opened per batch, as nanoGPT
        ix = torch.randint(len(data) - block_size, (batch_size,))
        x = torch.stack([torch.from_numpy(data[i : i + block_size].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1 : i + 1 + block_size].astype(np.int64)) for i in ix])
        return x, y

    torch.manual_seed(1)
    model = GPT(model_cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), foreach=False, fused=False)
    model.train()
    iter_s, cpu_iter_s, data_s = [], [], []
    for it in range(warmup + iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fetch_s = 0.0
        for _ in range(gas):
            t = time.perf_counter()
            X, Y = get_batch()
            fetch_s += time.perf_counter() - t
            _, loss = model(X, Y)
            loss = loss / gas
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lossf = loss.item() * gas  # nanoGPT logs every iteration by default
        dt = time.perf_counter() - t0
        if it >= warmup:
            iter_s.append(dt)
            cpu_iter_s.append(time.process_time() - c0)
            data_s.append(fetch_s / dt)
    assert np.isfinite(lossf)
    return {
        "iter_s": statistics.median(iter_s),
        "cpu_iter_s": statistics.median(cpu_iter_s),
        "data_share": statistics.median(data_s),
    }


# ---- the table -------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="interleaved runs of each loop per config")
    ap.add_argument("--iters", type=int, default=8, help="timed iterations per run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed iterations at the start of each run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no_write", action="store_true", help="don't append to docs/benchmarks.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for label, model_kw, batch_size, gas, tokenizer in CONFIGS:
            data_dir = make_shards(root, tokenizer)
            model_cfg = model_config(model_kw, tokenizer)
            runs = {"finegpt": [], "reference": []}
            for r in range(args.repeats):
                order = ("finegpt", "reference") if r % 2 == 0 else ("reference", "finegpt")  # ABBA: drift hits both
                for name in order:
                    if name == "finegpt":
                        runs[name].append(
                            run_finegpt(model_cfg, data_dir, root / "out", batch_size, gas, args.iters, args.warmup)
                        )
                    else:
                        runs[name].append(run_reference(model_cfg, data_dir, batch_size, gas, args.iters, args.warmup))
                    run = runs[name][-1]
                    print(
                        f"  {label} | {name} run {r + 1}: {run['iter_s'] * 1e3:.1f} ms/iter wall, "
                        f"{run['cpu_iter_s'] * 1e3:.1f} ms/iter CPU",
                        flush=True,
                    )
            tokens_per_iter = batch_size * gas * model_cfg.block_size
            med = {
                k: {m: statistics.median(x[m] for x in v) for m in ("iter_s", "cpu_iter_s", "data_share")}
                for k, v in runs.items()
            }
            # each finegpt run against the reference run next to it in time: load drifts less within a pair
            for m in ("iter_s", "cpu_iter_s"):
                med[m] = statistics.median(r[m] / f[m] for f, r in zip(runs["finegpt"], runs["reference"]))
            results.append((label, model_cfg, tokens_per_iter, med))

    lines = [
        "| config | params | tokens/iter | finegpt tokens/s (CPU s) | reference tokens/s (CPU s) "
        "| finegpt / reference (CPU s) | finegpt / reference (wall s) | finegpt data share "
        "| reference data share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, model_cfg, tokens_per_iter, med in results:
        f, r = med["finegpt"], med["reference"]
        params_m = GPT(model_cfg).get_num_params(non_embedding=False) / 1e6
        lines.append(
            f"| {label} | {params_m:.2f}M | {tokens_per_iter:,} | {tokens_per_iter / f['cpu_iter_s']:,.0f} | "
            f"{tokens_per_iter / r['cpu_iter_s']:,.0f} | {med['cpu_iter_s']:.2f}x | {med['iter_s']:.2f}x | "
            f"{100 * f['data_share']:.2f} % | {100 * r['data_share']:.2f} % |"
        )
    machine = (
        f"{cpu_name()}, {args.threads} thread{'s' if args.threads > 1 else ''} (of {os.cpu_count()} "
        f"cores; load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )
    flags = [
        f"--{k} {v}"
        for k, v, d in (
            ("repeats", args.repeats, 5),
            ("iters", args.iters, 8),
            ("warmup", args.warmup, 2),
            ("threads", args.threads, 1),
        )
        if v != d
    ]
    command = " ".join(["python bench/train_throughput.py", *flags])
    section = "\n".join(
        [
            "## Training throughput on CPU: finegpt's train() vs a plain nanoGPT-style loop",
            "",
            f"Command: `{command}`  ",
            f"Date: {datetime.date.today().isoformat()}  ",
            f"Machine: {machine}",
            "",
            f"fp32, grad clip 1.0, same GPT and same shards (random tokens) for both. Each loop ran {args.repeats} "
            f"times per config, alternating; each run times {args.iters} iterations after {args.warmup} warm-up ones. "
            "Tokens/s are per second of process CPU time (one thread), which a busy machine inflates far less "
            "than wall time; the wall-time ratio is shown beside it. Cells are medians (per-iteration time within "
            "a run, then across runs); the ratios are medians over the pairs of adjacent runs of reference time / "
            "finegpt time. finegpt's figures come from "
            "its own logged rows (`dt_s`, `data_share`), so they include its per-iteration logging and "
            "metrics.jsonl write. Data share: host time spent producing batches (window reads, int64 "
            "conversion, copy) over the iteration's wall time.",
            "",
            *lines,
            "",
            "The reference is eager PyTorch with for-loop AdamW (PyTorch's CPU default), a fresh np.memmap and "
            "torch.stack of torch.from_numpy windows per batch, and loss.item() every iteration. finegpt uses "
            "fused AdamW (one kernel over all parameters), BatchLoader (each window once per epoch, in a seeded "
            "order looked up from the step number; one int64 array per batch) and fetches the next micro-batch "
            "while the current one computes, which on a GPU overlaps the host's work with the device's (on a CPU "
            "both share the same cores).",
            "",
        ]
    )
    print()
    print(section)
    if not args.no_write:
        append_to_benchmarks(section)


if __name__ == "__main__":
    main()
