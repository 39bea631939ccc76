"""Bench: end-to-end `prepare` tokens/s against bare tiktoken `encode_ordinary_batch` on the same documents and cores.

Generates (once, cached in data/bench/) a FineWeb-schema parquet holding >= 200 MB of English text, recombined
from the Shakespeare plays and Python's documentation topics, with FineWeb-like document lengths.
Usage: python bench/prepare_throughput.py [--cores 2] [--mb 200]. Prints a table, appends it to docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def english_lines() -> list[str]:
    import pydoc_data.topics

    from finegpt.data import iter_documents

    text = "\n".join(iter_documents("shakespeare")) + "\n".join(pydoc_data.topics.topics.values())
    return [line for line in text.splitlines() if len(line.strip()) > 20]


def make_parquet(path: Path, target_mb: int, seed: int = 0) -> None:
    """Documents of about lognormal(mean ~3 kB) size, each a run of random real lines, until target_mb of text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = english_lines()
    rng = np.random.default_rng(seed)
    docs, size_bytes = [], 0
    while size_bytes < target_mb * 1e6:
        n_chars = int(min(rng.lognormal(7.6, 0.9), 100_000))
        picked, got = [], 0
        for i in rng.integers(0, len(lines), size=n_chars // 30 + 1):
            picked.append(lines[i])
            got += len(lines[i]) + 1
            if got >= n_chars:
                break
        docs.append(" ".join(picked) if rng.random() < 0.5 else "\n".join(picked))
        size_bytes += len(docs[-1].encode())
    n = len(docs)
    table = pa.table(
        {
            "text": docs,
            "id": [f"<urn:uuid:{i:012d}>" for i in range(n)],
            "dump": ["CC-MAIN-2024-10"] * n,
            "url": [f"https://example.com/{i}" for i in range(n)],
            "date": ["2024-02-21T00:00:00Z"] * n,
            "file_path": ["s3://commoncrawl/bench.warc.gz"] * n,
            "language": ["en"] * n,
            "language_score": [0.95] * n,
            "token_count": [0] * n,
        }
    )  # token_count unused here
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=1000)
    os.replace(tmp, path)


def cpu_s(who) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def bare_tiktoken(texts: list[str], cores: int) -> tuple[int, float, float]:
    import tiktoken

    enc = tiktoken.get_encoding("gpt2")
    enc.encode_ordinary("warm up")
    c0, t0, n_tokens = cpu_s(resource.RUSAGE_SELF), time.perf_counter(), 0
    for i in range(0, len(texts), 1000):  # batches, so the id lists don't all stay in memory
        n_tokens += sum(len(ids) for ids in enc.encode_ordinary_batch(texts[i : i + 1000], num_threads=cores))
    return n_tokens, time.perf_counter() - t0, cpu_s(resource.RUSAGE_SELF) - c0


def run_prepare(source: str, parquet: Path, out: Path, cores: int):
    """prepare in a fresh process, as `finegpt prepare` runs: (stats, wall s, CPU s of it and its workers)."""
    cmd = [
        sys.executable,
        "-m",
        "finegpt",
        "prepare",
        "--source",
        source,
        "--out",
        str(out),
        "--tokenizer",
        "gpt2",
        "--val_tokens",
        "1e6",
        "--workers",
        str(cores),
        "--overwrite",
        "--no_progress",
    ]
    cmd += ["--data_files", str(parquet)] if source == "fineweb" else []
    c0, t0 = cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall_s, cpu = time.perf_counter() - t0, cpu_s(resource.RUSAGE_CHILDREN) - c0
    stats = json.loads((out / "stats.json").read_text())
    shutil.rmtree(out)
    return stats, wall_s, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--mb", type=int, default=200, help="MB of text in the generated parquet")
    parser.add_argument("--repeats", type=int, default=2, help="alternate the contenders this often; report the best")
    parser.add_argument("--no_write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):  # both contenders get the same cores (children inherit this)
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    import pyarrow.parquet as pq
    import tiktoken
    import torch

    bench_dir = ROOT / "data" / "bench"
    bench_dir.mkdir(parents=True, exist_ok=True)
    parquet = bench_dir / f"fineweb-synthetic-{args.mb}mb.parquet"
    if not parquet.exists():
        t0 = time.perf_counter()
        make_parquet(parquet, args.mb)
        print(f"generated {parquet.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    texts = pq.read_table(parquet, columns=["text"])["text"].to_pylist()
    text_mb = sum(len(t.encode()) for t in texts) / 1e6
    load_avg = os.getloadavg()[0]

    best = {}
    for _ in range(args.repeats):
        runs = {"bare": bare_tiktoken(texts, args.cores)}
        for source in (str(parquet), "fineweb"):
            stats, wall_s, cpu = run_prepare(source, parquet, bench_dir / "prepared", args.cores)
            runs[source] = (stats["tokens"] - stats["documents"], wall_s, cpu)  # FineWeb's convention: no EOT
        for key, run in runs.items():
            if key not in best or run[1] < best[key][1]:
                best[key] = run
    bare_tokens, bare_s, bare_cpu = best["bare"]
    assert all(run[0] == bare_tokens for run in best.values()), best

    names = {
        "bare": "bare tiktoken encode_ordinary_batch, text already in memory",
        str(parquet): "finegpt prepare --source <parquet> (pyarrow -> workers -> shards)",
        "fineweb": "finegpt prepare --source fineweb --data_files <parquet> (HF datasets streaming)",
    }
    table = ["| pipeline | tokens | wall s | tokens/s | vs bare | CPU s |", "|---|---:|---:|---:|---:|---:|"]
    for key, (n, wall_s, cpu) in best.items():
        table.append(
            f"| {names[key]} | {n:,} | {wall_s:.1f} | {n / wall_s:,.0f} | {bare_s / wall_s:.2f}x | {cpu:.1f} |"
        )
    machine = (
        f"{platform.machine()}, {args.cores} of {os.cpu_count()} cores (load average {load_avg:.1f} at the start), "
        f"Python {platform.python_version()}, torch {torch.__version__}, tiktoken {tiktoken.__version__}"
    )
    cmd = f"python bench/prepare_throughput.py --cores {args.cores} --mb {args.mb} --repeats {args.repeats}"
    section = "\n".join(
        [
            f"## prepare throughput ({datetime.date.today().isoformat()})",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {machine}  ",
            f"Input: one generated FineWeb-schema parquet, {len(texts):,} documents, {text_mb:.0f} MB of text. "
            "Tokens are counted without EOT, as FineWeb's token_count. Each prepare runs as a fresh `finegpt prepare` "
            "process, so its wall time includes start-up (worker spawn, tokenizer load, imports), reading the parquet "
            f"and writing the shards; best of {args.repeats} alternating runs. CPU s: the process and its workers.",
            "",
            *table,
            "",
        ]
    )
    print(section)
    if not args.no_write:
        bench_md = ROOT / "docs" / "benchmarks.md"
        old = (
            bench_md.read_text()
            if bench_md.exists()
            else "# Benchmarks\n\nMeasured results; each section names the command that produced it.\n"
        )
        bench_md.write_text(old.rstrip("\n") + "\n\n" + section)


if __name__ == "__main__":
    main()
