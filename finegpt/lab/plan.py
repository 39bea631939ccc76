"""What each notebook does in each mode: how many documents 01 reads and tokenizes, the small model 02
trains to look inside, and the run 04 trains. One place, so the notebooks and the lab's clock agree.

Entry points: settings(mode, gpu) -> LabSettings, prepare_args, probe_configs, run_configs, gpu_speed.
In full mode on a GPU, 04's model and token budget come from each candidate's speed measured on that GPU
(gpu_speed, finegpt.memory.probe); without one, from finegpt.memory.speed's model. 04 trains time-boxed
(max_minutes), so its minutes are the student's whatever the speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from finegpt.config import ModelConfig, TrainConfig, padded_vocab
from finegpt.errors import bad
from finegpt.lab.folder import MODES, LabPaths
from finegpt.quickstart import QUICKSTART_MODEL, QUICKSTART_TRAIN
from finegpt.run import torch_dtype_name

FULL_KEEP_CHECKPOINTS = 2  # full mode: the last 2 of 04's checkpoints, to spare a student's Drive
FULL_VAL_TOKENS = 5_000_000  # held out of a FineWeb budget: enough for a stable val loss at any eval_iters here

# 02's probe and the cpu run are the quickstart's byte model (finegpt/quickstart.py): 1.71 val loss in 3000 steps
PROBE_STEPS = {"smoke": 60, "cpu": 600, "full": 1500}
SMOKE_MODEL = dict(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0, bias=False)
SMOKE_TRAIN = dict(
    batch_size=16,
    gradient_accumulation_steps=1,
    max_iters=120,
    eval_interval=40,
    eval_iters=4,
    log_interval=20,
    learning_rate=3e-3,
    min_lr=3e-4,
    warmup_iters=10,
    device="cpu",
    dtype="float32",
)


@dataclass
class LabSettings:
    """One mode's sizes. fineweb / shakespeare: prepare() arguments without `out`; probe / run: the
    (ModelConfig, TrainConfig) fields 02 and 04 train with, before paths are filled in."""

    mode: str
    gpu: str | None  # preset key of the GPU the full mode plans for; None in cpu and smoke mode
    device: str
    n_docs: int  # 01: documents to look at and measure
    fineweb: dict
    shakespeare: dict
    probe: tuple[dict, dict]
    run: tuple[dict, dict]
    local_source: str | None = None  # full mode on local FineWeb-schema files instead of the Hub
    notes: list[str] = field(default_factory=list)


PROBE_SECONDS = 2.0  # each candidate's timed steps on the GPU, after its warm-up


def gpu_speed(seconds: float = PROBE_SECONDS):
    """The planner's measure(model_cfg, batch) -> MFU on this machine's GPU: finegpt.memory.probe of one
    micro-batch per step (no accumulation: the optimizer step counted every micro-step, a little slow)."""
    from finegpt.memory.probe import probe

    def measure(model_cfg: ModelConfig, batch) -> float:
        run = TrainConfig(batch_size=batch.batch_size, gradient_accumulation_steps=1, device="cuda", max_iters=1)
        return probe(model_cfg, run, seconds, warmup_steps=2).mfu

    return measure


def _measure_here(gpu: str):
    """gpu_speed() when this machine's CUDA GPU is the preset planned for, else None (the speed model plans)."""
    import sys

    if "torch" not in sys.modules:  # the planner alone never starts torch
        return None
    from finegpt.gpus import detected_gpu_key

    return gpu_speed() if detected_gpu_key(default="") == gpu else None


_PLANS: dict = {}  # (gpu, minutes, measured?) -> session plan: a notebook probes its GPU once


