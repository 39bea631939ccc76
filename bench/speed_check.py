"""Speed on this CPU: the speed model against measured steps, `finegpt speed` against the `finegpt train` that
follows it, and a time-boxed `finegpt train --max_minutes`. Writes docs/speed.md and calibration.json's speed.cpu.

    python bench/speed_check.py                      # the sweep and 3 probe-vs-train pairs of 60 s
    python bench/speed_check.py --train_seconds 30   # shorter trains on a busy machine (the doc says so)
    python bench/speed_check.py --no_write           # print only
    python bench/speed_check.py --time_box           # also tiny.py --max_minutes=1, killed and --resume (2 min)

One thread throughout (OMP_NUM_THREADS=1): on a shared machine, OpenMP threads that wait for each other add more
noise than they save, and the probe and the train must run alike.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_name  # bench/machine.py: a script sees its own folder

from finegpt.config import ModelConfig, TrainConfig
from finegpt.memory import calibrate, calibration
from finegpt.memory.probe import cpu_yardstick, probe
from finegpt.memory.speed import CALIBRATION_POINTS, cpu_step_s, predict, work

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "speed.md"
# (label, model fields, vocab, batch_size, gradient_accumulation_steps): toy to small, bytes and GPT-2 vocabs
CPU_SWEEP = [
    ("2L/64, T=64, B=16", dict(n_layer=2, n_head=2, n_embd=64, block_size=64), 320, 16, 1),
    ("4L/128, T=64, B=16 (the quickstart)", dict(n_layer=4, n_head=4, n_embd=128, block_size=64), 320, 16, 1),
    ("4L/128, T=128, B=8, grad acc 2", dict(n_layer=4, n_head=4, n_embd=128, block_size=128), 320, 8, 2),
    ("6L/192, T=128, B=8", dict(n_layer=6, n_head=6, n_embd=192, block_size=128), 320, 8, 1),
    ("8L/256, T=64, B=8", dict(n_layer=8, n_head=8, n_embd=256, block_size=64), 320, 8, 1),
    ("2L/128, T=256, B=4, GPT-2 vocab", dict(n_layer=2, n_head=2, n_embd=128, block_size=256), 50304, 4, 1),
    ("4L/256, T=128, B=4, GPT-2 vocab", dict(n_layer=4, n_head=4, n_embd=256, block_size=128), 50304, 4, 1),
]
TRAINED = (0, 1, 3)  # the sweep rows trained after their probe (bytes vocab: the plays' shards)
MIN_SPREAD = (0.75, 1.33)  # a shared CPU's step time moves by a quarter between runs at the same yardstick


def train_cfg(batch_size: int, accumulation: int, **kw) -> TrainConfig:
    return TrainConfig(
        batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        device="cpu",
        dtype="float32",
        compile=False,
        max_iters=1000,
        data_dir="no-such-data",  # random tokens
        **kw,
    )


def cpu_share(fn):
    """(fn(), the share of one core this process had while fn ran): on a shared machine other processes take
    turns on the cores, and a yardstick measured a moment before a probe may have had another share."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.process_time() - cpu) / (time.perf_counter() - wall)


def sweep(seconds: float) -> list[dict]:
    """Each config probed, with the machine's yardstick measured just before and just after it (their geometric
    mean), rescaled from the share of a core the yardstick had to the share the probe had: the machine and its
    load while the probe ran."""
    rows = []
    for label, fields, vocab, b, g in CPU_SWEEP:
        cfg = ModelConfig(**fields, vocab_size=vocab, bias=False)
        before, before_share = cpu_share(cpu_yardstick)
        s, share = cpu_share(functools.partial(probe, cfg, train_cfg(b, g), seconds))
        after, after_share = cpu_share(cpu_yardstick)
        load = share / float(np.sqrt(before_share * after_share))  # > 1: the probe had more of a core
        yardstick = {k: float(np.sqrt(before[k] * after[k])) for k in before}
        yardstick = {k: v / load if k == "op_s" else v * load for k, v in yardstick.items()}
        rows.append(
            dict(label=label, cfg=cfg, batch_size=b, accumulation=g, step_s=s.step_s, tokens_per_s=s.tokens_per_s)
        )
        rows[-1].update(yardstick=yardstick, share=share)
        print(
            f"{label}: {s.tokens_per_s:,.0f} tokens/s ({1000 * s.step_s:.1f} ms/iter), {share:.0%} of a core, "
            f"yardstick {yardstick}",
            flush=True,
        )
    return rows


