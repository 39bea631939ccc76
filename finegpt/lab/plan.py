"""What each notebook does in each mode: how many documents 01 reads and tokenizes, the small model 02
trains to look inside, and the run 04 trains. One place, so the notebooks and the lab's clock agree.

Entry points: settings(mode, gpu) -> LabSettings, prepare_args, probe_configs, run_configs.
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


def _full_run(gpu: str, train_minutes: float) -> tuple[dict, dict, int]:
    from finegpt import memory as M

    s = M.session_plan(gpu, train_minutes=train_minutes)
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
    )
    return dict(s.model), train, s.tokens


def settings(mode: str, gpu: str | None = None, env: dict | None = None) -> LabSettings:
    """The sizes for `mode`. Full mode plans for `gpu` (a preset key, default T4); two environment
    variables, printed wherever they act, change it: FINEGPT_TRAIN_MINUTES (04's budget, default 45)
    and FINEGPT_FINEWEB_FILES (local FineWeb-schema parquet/jsonl instead of streaming the Hub)."""
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
    model, train, tokens = _full_run(gpu, minutes)
    local = env.get("FINEGPT_FINEWEB_FILES") or None
    notes = [f"04 trains for about {minutes:g} minutes" + (" (FINEGPT_TRAIN_MINUTES)" if minutes != 45 else "")]
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