def _full_run(gpu: str, train_minutes: float, measure=None) -> tuple[dict, dict, int, list[str]]:
    from finegpt import memory as M

    key = (gpu, train_minutes, measure is not None)
    if key not in _PLANS:
        _PLANS[key] = M.session_plan(gpu, train_minutes=train_minutes, measure=measure)
    s = _PLANS[key]
    iters = s.max_iters
    lr = 1e-3 if s.params < 50e6 else 6e-4  # small models take a larger learning rate
    train = dict(
        batch_size=s.batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        max_iters=iters,
        eval_interval=max(1, iters // 8),  # 04 interrupts after the first eval, well before the end
        eval_iters=20,
        log_interval=max(1, min(10, iters // 20)),
        learning_rate=lr,
        min_lr=lr / 10,
        warmup_iters=max(2, iters // 20),
        dtype=torch_dtype_name(s.dtype),
        device="cuda",
        max_minutes=train_minutes,  # time-boxed: max_iters is the plan's guess, the loop sets the real one
    )
    return dict(s.model), train, s.tokens, s.notes[:1]


def settings(mode: str, gpu: str | None = None, env: dict | None = None, measure="auto") -> LabSettings:
    """The sizes for `mode`. Full mode plans for `gpu` (a preset key, default T4); two environment
    variables, printed wherever they act, change it: FINEGPT_TRAIN_MINUTES (04's budget, default 45)
    and FINEGPT_FINEWEB_FILES (local FineWeb-schema parquet/jsonl instead of streaming the Hub).
    measure: 'auto' probes the candidates on this machine's GPU when it is `gpu` (and torch is loaded);
    None plans from the speed model; or a measure(model_cfg, batch) -> MFU of your own."""
    env = os.environ if env is None else env
    if mode not in MODES:
        raise bad("mode", mode, "is not a mode", "Use 'smoke', 'cpu' or 'full'")
    quick_train = {**QUICKSTART_TRAIN, "eval_interval": 250, "log_interval": 100}
    if mode == "smoke":
        return LabSettings(
            mode,
            None,
            "cpu",
            n_docs=300,
            fineweb=dict(tokens=300_000, val_tokens=30_000, shard_tokens=100_000, workers=0),
            shakespeare=dict(tokens=1_000_000, val_tokens=100_000),
            probe=(SMOKE_MODEL, {**SMOKE_TRAIN, "max_iters": PROBE_STEPS["smoke"], "eval_interval": 30}),
            run=(SMOKE_MODEL, SMOKE_TRAIN),
        )
    probe_train = {**quick_train, "max_iters": PROBE_STEPS[mode], "eval_interval": PROBE_STEPS[mode]}
    if mode == "cpu":
        return LabSettings(
            mode,
            None,
            "cpu",
            n_docs=1000,
            fineweb=dict(tokens=None, shard_tokens=1_000_000),
            shakespeare=dict(tokens=None),
            probe=(QUICKSTART_MODEL, probe_train),
            run=(QUICKSTART_MODEL, quick_train),
        )
    gpu = gpu or "T4"
    minutes = float(env.get("FINEGPT_TRAIN_MINUTES") or 45)
    measure = _measure_here(gpu) if measure == "auto" else measure
    model, train, tokens, plan_notes = _full_run(gpu, minutes, measure)
    local = env.get("FINEGPT_FINEWEB_FILES") or None
    notes = [f"04 trains for {minutes:g} minutes, time-boxed" + (" (FINEGPT_TRAIN_MINUTES)" if minutes != 45 else "")]
    notes += ["04's plan: " + plan_notes[0]]
    notes.append(checkpoint_note(model, train))
    if local:  # the whole local source, however big: its size is the user's choice
        fineweb = dict(tokens=None, shard_tokens=100_000_000)
        notes.append(f"data: local FineWeb-schema files {local} (FINEGPT_FINEWEB_FILES), not the Hub's FineWeb")
    else:
        fineweb = dict(name="sample-10BT", tokens=tokens + FULL_VAL_TOKENS, val_tokens=FULL_VAL_TOKENS)
        fineweb["shard_tokens"] = 100_000_000
    return LabSettings(
        mode,
        gpu,
        "cuda",
        n_docs=2000,
        fineweb=fineweb,
        shakespeare=dict(tokens=None),
        probe=(QUICKSTART_MODEL, {**probe_train, "device": "cuda"}),
        run=(model, train),
        local_source=local,
        notes=notes,
    )


def checkpoint_writes(model: dict, train: dict, keep: int = FULL_KEEP_CHECKPOINTS) -> dict:
    """What 04's run writes into the lab folder (Drive on Colab): a checkpoint is 12 bytes per parameter (fp32
    weights and AdamW's two moments); one is written at each evaluation whose val loss improves, at most one
    per eval_interval; the last `keep` stay, and one more exists while the next is written."""
    from finegpt.config import count_params

    cfg = ModelConfig(**{**model, "vocab_size": model_vocab("gpt2")})
    each = 12 * count_params(cfg, non_embedding=False)
    saves = -(-train["max_iters"] // train["eval_interval"])  # evals after iteration 0, the last one included
    return {"checkpoint_bytes": each, "saves": saves, "written_bytes": saves * each, "kept_bytes": (keep + 1) * each}


def checkpoint_note(model: dict, train: dict, keep: int = FULL_KEEP_CHECKPOINTS) -> str:
    w = checkpoint_writes(model, train, keep)
    return (
        f"04 keeps its last {keep} checkpoints of about {w['checkpoint_bytes'] / 1e6:,.0f} MB each in the lab folder "
        f"(at most {w['kept_bytes'] / 1e9:.2f} GB at once) and writes at most {w['saves']}, "
        f"{w['written_bytes'] / 1e9:.1f} GB over the run"
    )


def prepare_args(s: LabSettings, p: LabPaths, which: str) -> dict:
    """finegpt.data.prepare's arguments for 01's two outputs: 'fineweb' (GPT-2 tokens) or 'shakespeare' (bytes)."""
    if which == "shakespeare":
        return dict(source="shakespeare", out=str(p.shakespeare), tokenizer="bytes", **s.shakespeare)
    if which != "fineweb":
        raise bad("which", which, "is not one of 01's outputs", "Use 'fineweb' or 'shakespeare'")
    files = str(p.fineweb_source) if s.mode != "full" else s.local_source
    args = dict(source="fineweb", out=str(p.fineweb), tokenizer="gpt2", **s.fineweb)
    if files:
        args["data_files"] = files
    return args


def _configs(fields: tuple[dict, dict], vocab: int, data_dir: Path, out_dir: Path, **extra):
    model, train = fields
    # every eval's checkpoint is kept unless `extra` says otherwise: 05 samples from an early one
    train = {**train, "lr_decay_iters": train["max_iters"], "keep_checkpoints": 50, **extra}
    return ModelConfig(**{**model, "vocab_size": vocab}), TrainConfig(
        out_dir=str(out_dir), data_dir=str(data_dir), **train
    )


def probe_configs(s: LabSettings, p: LabPaths) -> tuple[ModelConfig, TrainConfig]:
    """02's small model on the byte shards of the plays (written by 01)."""
    return _configs(s.probe, model_vocab("bytes"), p.shakespeare, p.probe)


def run_configs(s: LabSettings, p: LabPaths) -> tuple[ModelConfig, TrainConfig]:
    """04's run on its training data: FineWeb's GPT-2 shards in full mode, the plays' bytes otherwise."""
    vocab = model_vocab("gpt2" if s.mode == "full" else "bytes")
    keep = FULL_KEEP_CHECKPOINTS if s.mode == "full" else 50  # cpu and smoke keep every one (05 samples an early one)
    return _configs(s.run, vocab, p.train_data, p.run, deterministic=s.mode != "full", keep_checkpoints=keep)


def model_vocab(tokenizer: str) -> int:
    """The model's vocab for a tokenizer: its ids padded to a multiple of 64 (bytes 257 -> 320, gpt2 50257 -> 50304)."""
    from finegpt.data import get_tokenizer

    return padded_vocab(get_tokenizer(tokenizer).vocab_size)
