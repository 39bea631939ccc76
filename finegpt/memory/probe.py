"""The speed probe: finegpt.step's real training step timed on the device at hand, for a few seconds after
warm-up, with the run the trainer would resolve (dtype, compile, micro-batch, accumulation).

Entry points: probe(model_cfg, train_cfg, seconds) -> Speed; format_speed; cpu_yardstick(). `finegpt speed` prints it;
finegpt.lab calls probe() to plan from measured speed. Batches are random tokens of the model's vocab
unless the config's data_dir holds prepared shards. Nothing is written to disk.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from finegpt import step
from finegpt.config import ModelConfig, TrainConfig, build_configs, config_file_settings, padded_vocab, parse_overrides
from finegpt.memory.gpus import peak_flops
from finegpt.memory.measurement import RandomBatches
from finegpt.memory.solve import flops_per_token
from finegpt.run import run_config

WARMUP_MIN_S = 1.0  # untimed steps for at least this long: a fresh process's first steps run slow


@dataclass
class Speed:
    """One probe's result. Step times are whole optimizer steps (all micro-steps), in seconds."""

    device: str  # 'cpu', or the CUDA card's name
    dtype: str
    compile: bool
    batch_size: int
    gradient_accumulation_steps: int
    block_size: int
    tokens_per_step: int
    warmup_s: float  # the untimed first steps: compiling (compile=True), allocations, kernel choice
    steps: int  # timed steps
    step_s: float  # median
    step_s_range: tuple[float, float]  # (10th, 90th percentile)
    tokens_per_s: float  # at the median step
    mfu: float | None  # where the card's peak is known (finegpt.gpus)
    max_iters: int
    run_s_range: tuple[float, float]  # max_iters steps at the fast and the slow step time (evals not counted)
    data: str  # 'random tokens' or the data_dir read
    max_minutes: float = 0.0  # the run's time box, if any: then the trainer sets max_iters itself

    def to_dict(self) -> dict:
        return asdict(self)


def _device_and_dtype(cfg: TrainConfig) -> tuple[torch.device, torch.dtype]:
    # as finegpt.train.setup.setup_device: the same device, autocast dtype and TF32 switch
    device = step.pick_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = not cfg.deterministic
        torch.backends.cudnn.allow_tf32 = not cfg.deterministic
        torch.cuda.set_device(device)
    return device, step.pick_dtype(device, cfg.dtype)


def _batches(model_cfg: ModelConfig, cfg: TrainConfig):
    """(loader, model_cfg, what it reads): the prepared train split when data_dir has one, else random tokens."""
    data_dir = Path(cfg.resolved_data_dir())
    if (data_dir / "meta.json").exists():
        from finegpt.data import BatchLoader

        loader = BatchLoader(str(data_dir), "train", cfg.batch_size, model_cfg.block_size, seed=cfg.seed)
        if model_cfg.vocab_size < loader.vocab_size or model_cfg.vocab_size == ModelConfig.vocab_size:
            model_cfg = replace(model_cfg, vocab_size=padded_vocab(loader.vocab_size))  # as finegpt train does
        return loader, model_cfg, str(data_dir)
    return RandomBatches(model_cfg, cfg.batch_size), model_cfg, "random tokens"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(model_cfg: ModelConfig, train_cfg: TrainConfig, seconds: float = 3.0, warmup_steps: int = 2) -> Speed:
    """Time finegpt.step's forward_backward + optimizer_step for `seconds` (at least 3 steps) after
    warmup_steps untimed ones (the first compiles with compile=True) and at least WARMUP_MIN_S, as the
    trainer runs them."""
    cfg = train_cfg
    device, dtype = _device_and_dtype(cfg)
    loader, model_cfg, data = _batches(model_cfg, cfg)
    run = run_config(
        replace(cfg, dtype=str(dtype).removeprefix("torch.")), 1, device="cuda" if device.type == "cuda" else "cpu"
    )
    if run.compile:
        torch._dynamo.reset()  # a fresh compile, as in a new process
    torch.manual_seed(cfg.seed)
    optim = dict(weight_decay=cfg.weight_decay, learning_rate=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2))
    parts = step.wrap(step.build(model_cfg, run, device, **optim), run)
    batches, gas = step.Prefetch(loader, device), run.local_accumulation_steps

    def one(k: int) -> float:
        t = time.perf_counter()
        loss = step.forward_backward(parts, batches, k * gas, gas)
        step.optimizer_step(parts, cfg.grad_clip)
        loss.item()  # the loop reads the loss every step: the same sync
        _sync(device)
        return time.perf_counter() - t

    t0, k = time.perf_counter(), 0
    while k < warmup_steps or time.perf_counter() - t0 < WARMUP_MIN_S:  # compile, allocations, caches
        one(k)
        k += 1
    warmup_s = time.perf_counter() - t0
    times, t0 = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - t0 < seconds:
        times.append(one(k + len(times)))
    return _speed(model_cfg, cfg, run, device, dtype, times, warmup_s, data)


