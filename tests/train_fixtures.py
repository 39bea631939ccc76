"""Tiny prepared data and configs for the training tests: bytes-tokenized English from the stdlib."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def english_text(n_chars: int) -> str:
    from pydoc_data.topics import topics  # ~465k chars of English that ship with Python

    return "".join(topics[k] for k in sorted(topics))[:n_chars]


def make_data(data_dir: Path, n_train: int = 40_000, n_val: int = 6_000) -> Path:
    """Bytes-tokenized shards (train, val) made by `finegpt.data.prepare` from a local text file."""
    from finegpt.data import prepare

    source = data_dir.parent / f"{data_dir.name}.txt"
    source.write_text(english_text(n_train + n_val), encoding="utf-8")
    prepare(str(source), out=data_dir, tokenizer="bytes", tokens=n_train + n_val, val_tokens=n_val,
            progress=False)
    return data_dir


TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0, bias=True)
TINY_TRAIN = dict(batch_size=8, gradient_accumulation_steps=2, learning_rate=3e-3, min_lr=3e-4, warmup_iters=2,
                  lr_decay_iters=40, eval_iters=2, log_interval=1, device="cpu", dtype="float32",
                  deterministic=True, seed=7)


def overrides(values: dict) -> list[str]:
    return [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in values.items()]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and do not fight parallel test workers for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
