"""Token shards on disk: a 256 x int32 header (llm.c's layout plus vocab, EOT, tokenizer name), then tokens.

Entry points: write_shard, read_shard, write_meta, load_meta, check_shard, check_splits.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np

from finegpt.data.checks import check_meta, check_sampled_ids
from finegpt.errors import bad
from finegpt.files import atomic_write, atomic_write_text

MAGIC = 20240520  # llm.c's shard magic
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
NAME_SLOT, NAME_BYTES = 8, 64  # tokenizer name: UTF-8, NUL-padded, in header ints 8..23
META = "meta.json"


def token_dtype(vocab_size: int):
    """uint16 while every id fits (version 1, as llm.c), else uint32 (version 2)."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def make_header(num_tokens: int, tokenizer) -> np.ndarray:
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[0] = MAGIC
    header[1] = 1 if token_dtype(tokenizer.vocab_size) == np.uint16 else 2
    header[2] = num_tokens
    header[3] = tokenizer.vocab_size
    header[4] = tokenizer.eot
    name = tokenizer.name.encode("utf-8")[:NAME_BYTES]
    header[5] = len(name)
    header.view(np.uint8)[NAME_SLOT * 4 : NAME_SLOT * 4 + len(name)] = np.frombuffer(name, dtype=np.uint8)
    return header


def write_shard(path, tokens, tokenizer) -> int:
    """Write `tokens` (any int array) as one shard; returns the token count. Temp name + rename."""
    path = Path(path)
    dtype = token_dtype(tokenizer.vocab_size)
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= tokenizer.vocab_size):
        raise bad(
            "tokens",
            f"[{tokens.min()}..{tokens.max()}]",
            f"outside the {tokenizer.name} vocab of {tokenizer.vocab_size}",
            "Pass ids from the same tokenizer",
        )
    if tokens.size >= 2**31:
        raise bad(
            "shard_tokens",
            tokens.size,
            "too many tokens for one shard (the header count is int32)",
            "Use shard_tokens < 2**31",
        )
    header = make_header(tokens.size, tokenizer)
    atomic_write(path, lambda f: (f.write(header.tobytes()), f.write(tokens.astype(dtype, copy=False).tobytes())))
    return int(tokens.size)


def read_shard(path, meta: dict | None = None):
    """(header dict, np.memmap of the tokens). Raises a one-line error on a foreign or truncated file,
    and, given its dataset's meta.json, on a shard whose tokenizer, vocab or EOT differ from it."""
    path = Path(path)
    if not path.is_file():
        raise bad("shard", str(path), "no such file", "Rerun finegpt prepare for this data directory")
    size_bytes = path.stat().st_size
    if size_bytes < HEADER_BYTES:
        raise bad(
            "shard",
            str(path),
            f"only {size_bytes} bytes, shorter than the {HEADER_BYTES}-byte header",
            "The file is truncated; rerun finegpt prepare",
        )
    header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
    if header[0] != MAGIC:
        raise bad(
            "shard", str(path), f"magic number {header[0]} is not {MAGIC}", "This is not a finegpt/llm.c token shard"
        )
    if header[1] not in (1, 2):
        raise bad(
            "shard", str(path), f"unsupported version {header[1]}", "Versions 1 (uint16) and 2 (uint32) are supported"
        )
    dtype = np.uint16 if header[1] == 1 else np.uint32
    num_tokens = int(header[2])
    expected_bytes = HEADER_BYTES + num_tokens * np.dtype(dtype).itemsize
    if size_bytes != expected_bytes:
        raise bad(
            "shard",
            str(path),
            f"{size_bytes} bytes but its header promises {expected_bytes} ({num_tokens} tokens)",
            "The file is truncated or damaged; rerun finegpt prepare",
        )
    name_len = int(header[5])
    name = header.view(np.uint8)[NAME_SLOT * 4 : NAME_SLOT * 4 + name_len].tobytes().decode("utf-8", errors="replace")
    info = {
        "magic": int(header[0]),
        "version": int(header[1]),
        "num_tokens": num_tokens,
        "vocab_size": int(header[3]) or None,
        "eot": int(header[4]) if header[3] else None,  # llm.c leaves these 0
        "tokenizer": name or None,
        "dtype": np.dtype(dtype).name,
    }
    if meta is not None:
        check_shard(path, info, meta)
    tokens = (
        np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES, shape=(num_tokens,))
        if num_tokens
        else np.zeros(0, dtype)
    )
    if meta is not None:  # ids past the vocab would index past the embedding, some iterations later
        check_sampled_ids(path, tokens, meta["vocab_size"])
    return info, tokens


