"""Run the lab, notebooks 01 -> 05, headless in full mode on this CUDA machine (as a student would on
Colab, in one lab folder), and write docs/lab_timing.md: each notebook's time against its expected time,
04's tokens/s, MFU and final val loss, and a sample from the trained model.

    python tools/lab_run.py                          # FineWeb sample-10BT from the Hub, 04's 45-minute budget
    python tools/lab_run.py --short                  # the whole lab in a few minutes (04 plans 15 s of training)
    python tools/lab_run.py --data 'corpus/*.parquet'   # offline: local FineWeb-schema files (a `text` column)
    python tools/lab_run.py --data shakespeare --short  # offline: the embedded plays, one scene per row, GPT-2 tokens
    python tools/lab_run.py --dry-run --out /tmp/lab_timing.md   # CPU, smoke mode: checks this tool itself

tiktoken needs GPT-2's BPE files: offline, point TIKTOKEN_CACHE_DIR at a copy. With local data the Hub is
never contacted (HF_HUB_OFFLINE=1), so the GPT-2 comparisons in 04 and 05 print that they were skipped. The
table says which data the run used; a run that is not on FineWeb says so in its first line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NAMES = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))}
SHORT_TRAIN_MINUTES = 0.25  # the plan's minutes at its assumed MFU; a small model's real MFU is often lower


def execute(py: Path, workdir: Path, env: dict, timeout_s: int) -> tuple[nbformat.NotebookNode, float, str | None]:
    """Run one notebook in a fresh kernel with `env`; (the executed notebook, wall seconds, the error that
    stopped it or None). A failing cell stops that notebook, not the lab: the next one still runs."""
    nb = jupytext.read(py)
    error = None
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        NotebookClient(
            nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        ).execute()
    except CellExecutionError as e:
        error = f"{e.ename}: {e.evalue}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb, time.perf_counter() - t0, error


def outputs_text(nb: nbformat.NotebookNode) -> str:
    """Everything the notebook printed, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text") or out.get("data", {}).get("text/plain", "") or "")
            if out.get("output_type") == "error":
                parts.append("\n".join(out.get("traceback", [])))
    return "".join(p if isinstance(p, str) else "".join(p) for p in parts)