def fitted_step_s(row: dict, shares: dict) -> float:
    y = row["yardstick"]
    rates = dict(flops_per_s=shares["flops"] * y["flops_per_s"], bytes_per_s=shares["bytes"] * y["bytes_per_s"])
    w = work(row["cfg"], row["batch_size"], fp32=True)
    return cpu_step_s(w, row["accumulation"], **rates, op_s=shares["ops"] * y["op_s"])


def fit_cpu(rows: list[dict]) -> dict:
    """The shares of the yardstick (matmul FLOP/s, add bytes/s, tiny-op seconds) a training step runs at,
    minimizing the relative error of cpu_step_s over the rows, each row against its own yardstick. The matmul
    and the traffic terms grow together across small models, so a free fit trades one for the other on a
    noisy machine: each share is searched on a grid (matmul 0.05-1.5, traffic 0.02-3), the op share solved by
    least squares (>= 0) at each point. The spread is the range of measured / fitted, widened by 10 %, and at
    least MIN_SPREAD."""
    A = []
    for r in rows:
        w, g, y = work(r["cfg"], r["batch_size"], fp32=True), r["accumulation"], r["yardstick"]
        moved = g * (w["logit_bytes"] + w["activation_bytes"] + w["weight_bytes"]) + w["opt_bytes"]
        ops = g * w["kernels"] + w["opt_kernels"]
        A.append([g * w["flops"] / y["flops_per_s"], moved / y["bytes_per_s"], ops * y["op_s"]])
    A, t = np.array(A), np.array([r["step_s"] for r in rows])
    best = None
    for flops in np.geomspace(0.05, 1.5, 41):
        for moved in np.geomspace(0.02, 3.0, 41):
            rest = (t - A[:, 0] / flops - A[:, 1] / moved) / t  # what the per-op cost must explain
            c = A[:, 2] / t
            ops = max(0.0, float(c @ rest / (c @ c)))
            err = float(np.sum((rest - c * ops) ** 2))
            if best is None or err < best[0]:
                best = (err, flops, moved, ops)
    shares = {"flops": float(f"{best[1]:.4g}"), "bytes": float(f"{best[2]:.4g}"), "ops": float(f"{best[3]:.4g}")}
    ratios = [r["step_s"] / fitted_step_s(r, shares) for r in rows]
    spread = [
        round(float(min(MIN_SPREAD[0], min(ratios) * 0.9)), 3),
        round(float(max(MIN_SPREAD[1], max(ratios) * 1.1)), 3),
    ]
    yardstick = {k: float(f"{np.median([r['yardstick'][k] for r in rows]):.4g}") for k in rows[0]["yardstick"]}
    return {"shares": shares, "yardstick": yardstick, "spread": spread}


# ---- `finegpt speed` then `finegpt train`, as a user runs them ---------------------------------------------


def config_file(folder: Path, row: tuple, data_dir: Path) -> Path:
    label, fields, vocab, b, g = row
    settings = {**fields, "n_layer": fields["n_layer"], "bias": False, "dropout": 0.0, "batch_size": b}
    settings.update(gradient_accumulation_steps=g, device="cpu", dtype="float32", compile=False)
    settings.update(data_dir=str(data_dir), eval_interval=250, eval_iters=10, log_interval=10, warmup_iters=20)
    settings.update(learning_rate=2e-3, min_lr=2e-4, max_iters=100_000)
    path = folder / f"cfg{fields['n_layer']}_{fields['n_embd']}_{fields['block_size']}.py"
    path.write_text("".join(f"{k} = {v!r}\n" for k, v in settings.items()), encoding="utf-8")
    return path


