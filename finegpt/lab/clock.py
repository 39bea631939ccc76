"""The lab's clock: how long each notebook should take, from finegpt's own FLOPs and memory model, and
how long it did take.

A notebook's time is modelled as the sum of its heavy steps: training FLOPs at the device's achieved
rate (a GPU preset's peak x the assumed MFU, or a CPU rate measured on the spot), per-step overhead,
tokenizing, downloading, and a fixed part for everything small. Entry points: expected_s, start, Clock.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from finegpt.config import tokens_per_step
from finegpt.lab.folder import MODE_WORDS, LabPaths
from finegpt.lab.plan import LabSettings, settings

NOTEBOOKS = ("01", "02", "03", "04", "05")
# Assumptions, not measurements: each is printed with the estimate it feeds.
FIXED_S = 20.0  # a notebook's small cells: kernel start, imports, plots, tables
GPU_STEP_OVERHEAD_S = 0.01  # per optimizer step on a GPU: kernel launches and Python, what tiny models are made of
TOKENS_PER_S_PER_CORE = 1.5e6  # finegpt prepare; docs/benchmarks.md measured about 3e6 per core on 2 idle cores
DOWNLOAD_BYTES_PER_S = 30e6  # streaming parquet or weights from the Hugging Face Hub
FINEWEB_PARQUET_BYTES_PER_TOKEN = 27.6e9 / 10e9  # sample-10BT on FineWeb's dataset card
GPT2_DOWNLOAD_BYTES = 548e6  # openai-community/gpt2 model.safetensors
TEXT_BYTES_PER_GPT2_TOKEN = 4.0  # English prose; only for sizing local files before they are read


def about(seconds: float) -> str:
    """A duration as a person would say it: 'about 40 s', 'about 3.5 min'."""
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.1f} min"


@dataclass
class Device:
    name: str
    flops_per_s: float  # achieved, not peak
    step_overhead_s: float
    cores: int
    mfu: float | None = None  # assumed (GPU); None when the rate was measured (CPU)


def gpu_device(gpu: str) -> Device:
    from finegpt import memory as M

    g, mfu = M.get_gpu(gpu), M.default_mfu(gpu)
    cores = 2 if gpu == "T4" else _cores()  # a free Colab T4 comes with 2 CPU cores
    return Device(g.name, g.tflops_16bit * 1e12 * mfu, GPU_STEP_OVERHEAD_S, cores, mfu)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_device(model_fields: dict, batch_size: int, steps: int = 3) -> Device:
    """This CPU's training rate in FLOP/s, measured on `steps` forward + backward passes of the given model
    (the optimizer's share is a few percent for these models, and creating one costs seconds of imports)."""
    import torch

    from finegpt import memory as M
    from finegpt.config import ModelConfig
    from finegpt.model import GPT

    cfg = ModelConfig(**{**model_fields, "vocab_size": 320})
    model = GPT(cfg)
    x = torch.randint(0, 256, (batch_size, cfg.block_size))  # (B, T)
    times = []
    for _ in range(steps + 1):  # the first step warms up the allocator and kernels
        t0 = time.perf_counter()
        _, loss = model(x, x)
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    step_s = sorted(times[1:])[len(times[1:]) // 2]
    return Device(
        "this CPU", M.flops_per_token(cfg) * tokens_per_step(batch_size, cfg.block_size, 1) / step_s, 0.0, _cores()
    )


# ---- the work each notebook does, in each mode -------------------------------------------------


def _train_work(model: dict, train: dict, vocab: int) -> tuple[float, int, float]:
    """(FLOPs, optimizer steps, seconds) of a run: training plus its evaluations (forward only, a third of the
    cost); a time-boxed run (max_minutes) is its seconds instead."""
    from finegpt import memory as M
    from finegpt.config import ModelConfig

    cfg = ModelConfig(**{**model, "vocab_size": vocab})
    if train.get("max_minutes"):  # time-boxed: the loop fits its steps and evals into the budget
        return 0.0, 0, 60.0 * train["max_minutes"]
    per_step = train["batch_size"] * train["gradient_accumulation_steps"] * cfg.block_size
    evals = train["max_iters"] // train["eval_interval"] + 1
    eval_tokens = evals * 2 * train["eval_iters"] * train["batch_size"] * cfg.block_size
    return M.flops_per_token(cfg) * (train["max_iters"] * per_step + eval_tokens / 3), train["max_iters"], 0.0


def _local_tokens(pattern: str) -> float:
    import glob

    files = [f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f)]
    per = lambda f: FINEWEB_PARQUET_BYTES_PER_TOKEN if f.endswith(".parquet") else TEXT_BYTES_PER_GPT2_TOKEN
    return sum(os.path.getsize(f) / per(f) for f in files)


def _shakespeare_bytes() -> int:
    from finegpt.data.sources import shakespeare_files

    return sum(len(p.read_bytes()) for p in shakespeare_files())


def work(s: LabSettings) -> dict[str, dict[str, float]]:
    """Per notebook: flops, steps, tokenize (tokens), download (bytes)."""
    plays = _shakespeare_bytes()
    if s.mode == "full" and s.local_source:
        gpt2_tokens, download = _local_tokens(s.local_source), 0.0
    elif s.mode == "full":
        gpt2_tokens = s.fineweb["tokens"]
        download = gpt2_tokens * FINEWEB_PARQUET_BYTES_PER_TOKEN
    else:  # the plays as FineWeb-schema rows: counted once for token_count, once by prepare
        gpt2_tokens, download = 2 * plays / TEXT_BYTES_PER_GPT2_TOKEN, 0.0
    probe_flops, probe_steps, _ = _train_work(*s.probe, 320)
    run_flops, run_steps, run_s = _train_work(*s.run, 50304 if s.mode == "full" else 320)
    gpt2 = GPT2_DOWNLOAD_BYTES if s.mode == "full" and not s.local_source else 0.0
    return {
        "01": {"tokenize": gpt2_tokens + (s.shakespeare.get("tokens") or plays), "download": download},
        "02": {"flops": probe_flops, "steps": probe_steps},
        "03": {},
        "04": {"flops": run_flops, "steps": run_steps, "seconds": run_s, "download": gpt2},
        "05": {"download": gpt2},
    }


def expected_s(s: LabSettings, notebook: str, device: Device) -> float:
    w = work(s)[notebook]
    return (
        FIXED_S
        + w.get("flops", 0.0) / device.flops_per_s
        + w.get("steps", 0) * device.step_overhead_s
        + w.get("seconds", 0.0)
        + w.get("tokenize", 0.0) / (TOKENS_PER_S_PER_CORE * device.cores)
        + w.get("download", 0.0) / DOWNLOAD_BYTES_PER_S
    )


# ---- the clock a notebook starts at its top and stops at its end -------------------------------


class Clock:
    def __init__(self, notebook: str, s: LabSettings, p: LabPaths, device: Device):
        self.notebook, self.settings, self.paths, self.device = notebook, s, p, device
        self.expected_s = expected_s(s, notebook, device)
        self.t0 = time.time()

    def plan_lines(self) -> list[str]:
        t4 = settings("full", "T4", env={}, measure=None)
        t4_s = expected_s(t4, self.notebook, gpu_device("T4"))
        how = (
            f"at an assumed {self.device.mfu:.0%} MFU"
            if self.device.mfu
            else f"at {self.device.flops_per_s / 1e9:.1f} GFLOP/s measured just now"
        )
        return [
            f"expected here ({self.settings.mode} mode, {self.device.name}): {about(self.expected_s)}, {how}",
            f"for planning, full mode on a Colab T4: {about(t4_s)} (at an assumed {gpu_device('T4').mfu:.0%} MFU "
            f"and {DOWNLOAD_BYTES_PER_S / 1e6:.0f} MB/s downloads)",
        ]

    def done(self) -> None:
        """Print and record (in the lab folder's timings.json) the minutes this notebook took."""
        took_s = time.time() - self.t0
        path = Path(self.paths.timings)
        record = json.loads(path.read_text()) if path.exists() else {}
        record[self.notebook] = {"expected_s": round(self.expected_s, 1), "took_s": round(took_s, 1)}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(path)
        print(
            f"notebook {self.notebook} took {about(took_s).removeprefix('about ')} (expected {about(self.expected_s)})"
        )


def start(notebook: str, s: LabSettings, p: LabPaths) -> Clock:
    """Start a notebook's clock and print its expected time here and, for planning, on a T4."""
    if s.mode == "full":
        device = gpu_device(s.gpu)
    else:
        device = cpu_device(s.run[0], s.run[1]["batch_size"])
    clock = Clock(notebook, s, p, device)
    print(f"MODE={s.mode!r}: {MODE_WORDS[s.mode]}")
    print("\n".join([*clock.plan_lines(), *s.notes]))
    return clock