def run_summary(run_dir: Path) -> dict:
    """04's median tokens/s and MFU after warm-up, and its final val loss, from metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "tokens_per_s" in r][1:] or [r for r in rows if "tokens_per_s" in r]
    mfus = [r["mfu"] for r in train if r.get("mfu") is not None]
    vals = [r["val/loss"] for r in rows if "val/loss" in r]
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in train) if train else None,
        "mfu": statistics.median(mfus) if mfus else None,
        "final_val_loss": vals[-1] if vals else None,
        "iters": max((r["step"] for r in rows if "step" in r), default=None),
    }


def trained_sample(run_dir: Path) -> str:
    from finegpt.sample import generate_text, load_for_sampling

    model, tok, _ = load_for_sampling(run_dir)
    prompt = "ROMEO:\n" if tok.name == "bytes" else "The meaning of life is"
    return generate_text(model, tok, prompt, max_new_tokens=200 if tok.name == "bytes" else 80, seed=1337)[0]


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{gpu}, {cores} CPU cores, torch {torch.__version__}, Python {platform.python_version()}"


def report(args, data: str, times: dict, errors: dict, timings: dict, summary: dict, sample: str, command: str) -> str:
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    lines = [
        "# The lab, timed",
        "",
        f"**Data: {data}.**",
        "",
        f"Command: `{command}`  ",
        f"Date: {date.today().isoformat()}  ",
        f"Machine: {machine()}  ",
        f"Mode: {args.mode}"
        + ("" if args.dry_run else f"; 04's training budget: {args.train_minutes or 45:g} minutes"),
        "",
        "| notebook | took (min) | expected here (min) | result |",
        "|---|---:|---:|---|",
    ]
    for nb, seconds in times.items():
        expected = timings.get(nb, {}).get("expected_s")
        result = f"FAILED: {errors[nb]}" if nb in errors else "ran to the end"
        lines.append(f"| {NAMES[nb].stem} | {seconds / 60:.1f} | {fmt(expected and expected / 60, '.1f')} | {result} |")
    lines += [
        f"| total | {sum(times.values()) / 60:.1f} | | |",
        "",
        "Times are wall time per notebook from kernel start, as nbclient ran it; expected is what the notebook's "
        "first cell printed, from `finegpt.lab.clock` (finegpt's FLOPs model at the assumed MFU, plus its named "
        "assumptions for tokenizing, downloads and small cells).",
        "",
        f"Notebook 04: {fmt(summary.get('iters'), ',')} iterations, median {fmt(summary.get('tokens_per_s'), ',.0f')} "
        f"tokens/s, median MFU {fmt(summary.get('mfu') and 100 * summary['mfu'], '.1f')}"
        f"{' %' if summary.get('mfu') else ' (no GPU peak to divide by)'}, final val loss "
        f"{fmt(summary.get('final_val_loss'), '.3f')} (from its metrics.jsonl).",
        "",
        "A sample from the trained model (seed 1337, temperature 0.8):",
        "",
        "```",
        sample.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_report(args, data: str, times: dict, errors: dict, mode_dir: Path, command: str) -> None:
    """docs/lab_timing.md (or --out) from the notebooks run so far and what they left in the lab folder."""
    timings_path = mode_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    run_dir = mode_dir / "run-04"
    has_run = (run_dir / "ckpt.pt").exists()
    summary = run_summary(run_dir) if has_run else {}
    sample = trained_sample(run_dir) if has_run else "(notebook 04 did not run)"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(args, data, times, errors, timings, summary, sample, command))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="fineweb", help="fineweb (the Hub), shakespeare (offline), or a file glob")
    p.add_argument("--short", action="store_true", help=f"04 trains {SHORT_TRAIN_MINUTES} minutes")
    p.add_argument("--train-minutes", type=float, default=None, help="04's training budget (default 45)")
    p.add_argument("--dry-run", action="store_true", help="CPU, smoke mode: check the tool without a GPU")
    p.add_argument("--notebooks", nargs="*", default=sorted(NAMES), help="two-digit prefixes, in order")
    p.add_argument("--home", type=Path, default=None, help="the lab folder (default: a fresh temporary one)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "lab_timing.md")
    p.add_argument("--save-notebooks", type=Path, default=None, help="keep the executed notebooks here")
    p.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = p.parse_args(argv)
    args.mode = "smoke" if args.dry_run else "full"
    args.train_minutes = args.train_minutes or (SHORT_TRAIN_MINUTES if args.short else None)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            sys.exit("lab_run: full mode needs a CUDA GPU; use --dry-run to check the tool on a CPU")
    with tempfile.TemporaryDirectory() as tmp:
        home = (args.home or Path(tmp) / "finegpt-lab").resolve()
        home.mkdir(parents=True, exist_ok=True)
        env = {"FINEGPT_MODE": args.mode, "FINEGPT_HOME": str(home)}
        if args.train_minutes:
            env["FINEGPT_TRAIN_MINUTES"] = str(args.train_minutes)
        data = "FineWeb sample-10BT, streamed from the Hugging Face Hub"
        if args.dry_run:
            data = "smoke mode on the CPU (a check of this tool): the plays, tiny models, no timing worth reading"
        elif args.data == "shakespeare":
            from finegpt.lab import shakespeare_as_fineweb

            env["FINEGPT_FINEWEB_FILES"] = str(shakespeare_as_fineweb(home / "shakespeare-fineweb.parquet"))
            data = (
                "NOT FineWeb: the embedded Shakespeare plays, one scene per row in FineWeb's schema, through GPT-2's "
                "tokenizer (offline); its val loss says nothing about FineWeb"
            )
        elif args.data != "fineweb":
            env["FINEGPT_FINEWEB_FILES"] = args.data
            data = f"NOT the Hub's FineWeb: local FineWeb-schema files `{args.data}`"
        if args.dry_run or args.data != "fineweb":  # local data: never wait on the network (GPT-2 is then skipped)
            env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        times, errors = {}, {}
        command = "python tools/lab_run.py " + " ".join(argv if argv is not None else sys.argv[1:])
        for nb in args.notebooks:
            executed, seconds, error = execute(NAMES[nb], home, env, args.timeout)
            times[nb] = seconds
            if error:
                errors[nb] = error
            print(f"{NAMES[nb].name}: {seconds:.1f} s" + (f", FAILED: {error}" if error else ""), flush=True)
            if args.save_notebooks:
                args.save_notebooks.mkdir(parents=True, exist_ok=True)
                nbformat.write(executed, args.save_notebooks / NAMES[nb].with_suffix(".ipynb").name)
            write_report(args, data, times, errors, home / args.mode, command.strip())  # a cut-short lab keeps its rows
    print(f"wrote {args.out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