def run_lines(cmd: list[str], cwd: Path) -> list[tuple[float, str]]:
    """Each stdout line of a command with the time it arrived."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [(time.time(), line.rstrip("\n")) for line in p.stdout]
    if p.wait() != 0:
        raise SystemExit("\n".join(line for _, line in lines[-20:]))
    return lines


def probe_then_train(folder: Path, cfg_path: Path, minutes: float, probe: bool = True, out: Path | None = None) -> dict:
    finegpt = [sys.executable, "-m", "finegpt"]
    speed = json.loads(run_lines([*finegpt, "speed", str(cfg_path), "--json"], folder)[-1][1]) if probe else {}
    out = out or folder / f"out_{cfg_path.stem}"
    lines = run_lines([*finegpt, "train", str(cfg_path), f"--max_minutes={minutes}", f"--out_dir={out}"], folder)
    start = next(t for t, line in lines if "parameters |" in line)  # the loop starts: the budget's clock
    end = lines[-1][0]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "tokens_per_s" in r]
    plan = next(line for _, line in lines if line.startswith("time box (planned"))
    plan += "".join(f"; then {line}" for _, line in lines if line.startswith("time box (re-planned"))
    return {
        "probe": speed.get("tokens_per_s"),
        "train": statistics.median(r["tokens_per_s"] for r in steps[1:]),  # the first row holds the warm-up
        "took_s": end - start,
        "last_lr": steps[-1]["lr"],
        "max_iters": rows[-1]["step"],
        "plan": plan,
    }


TINY = dict(n_layer=2, n_head=2, n_embd=32, block_size=32)


def time_box_check(folder: Path, data: Path, minutes: float) -> dict:
    """`finegpt train tiny.py --max_minutes=M`: how long it took from the loop's start and its last logged lr;
    then the same run killed (SIGKILL) after its first planned checkpoint, and --resume: the max_iters it ends at."""
    cfg = config_file(folder, ("tiny", TINY, 320, 8, 2), data)
    cfg.rename(folder / "tiny.py")
    out = folder / "out_box"
    r = probe_then_train(folder, folder / "tiny.py", minutes, probe=False, out=out)
    killed = folder / "out_killed"
    cmd = [sys.executable, "-m", "finegpt", "train", "tiny.py", f"--max_minutes={minutes}", f"--out_dir={killed}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from finegpt.train.checkpoint import load_checkpoint

    while child.poll() is None:  # wait for a checkpoint that holds the plan, then kill at once
        time.sleep(0.5)
        try:
            if (killed / "ckpt.pt").exists() and "time_box" in load_checkpoint(killed):
                break
        except Exception:  # noqa: BLE001 (a checkpoint being replaced this instant)
            continue
    child.kill()
    child.wait()
    planned = load_checkpoint(killed)["time_box"]["max_iters"]
    run_lines([*cmd, "--resume"], folder)
    rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    return {**r, "killed_plan": planned, "resumed_end": rows[-1]["step"]}


def make_data(folder: Path) -> Path:
    from finegpt.data import prepare

    prepare("shakespeare", folder / "data", "bytes", progress=False)
    return folder / "data"


# ---- docs/speed.md ---------------------------------------------------------------------------------------


def gpu_table() -> list[str]:
    lines = [
        "| point | card | batch (B x grad acc x T) | mode | measured MFU | predicted MFU (range) | measured by |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for name, fields, gpu, b, g, compiled, measured in CALIBRATION_POINTS:
        p = predict(ModelConfig(**fields, vocab_size=50304, bias=False), gpu, b, g, compiled)
        lo, hi = p.mfu_range
        source = (
            "`python tools/lab_run.py --data shakespeare --short`" if "lab" in name else "`python bench/gpu_check.py`"
        )
        lines.append(
            f"| {name} | {gpu} | {b} x {g} x {fields['block_size']} | {'compiled' if compiled else 'eager'} | "
            f"{100 * measured:.1f} % | {100 * p.mfu:.1f} % ({100 * lo:.1f}-{100 * hi:.1f}) | {source} |"
        )
    return lines


def cpu_table(rows: list[dict]) -> list[str]:
    """Each row against the shipped constants (calibration.json's speed.cpu as this run found it) at the row's
    own yardstick: no fit to these rows."""
    lines = [
        "| config | share of a core | yardstick (matmul GFLOP/s, add GB/s, op µs) | measured tokens/s "
        "| predicted tokens/s (range) | in range |",
        "|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        y = r["yardstick"]
        p = predict(r["cfg"], None, r["batch_size"], r["accumulation"], cpu_yardstick=y)
        tokens = r["batch_size"] * r["accumulation"] * r["cfg"].block_size
        lo, hi = tokens / p.step_s_range[1], tokens / p.step_s_range[0]
        ok = "yes" if lo <= r["tokens_per_s"] <= hi else "NO"
        lines.append(
            f"| {r['label']} | {r['share']:.0%} | {y['flops_per_s'] / 1e9:.0f}, {y['bytes_per_s'] / 1e9:.1f}, "
            f"{1e6 * y['op_s']:.0f} "
            f"| {r['tokens_per_s']:,.0f} | {p.tokens_per_s:,.0f} ({lo:,.0f}-{hi:,.0f}) | {ok} |"
        )
    return lines


def time_box_lines(r: dict) -> list[str]:
    return [
        "",
        "### The time box: `finegpt train tiny.py --max_minutes=1`, then killed and resumed",
        "",
        f"tiny.py: {TINY}, batch 8 x 2, eval every 250 steps, min_lr 2e-4. It ran {r['took_s']:.1f} s from the "
        f"loop's start (budget 60 s, evals and checkpoints included), {r['max_iters']:,} steps at a median "
        f"{r['train']:,.0f} tokens/s; its last logged lr was {r['last_lr']:.4g}. Its plan: {r['plan']}.",
        "",
        f"The same command killed with SIGKILL after its first checkpoint holding the plan (max_iters "
        f"{r['killed_plan']:,}), then `--resume`: it ended at step {r['resumed_end']:,}.",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="probe time per sweep config")
    ap.add_argument("--train_seconds", type=float, default=60.0, help="each time-boxed finegpt train")
    ap.add_argument("--no_write", action="store_true", help="print; write neither docs/speed.md nor calibration")
    ap.add_argument("--sweep_only", action="store_true", help="the sweep and the refit only (no doc)")
    ap.add_argument("--time_box", action="store_true", help="also: tiny.py --max_minutes=1, and killed + --resume")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0, load_before = time.time(), os.getloadavg()[0]
    rows = sweep(args.seconds)
    shipped_shares = calibration.active().get("speed", {}).get("cpu", {}).get("shares", "the code's defaults")
    table = cpu_table(rows)  # before the refit below: no fit to these rows
    print("\n".join(table))
    fitted = fit_cpu(rows)
    print("refitted CPU shares:", fitted)
    if not args.no_write:
        calibrate.write({"speed": {"cpu": {**fitted, "source": f"python bench/speed_check.py, {cpu_name()}"}}})
    if args.sweep_only:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = make_data(folder)
        pairs = []
        for i in TRAINED:
            r = probe_then_train(folder, config_file(folder, CPU_SWEEP[i], data), args.train_seconds / 60)
            pairs.append((CPU_SWEEP[i][0], r))
            print(CPU_SWEEP[i][0], r, flush=True)
        box = time_box_check(folder, data, 1.0) if args.time_box else None
    budget = args.train_seconds
    pair_lines = [
        "| config | `finegpt speed` tokens/s | `finegpt train` median tokens/s | speed / train | within ±15 % "
        "| train took (s, from the loop's start) | last lr (min_lr 2e-4) | max_iters chosen |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for label, r in pairs:
        ratio = r["probe"] / r["train"]
        close = "yes" if abs(ratio - 1) <= 0.15 else "NO"
        pair_lines.append(
            f"| {label} | {r['probe']:,.0f} | {r['train']:,.0f} | {ratio:.2f} | {close} "
            f"| {r['took_s']:.1f} of {budget:g} | {r['last_lr']:.3g} | {r['max_iters']:,} |"
        )
    when = datetime.date.today().isoformat()
    machine = f"{cpu_name()}, {os.cpu_count()} cores (1 thread used), torch {torch.__version__}"
    section = "\n".join(
        [
            f"## This CPU ({when})",
            "",
            f"Command: `python bench/speed_check.py{'' if budget == 60 else f' --train_seconds {budget:g}'}"
            f"{' --time_box' if box else ''}`  ",
            f"Machine: {machine}, shared: load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at "
            f"the end. Total time {time.time() - t0:.0f} s.",
            "",
            "### The speed model against measured steps",
            "",
            f"`finegpt.memory.probe` on random tokens, {args.seconds:g} s per config after warm-up, with "
            "`finegpt.memory.probe.cpu_yardstick()` measured just before and after each (a 256 x 256 matmul, an add "
            "over 16 MiB, one tiny autograd op: the machine and its load at that moment). Predicted: the shares in "
            f"calibration.json's speed.cpu as this run found them ({shipped_shares}) times each row's yardstick, "
            "so no fit to these rows. Afterwards the shares were refitted to these rows and written for the next "
            f"run: {fitted}.",
            "",
            *table,
            "",
            "### `finegpt speed`, then a time-boxed `finegpt train` of the same config",
            "",
            f"Each config: `finegpt speed cfg.py --json`, then `finegpt train cfg.py --max_minutes={budget / 60:g}` "
            "on the plays' byte shards; the train's tokens/s is the median of its logged rows after the first.",
            "",
            *pair_lines,
            "",
            *[f"- {label}: {r['plan']}" for label, r in pairs],
            *(time_box_lines(box) if box else []),
        ]
    )
    print(section)
    if not args.no_write:
        write_doc(section)
    return 0


def write_doc(cpu_section: str) -> None:
    head = "\n".join(
        [
            "# Speed: predicted against measured",
            "",
            "finegpt.memory.speed predicts a training step's time from the model's work: matmul FLOPs at a share of "
            "the card's peak (lower for narrow layers), the LM head's logits and the loss over them, every layer's "
            "elementwise traffic at the card's memory bandwidth, and a cost per kernel. `finegpt speed` measures the "
            "real step on the device at hand.",
            "",
            "```bash",
            "finegpt speed configs/gpt2_124m.py --compile=False    # tokens/s, ms/iter, MFU, the run's time as a range",
            "finegpt memory configs/gpt2_124m.py --gpu H200 --compile=False   # the speed model's hours for a card",
            "finegpt train config.py --max_minutes=45   # time-boxed: max_iters fitted to 45 minutes as it runs",
            "```",
            "",
            "An H100 and an H200 differ in the model only by memory bandwidth (3,350 against 4,800 GB/s): the same "
            "FLOPs peak, so GPT-2 small at 16 x 4 x 1024 is predicted at 28 % eager on the H100 against 32 % on the "
            'H200 (`python -c "from finegpt.memory.speed import predict; ..."`, `tests/test_speed_model.py`). '
            "The families without a measured card (Ampere, GeForce, the T4, ...) use cited figures "
            "(finegpt/memory/speed.py names them) and a wider range; `python bench/gpu_check.py --budget_s 420` on a "
            "GPU runs a sweep of five sizes, eager and compiled, and refits its family.",
            "",
            "A CPU has no datasheet, so finegpt measures one: `finegpt.memory.probe.cpu_yardstick()` times a 256 x 256 "
            "matmul, an add over 16 MiB and one tiny autograd op on this machine, now (0.6 s). A training step runs "
            "at a share of each (calibration.json's speed.cpu, fitted by this bench), so the CPU prediction follows "
            "the machine and its load instead of the one the shares were fitted on "
            "(`predict(cfg, None, B, cpu_yardstick=cpu_yardstick())`).",
            "",
            "## GPU points (the model is fitted to these)",
            "",
            'Predicted by `python -c "from finegpt.memory.speed import predict ..."` (the rows below are '
            "`finegpt.memory.speed.CALIBRATION_POINTS`, printed by `python bench/speed_check.py`); measured on an "
            "NVIDIA H200 by the command in the last column (docs/gpu_results.md, docs/lab_timing.md).",
            "",
            *gpu_table(),
            "",
        ]
    )
    DOC.write_text(head + "\n" + cpu_section.strip() + "\n", encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