def check_shard(path, info: dict, meta: dict) -> None:
    """A shard must belong to its dataset: a shard of another tokenizer would index past the embedding
    (an IndexError on CPU, a device-side assert on a GPU)."""
    want = (meta.get("tokenizer"), meta.get("vocab_size"), meta.get("eot"), meta.get("dtype"))
    have = (info["tokenizer"], info["vocab_size"], info["eot"], info["dtype"])
    entry = next((s for s in meta.get("shards", []) if s["file"] == Path(path).name), None)
    if have != want:
        raise bad(
            "shard",
            str(path),
            f"holds {have[0]!r} tokens (vocab {have[1]}, EOT {have[2]}, {have[3]}) but meta.json beside it "
            f"says {want[0]!r} (vocab {want[1]}, EOT {want[2]}, {want[3]}): it comes from another dataset",
            "Put back this dataset's own shard, or rerun `finegpt prepare` for it with --overwrite",
        )
    if entry is not None and entry["tokens"] != info["num_tokens"]:
        raise bad(
            "shard",
            str(path),
            f"holds {info['num_tokens']} tokens but meta.json lists {entry['tokens']}: it comes from another run",
            "Put back this dataset's own shard, or rerun `finegpt prepare` for it with --overwrite",
        )


def check_splits(data_dir, meta: dict, block_size: int) -> None:
    """Every shard checked against meta.json; each split must hold a window of block_size + 1 tokens.
    An empty val split (prepared with val_fraction 0) gets advice that can fix it."""
    data_dir = Path(data_dir)
    for s in meta["shards"]:
        read_shard(data_dir / s["file"], meta)
    for split in ("train", "val"):
        have = meta["tokens"].get(split, 0)
        if have == 0 and split == "val":
            raise bad(
                "data_dir",
                str(data_dir),
                "has no val split (it was prepared with val_fraction 0), and training needs one to evaluate",
                "Rerun `finegpt prepare` with --val_fraction 0.1 (or --val_tokens N) and --overwrite",
            )
        if have < block_size + 1:
            more = (
                "rerun `finegpt prepare` with a larger --val_fraction or --val_tokens"
                if split == "val"
                else ("prepare more data (a larger source or --tokens)")
            )
            raise bad(
                "block_size",
                block_size,
                f"the {split} split of {data_dir} holds only {have} tokens, fewer than block_size + 1",
                f"Use block_size <= {max(have - 1, 1)}, or {more}",
            )


def write_meta(data_dir, tokenizer, shards: list[dict], **extra) -> dict:
    """meta.json: tokenizer, vocab size, EOT, and every shard with its split and token count."""
    meta = {
        "format": "finegpt-shards-1",
        "tokenizer": tokenizer.name,
        "vocab_size": tokenizer.vocab_size,
        "eot": tokenizer.eot,
        "dtype": np.dtype(token_dtype(tokenizer.vocab_size)).name,
        "tokens": {s: sum(d["tokens"] for d in shards if d["split"] == s) for s in ("train", "val")},
        "shards": shards,
        **extra,
    }
    atomic_write_text(Path(data_dir) / META, json.dumps(meta, indent=1) + "\n")
    return meta


def load_meta(data_dir) -> dict:
    """The data directory's meta.json; a one-line error telling how to make it when it is missing."""
    data_dir = Path(data_dir)
    fix = f"Run `finegpt prepare --out {shlex.quote(str(data_dir))}` first (or `finegpt quickstart`)"
    if not data_dir.is_dir():
        raise bad("data_dir", str(data_dir), "no such directory", fix)
    path = data_dir / META
    if not path.is_file():
        if (data_dir / "manifest.json").is_file():
            raise bad(
                "data_dir",
                str(data_dir),
                "its prepare has not finished",
                "Rerun the same `finegpt prepare` command to resume it",
            )
        raise bad("data_dir", str(data_dir), "holds no meta.json, so no prepared shards", fix)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
        raise bad(
            "data_dir",
            str(data_dir),
            f"meta.json is not valid JSON ({why})",
            "Rerun finegpt prepare with --overwrite",
        ) from e
    return check_meta(meta, data_dir)
