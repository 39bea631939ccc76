"""Notebook 01's exercises: a shard's header, a shard's tokens, bytes per token.

check_shard_header(shard_header), check_shard_reader(read_tokens), check_bytes_per_token(bytes_per_token).
References: finegpt.data.shards.make_header / write_shard / read_shard, and finegpt.data.prepare's stats.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from finegpt.data import get_tokenizer, prepare, read_shard, write_shard
from finegpt.data.shards import HEADER_BYTES, MAGIC, NAME_SLOT, make_header
from finegpt.exercises.check import Hint, attempt, checker

# the tokenizer fields a header records; cl100k's ids pass 65,535, so its shards need uint32 (version 2)
GPT2 = SimpleNamespace(name="gpt2", vocab_size=50257, eot=50256)
BYTES = SimpleNamespace(name="bytes", vocab_size=257, eot=256)
CL100K = SimpleNamespace(name="cl100k_base", vocab_size=100277, eot=100257)
FIELDS = ["magic", "version", "token count", "vocab size", "EOT id", "name length"]

# ---- 1.1 the header -------------------------------------------------------------------------------


@checker("shard header")
def check_shard_header(shard_header):
    for tok, n in ((GPT2, 123_456), (BYTES, 7), (CL100K, 99)):
        want = make_header(n, tok)
        got = np.asarray(attempt(shard_header, n, tok))
        if got.dtype != np.int32 or got.shape != (256,):
            raise Hint(
                f"got {got.size} numbers of {got.dtype} ({got.nbytes} bytes); a header is 256 int32 numbers, "
                f"1024 bytes: start from np.zeros(256, dtype=np.int32)"
            )
        if not np.array_equal(got, want):
            _header_mistake(got, want, tok)
    return "magic, version, count, vocab, EOT and name in llm.c's layout, for uint16 and uint32 vocabularies"


def _header_mistake(got: np.ndarray, want: np.ndarray, tok) -> None:
    if got[1] != want[1] and got[0] == want[0]:
        if want[1] == 2:
            raise Hint(
                f"a vocab of {tok.vocab_size:,} has ids above 65,535, which uint16 cannot hold: the version "
                f"must be 2 (uint32 tokens), got {got[1]}"
            )
        raise Hint(f"a vocab of {tok.vocab_size:,} fits uint16: the version must be 1, got {got[1]}")
    for i, field in enumerate(FIELDS):
        if got[i] != want[i]:
            if got[i] in want[:6] and (j := list(want[:6]).index(got[i])) != i:
                raise Hint(
                    f"header[{i}] holds the {FIELDS[j]} ({got[i]}), which belongs in header[{j}]; "
                    f"header[{i}] is the {field} ({want[i]})"
                )
            raise Hint(f"header[{i}] is the {field}: expected {want[i]}, got {got[i]}")
    name = tok.name.encode("utf-8")
    at = got.view(np.uint8).tobytes().find(name)
    if at == -1:
        raise Hint(f"the tokenizer name {tok.name!r} is missing: write its UTF-8 bytes into header ints 8..23")
    if at != NAME_SLOT * 4:
        raise Hint(f"the name starts at byte {at}; it belongs at byte {NAME_SLOT * 4} (header ints 8..23)")
    i = int(np.flatnonzero(got != want)[0])
    raise Hint(f"header[{i}] should be {want[i]}, got {got[i]}: every int not used by a field stays 0")


# ---- 1.2 reading the tokens back ------------------------------------------------------------------


@checker("shard reader")
def check_shard_reader(read_tokens):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for tok in (GPT2, CL100K):
            ids = rng.integers(0, tok.vocab_size, 1000)  # GPT-2 ids up to 50,256: past int16's 32,767
            path = Path(tmp) / f"{tok.name}_000000.bin"
            write_shard(path, ids, tok)
            info, want = read_shard(path)
            got = np.array(attempt(read_tokens, str(path)))  # a copy: the file goes away with tmp
            del want
            _reader_mistake(got, ids, info)
    return "the tokens of a version-1 (uint16) and a version-2 (uint32) shard, exactly"


def _reader_mistake(got: np.ndarray, ids: np.ndarray, info: dict) -> None:
    n, size = len(ids), np.dtype(info["dtype"]).itemsize
    if got.shape == (n,) and np.array_equal(got.astype(np.int64), ids):
        return
    if got.ndim == 1 and got.size * got.itemsize == HEADER_BYTES + n * size:
        raise Hint(
            f"your first numbers are the header (llm.c's magic {MAGIC} opens it): the tokens start after "
            f"the {HEADER_BYTES}-byte header (np.fromfile(..., offset=1024) or np.memmap(..., offset=1024))"
        )
    if got.ndim == 1 and got.size * got.itemsize == n * size and got.itemsize != size:
        if info["version"] == 2:
            raise Hint(
                f"this shard is version 2 (header[1] = 2): its tokens are uint32, 4 bytes each; you read "
                f"{got.itemsize}-byte numbers. Pick the dtype from the version"
            )
        raise Hint(f"a version-1 shard holds uint16 tokens (2 bytes each); you read {got.itemsize}-byte numbers")
    if got.shape == (n,) and (got < 0).any():
        raise Hint("negative ids: the tokens are unsigned (uint16 / uint32), not int16 / int32")
    if got.shape != (n,):
        raise Hint(f"the header's count (header[2]) says {n} tokens; you returned {got.size}")
    i = int(np.flatnonzero(got.astype(np.int64) != ids)[0])
    raise Hint(f"token {i} should be {ids[i]}, got {got[i]}")


# ---- 1.3 bytes per token --------------------------------------------------------------------------

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Le cœur a ses raisons que la raison ne connaît point. Ça alors, déjà l'été !",
    "Grüße aus München: Äpfel, Öl und Übermut.",
    "東京は日本の首都です。",
    "def f(x):\n    return x ** 2  # 🙂\n",
    "A short one.",
]


@checker("bytes per token")
def check_bytes_per_token(bytes_per_token):
    for name in ("gpt2", "bytes"):
        tok = get_tokenizer(name)
        got = float(attempt(bytes_per_token, list(TEXTS), tok))
        want = _prepared_bytes_per_token(tuple(TEXTS), name)
        if abs(got - want) <= 1e-4 * want:
            continue
        counts = [len(ids) for ids in tok.encode_batch(TEXTS)]
        utf8 = [len(t.encode("utf-8")) for t in TEXTS]
        mistakes = {
            "you counted characters; count UTF-8 bytes, len(text.encode('utf-8')): é is 2 bytes, 東 3, 🙂 4": sum(
                map(len, TEXTS)
            )
            / sum(counts),
            "you averaged each document's ratio, so a 3-token line weighs as much as a long page; divide all "
            "the bytes by all the tokens": float(np.mean([b / c for b, c in zip(utf8, counts)])),
            "you counted an EOT token per document; the ratio is about the text's own tokens (EOT carries no "
            "text)": sum(utf8) / (sum(counts) + len(TEXTS)),
            "that is tokens per byte: divide bytes by tokens, not tokens by bytes": sum(counts) / sum(utf8),
        }
        for hint, value in mistakes.items():
            if abs(got - value) <= 1e-4 * max(value, 1e-9):
                raise Hint(hint)
        raise Hint(f"with the {name} tokenizer the ratio is {want:.4f} bytes per token; yours is {got:.4f}")
    return "UTF-8 bytes over tokens, equal to what finegpt prepare reports, for GPT-2 and byte tokens"


@functools.cache
def _prepared_bytes_per_token(texts: tuple[str, ...], tokenizer: str) -> float:
    """What `finegpt prepare` reports for these documents (its stats, rounded to 4 decimals)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "docs.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        stats = prepare(str(src), out=Path(tmp) / "shards", tokenizer=tokenizer, workers=0, progress=False)
    return stats["bytes_per_token"]
