"""Sampling speed on CPU: KV-cache vs full-recompute generation at 128, 512 and 1024 new tokens.

    python bench/sampling.py                 # 6L/384/6H, block 1024, GPT-2 vocab, 2 threads
    python bench/sampling.py --no_write      # print the table only

Both paths generate greedily from the same one-token prompt, so they must produce the same tokens;
the bench checks that. Prints a table and appends it to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import torch
from machine import append_to_benchmarks, cpu_name  # bench/machine.py: a script sees its own folder

from finegpt.config import ModelConfig
from finegpt.model import GPT


def timed_generate(model, idx, n_tokens: int, use_cache: bool):
    t0 = time.perf_counter()
    out = model.generate(idx, n_tokens, temperature=0, use_cache=use_cache)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n_layer", type=int, default=6)
    ap.add_argument("--n_head", type=int, default=6)
    ap.add_argument("--n_embd", type=int, default=384)
    ap.add_argument("--block_size", type=int, default=1024)
    ap.add_argument("--vocab_size", type=int, default=50304, help="50304: GPT-2 BPE; 320: the bytes tokenizer")
    ap.add_argument("--lengths", default="128,512,1024", help="new tokens per run, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no_write", action="store_true", help="don't append to docs/benchmarks.md")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig(
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        block_size=args.block_size,
        vocab_size=args.vocab_size,
    )
    model = GPT(cfg).eval()
    idx = torch.tensor([[min(50256, args.vocab_size - 1)]])  # one token, as an empty prompt starts from EOT
    model.generate(idx, 8, temperature=0, use_cache=True)  # warm-up: first-call allocations
    model.generate(idx, 8, temperature=0, use_cache=False)

    rows = []
    for n in [int(x) for x in args.lengths.split(",")]:
        cached, cache_s = timed_generate(model, idx, n, use_cache=True)
        full, full_s = timed_generate(model, idx, n, use_cache=False)
        assert cached.tolist() == full.tolist(), f"KV cache changed the tokens at {n} new tokens"
        rows.append((n, n / full_s, n / cache_s, full_s / cache_s))
        print(f"  {n} new tokens: full {full_s:.1f} s, cache {cache_s:.1f} s", flush=True)

    params_m = model.get_num_params() / 1e6
    title = (
        f"KV-cache vs full-recompute generation, {cfg.n_layer}L/{cfg.n_embd}/{cfg.n_head}H, "
        f"block {cfg.block_size}, vocab {cfg.vocab_size} ({params_m:.1f}M params), fp32, batch 1, greedy"
    )
    lines = ["| new tokens | full recompute tokens/s | KV cache tokens/s | speed-up |", "|---|---|---|---|"]
    lines += [f"| {n} | {full:.1f} | {cache:.1f} | {ratio:.1f}x |" for n, full, cache, ratio in rows]
    machine = (
        f"{cpu_name()}, {args.threads} threads (of {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end), torch {torch.__version__}, Python {platform.python_version()}"
    )
    defaults = {a.dest: a.default for a in ap._actions}
    command = " ".join(
        ["python bench/sampling.py"]
        + [f"--{k} {v}" for k, v in vars(args).items() if k != "no_write" and v != defaults[k]]
    )
    section = "\n".join(
        [
            f"## Sampling: {title}",
            "",
            f"Command: `{command}`  ",
            f"Date: {datetime.date.today().isoformat()}  ",
            f"Machine: {machine}",
            "",
            *lines,
            "",
            "Both paths produce the same tokens (checked). Full recompute runs the whole "
            "context through the model for every new token, so its cost per token grows with "
            "the length; the cache runs one token per step.",
            "",
        ]
    )
    print()
    print(section)
    if not args.no_write:
        append_to_benchmarks(section)


if __name__ == "__main__":
    main()