def _speed(model_cfg, cfg, run, device, dtype, times, warmup_s, data) -> Speed:
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    median, fast, slow = pick(0.5), pick(0.1), pick(0.9)
    tokens = run.tokens_per_step(model_cfg.block_size)
    name = step.gpu_name(device)
    label = str(dtype).removeprefix("torch.")
    peak = peak_flops(name, label) if name else None
    mfu = flops_per_token(model_cfg) * tokens / median / peak if peak else None
    return Speed(
        name or device.type,
        label,
        run.compile,
        run.batch_size,
        run.gradient_accumulation_steps,
        model_cfg.block_size,
        tokens,
        round(warmup_s, 3),
        len(times),
        median,
        (fast, slow),
        tokens / median,
        mfu,
        cfg.max_iters,
        (cfg.max_iters * fast, cfg.max_iters * slow),
        data,
        cfg.max_minutes,
    )


def _median_seconds(fn, calls: int, seconds: float) -> float:
    """Median seconds per call of fn over rounds of `calls` calls, for about `seconds` (5 rounds at least)."""
    rounds, t0 = [], time.perf_counter()
    while len(rounds) < 5 or time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - t) / calls)
    return statistics.median(rounds)


def cpu_yardstick(seconds: float = 0.6) -> dict:
    """This CPU here and now, at torch's thread count: {'flops_per_s'} of a 256 x 256 fp32 matmul, {'bytes_per_s'}
    of an add over 16 MiB tensors (two read, one written), {'op_s'} of one tiny op's forward and backward.
    finegpt.memory.speed scales its CPU constants by these, so a prediction follows the machine and its load."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    x, y, out = torch.randn(2**22), torch.randn(2**22), torch.empty(2**22)  # (4 Mi,) fp32: 16 MiB each
    w = torch.ones(4, requires_grad=True)
    matmul_s = _median_seconds(lambda: a @ b, 20, seconds / 3)
    add_s = _median_seconds(lambda: torch.add(x, y, out=out), 4, seconds / 3)
    op_s = _median_seconds(lambda: (w * 2).sum().backward(), 50, seconds / 3)
    return {"flops_per_s": 2 * 256**3 / matmul_s, "bytes_per_s": 3 * 4 * 2**22 / add_s, "op_s": op_s}


def speed_report(config_file: str | None, overrides: list[str], seconds: float = 3.0, as_json: bool = False) -> str:
    """`finegpt speed [config] [--key=value ...] [--json]`: the run `finegpt train` would make of the same
    settings (a config file compiles unless it says compile=False), probed; as text or one JSON object."""
    values = parse_overrides(overrides)
    values, notes = config_file_settings(config_file, values) if config_file else (values, [])
    model_cfg, train_cfg, more = build_configs(values)
    speed = probe(model_cfg, train_cfg, seconds)
    return json.dumps(speed.to_dict()) if as_json else "\n".join([*notes, *more, format_speed(speed)])


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def format_speed(s: Speed) -> str:
    """A probe as the lines `finegpt speed` prints."""
    mode = "compiled" if s.compile else "eager"
    mfu = f", MFU {100 * s.mfu:.1f} %" if s.mfu is not None else " (MFU: no known peak for this device)"
    fast, slow = s.step_s_range
    run_fast, run_slow = s.run_s_range
    if s.max_minutes:  # time-boxed: the steps the budget holds, at the slow and the fast step time
        run_line = (
            f"max_minutes={s.max_minutes:g}: about {60 * s.max_minutes / slow:,.0f}-{60 * s.max_minutes / fast:,.0f} "
            "steps (the trainer times its own and sets max_iters; evals and checkpoints take some of the time)"
        )
    else:
        run_line = (
            f"max_iters={s.max_iters:,}: {_duration(run_fast)}-{_duration(run_slow)} of training steps "
            "(evals and checkpoints not counted)"
        )
    return "\n".join(
        [
            f"{s.device} {s.dtype} {mode}: {s.batch_size} x {s.gradient_accumulation_steps} x {s.block_size} = "
            f"{s.tokens_per_step:,} tokens per step, {s.data}",
            f"warm-up {s.warmup_s:.1f} s ({'compile, ' if s.compile else ''}first steps), then {s.steps} steps timed",
            f"{s.tokens_per_s:,.0f} tokens/s, {1000 * s.step_s:.1f} ms/iter (10-90 %: {1000 * fast:.1f}-"
            f"{1000 * slow:.1f}){mfu}",
            run_line,
        ]
    )
