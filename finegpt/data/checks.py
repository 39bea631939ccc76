"""Prepared data checked before any work: meta.json's schema, token ids against the vocab (sampled when a
shard opens, every id by `finegpt check DATA_DIR`), and a cheap fingerprint of the shards' content that a
checkpoint records, so a resume notices data prepared again.

Entry points: check_meta, check_sampled_ids, check_batch_ids, scan_data, data_fingerprint.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from finegpt.errors import bad

SAMPLES, SAMPLE_TOKENS = 16, 2048  # ids read per shard when it opens: 16 slices of 2048, spread evenly
_PREPARE_AGAIN = "Rerun `finegpt prepare` for it with --overwrite"


# ---- meta.json -------------------------------------------------------------------------------------------


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_meta(meta, data_dir) -> dict:
    """meta.json must say what the loaders read: tokenizer, vocab, EOT, dtype, split sizes, and each shard's
    file, split and token count. One line naming the first key that is missing or of the wrong type."""

    def wrong(key: str, what: str):
        return bad("data_dir", str(data_dir), f"its meta.json {what} ({key})", _PREPARE_AGAIN)

    if not isinstance(meta, dict):
        raise wrong("the whole file", f"is a {type(meta).__name__}, not an object")
    want = {"tokenizer": str, "vocab_size": int, "eot": int, "dtype": str, "tokens": dict, "shards": list}
    for key, kind in want.items():
        if key not in meta:
            raise wrong(key, "lacks a key finegpt needs")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise wrong(key, f"holds a {type(meta[key]).__name__} where a {kind.__name__} belongs")
    if meta["vocab_size"] < 1 or not 0 <= meta["eot"] < meta["vocab_size"]:
        raise wrong("vocab_size, eot", f"says vocab {meta['vocab_size']} with EOT {meta['eot']}")
    if meta["dtype"] not in ("uint16", "uint32"):
        raise wrong("dtype", f"names dtype {meta['dtype']!r}, not uint16 or uint32")
    for split in ("train", "val"):
        if not _is_count(meta["tokens"].get(split, 0)):
            raise wrong(f"tokens.{split}", "holds no token count")
    for i, s in enumerate(meta["shards"]):
        ok = isinstance(s, dict) and isinstance(s.get("file"), str) and s.get("split") in ("train", "val")
        if not ok or not _is_count(s.get("tokens")) or Path(s["file"]).name != s["file"]:
            raise wrong(f"shards[{i}]", "lists a shard without a plain file name, split and token count")
    return meta


# ---- token ids against the vocab -------------------------------------------------------------------------


def _out_of_vocab(path, ids: np.ndarray, first: int, vocab_size: int):
    bad_at = int(np.argmax(ids >= vocab_size))
    return bad(
        "shard",
        str(path),
        f"holds token id {int(ids[bad_at])} at position {first + bad_at}, outside the vocab of {vocab_size} "
        "that its header and meta.json declare",
        "The file is damaged: `finegpt check` scans every shard; rerun `finegpt prepare` with --overwrite",
    )


def _sample_starts(num_tokens: int) -> list[int]:
    if num_tokens <= SAMPLES * SAMPLE_TOKENS:
        return [0]
    return [int(s) for s in np.linspace(0, num_tokens - SAMPLE_TOKENS, SAMPLES)]


def check_sampled_ids(path, tokens: np.ndarray, vocab_size: int) -> None:
    """A cheap look when a shard opens: 16 slices of 2048 ids (a small shard whole) must be below the vocab."""
    span = len(tokens) if len(tokens) <= SAMPLES * SAMPLE_TOKENS else SAMPLE_TOKENS
    for start in _sample_starts(len(tokens)):
        ids = np.asarray(tokens[start : start + span])
        if ids.size and int(ids.max()) >= vocab_size:
            raise _out_of_vocab(path, ids, start, vocab_size)


def check_batch_ids(rows: np.ndarray, vocab_size: int, data_dir, what: str) -> None:
    """Every batch the loader builds, before the model sees it: one max over B x (T + 1) ids."""
    if rows.size and int(rows.max()) >= vocab_size:
        raise bad(
            "data_dir",
            str(data_dir),
            f"{what} holds token id {int(rows.max())}, outside its vocab of {vocab_size}",
            "A shard is damaged: `finegpt check` names it; rerun `finegpt prepare` with --overwrite",
        )


def scan_data(data_dir) -> dict:
    """`finegpt check DATA_DIR`: meta.json, every shard's header against it, and every token id against the
    vocab, read in chunks of 16M ids. Returns {"shards", "tokens", "max_id", "vocab_size", "tokenizer"}."""
    from finegpt.data.shards import load_meta, read_shard

    meta = load_meta(data_dir)
    total, top = 0, -1
    for s in meta["shards"]:
        path = Path(data_dir) / s["file"]
        _, tokens = read_shard(path, meta)
        for first in range(0, len(tokens), 1 << 24):
            ids = np.asarray(tokens[first : first + (1 << 24)])
            if int(ids.max()) >= meta["vocab_size"]:
                raise _out_of_vocab(path, ids, first, meta["vocab_size"])
            top = max(top, int(ids.max()))
        total += len(tokens)
    return {
        "shards": len(meta["shards"]),
        "tokens": total,
        "max_id": top,
        "vocab_size": meta["vocab_size"],
        "tokenizer": meta["tokenizer"],
    }


# ---- a fingerprint of the shards' content ------------------------------------------------------------------


def data_fingerprint(data_dir, meta: dict) -> str:
    """BLAKE2b of each shard's name, size and the sampled slices of its bytes (header included): data
    prepared again from another source, tokenizer or order gets another fingerprint, for a few reads."""
    h = hashlib.blake2b(digest_size=8)
    for s in meta["shards"]:
        path = Path(data_dir) / s["file"]
        size = path.stat().st_size
        h.update(f"{s['file']}:{size}:{s['tokens']};".encode())
        with open(path, "rb") as f:
            for start in _sample_starts(size):
                f.seek(start)
                h.update(f.read(SAMPLE_TOKENS if size > SAMPLES * SAMPLE_TOKENS else size))
    return h.hexdigest()
