"""Validation loss and perplexity: one sequential pass over the first `tokens` tokens of a split.

Entry points: evaluate(model, data_dir, ...), shard_info(data_dir).
No randomness: the windows are back to back from the split's start, so the same model and token count
always give the same number, and two models scored with the same settings see the same tokens.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from finegpt.errors import bad

DEFAULT_EVAL_TOKENS = 2**20  # ~1M tokens: build-nanogpt's val pass is 20 x 64 x 1024 = 1.3M


def shard_info(data_dir) -> dict:
    """{'tokenizer', 'vocab_size', 'eot'} of the prepared shards in data_dir (from meta.json)."""
    from finegpt.data import load_meta

    meta = load_meta(data_dir)
    return {"tokenizer": meta["tokenizer"], "vocab_size": meta["vocab_size"], "eot": meta["eot"]}


def check_compatible(model, data_dir, tokenizer: str | None) -> dict:
    """One-line errors for a model that cannot be scored on these shards."""
    info = shard_info(data_dir)
    if tokenizer is not None and tokenizer != info["tokenizer"]:
        raise bad(
            "tokenizer",
            tokenizer,
            f"the model reads {tokenizer} tokens but the shards in {str(data_dir)!r} "
            f"were tokenized with {info['tokenizer']}",
            f"Score it on shards made with `finegpt prepare --tokenizer {tokenizer}`",
        )
    if model.config.vocab_size < info["vocab_size"]:
        raise bad(
            "vocab_size",
            model.config.vocab_size,
            f"smaller than the {info['vocab_size']} tokens of the {info['tokenizer']} shards in {str(data_dir)!r}",
            "Score the model on shards of its own tokenizer",
        )
    return info


def _stream(data_dir, split: str, max_tokens: int | None) -> np.ndarray:
    """The split's first max_tokens tokens (None: all) as one stream: memmapped within a shard,
    copied only where it must cross a shard boundary."""
    from finegpt.data import load_meta, read_shard

    meta = load_meta(data_dir)
    shards, have = [], 0
    for s in meta["shards"]:
        if s["split"] == split and (max_tokens is None or have < max_tokens):
            shards.append(read_shard(Path(data_dir) / s["file"], meta)[1])
            have += len(shards[-1])
    if have < 2:
        raise bad(
            "split",
            split,
            f"no {split} tokens in {str(data_dir)!r}",
            "Use split='val' or 'train', or prepare more data",
        )
    return shards[0] if len(shards) == 1 else np.concatenate(shards)[:max_tokens]


def autocast_for(device: torch.device):
    """bf16 autocast on GPUs that have it (as training does); exact fp32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model,
    data_dir,
    split: str = "val",
    tokens: int | None = DEFAULT_EVAL_TOKENS,
    batch_size: int = 8,
    tokenizer: str | None = None,
    block_size: int | None = None,
) -> dict:
    """Mean next-token loss over the first `tokens` predicted tokens of `split` (None: all of it),
    in back-to-back windows of block_size (default: the model's). Logits of padded vocab rows are
    left out, so models with different padding are scored on the same footing.
    Returns {'loss', 'perplexity', 'tokens', 'split', 'block_size', 'tokenizer'}; 'tokens' is the
    number actually scored (a whole number of windows)."""
    info = check_compatible(model, data_dir, tokenizer)
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise bad("tokens", tokens, "must be a positive integer", "Use e.g. 1048576, or None for the whole split")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise bad("batch_size", batch_size, "must be a positive integer", "Use e.g. 8")
    stream = _stream(data_dir, split, None if tokens is None else tokens + 1)
    T = min(block_size or model.config.block_size, model.config.block_size, len(stream) - 1)
    available = len(stream) - 1  # every token but the first can be a target
    n_windows = max(1, min(available, tokens or available) // T)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total_nats, total_tokens = 0.0, 0
    try:
        for first in range(0, n_windows, batch_size):
            rows = np.stack([stream[w * T : w * T + T + 1] for w in range(first, min(first + batch_size, n_windows))])
            rows = torch.from_numpy(rows.astype(np.int64)).to(device)  # (B, T + 1)
            x, y = rows[:, :-1], rows[:, 1:]  # (B, T)
            with autocast_for(device):
                logits, _ = model(x)  # (B, T, V)
            logits = logits[..., : info["vocab_size"]].float()  # real tokens only
            total_nats += F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum").item()
            total_tokens += y.numel()
    finally:
        model.train(was_training)
    loss = total_nats / total_tokens
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "tokens": total_tokens,
        "split": split,
        "block_size": T,
        "tokenizer": info["tokenizer"],
    }
