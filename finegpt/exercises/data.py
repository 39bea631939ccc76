"""Notebook 01's exercises: a shard's header, a shard's tokens, bytes per token.

check_shard_header(shard_header), check_shard_reader(read_tokens), check_bytes_per_token(bytes_per_token).
References: finegpt.data.shards.make_header / write_shard / read_shard, and finegpt.data.prepare's stats.
Each checker first computes finegpt's answer, then compares the student's with the known wrong
variants computed on the same inputs.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from finegpt.data import get_tokenizer, prepare, read_shard, write_shard
from finegpt.data.shards import HEADER_BYTES, MAGIC, NAME_SLOT, make_header
from finegpt.exercises.check import Hint, array, checker, number, student

# the tokenizer fields a header records; cl100k's ids pass 65,535, so its shards need uint32 (version 2).
# WORDS sits exactly at uint16's edge (ids 0..65,535: version 1) and has a name with a 2-byte ö.
GPT2 = SimpleNamespace(name="gpt2", vocab_size=50257, eot=50256)
CL100K = SimpleNamespace(name="cl100k_base", vocab_size=100277, eot=100257)
WORDS = SimpleNamespace(name="wörter", vocab_size=65536, eot=3)
BYTES = SimpleNamespace(name="bytes", vocab_size=257, eot=256)
FIELDS = ["magic", "version", "token count", "vocab size", "EOT id", "name length", "unused", "unused"]
ORDER = "llm.c's order is magic, version, token count, then finegpt's vocab size, EOT id, name length"

# ---- 1.2 the header -------------------------------------------------------------------------------


@checker("shard header")
def check_shard_header(shard_header):
    for tok, n in ((GPT2, 123_456), (CL100K, 99), (WORDS, 65_000), (BYTES, 7)):
        want = make_header(n, tok)  # finegpt's, first
        got = array("the header", student(shard_header, n, SimpleNamespace(**vars(tok))))
        if got.dtype.byteorder == ">":
            raise Hint("your header is big-endian (dtype '>i4'): llm.c's shards are little-endian, np.int32")
        if got.size == 256 and got.shape != (256,):
            raise Hint(f"your header has shape {got.shape}: make it flat, 256 numbers, np.zeros(256, dtype=np.int32)")
        if got.dtype != np.int32 or got.shape != (256,):
            raise Hint(
                f"got {got.size} numbers of {got.dtype} ({got.nbytes} bytes); a header is 256 int32 numbers, "
                f"1024 bytes: start from np.zeros(256, dtype=np.int32)"
            )
        if not np.array_equal(got, want):
            _header_mistake(got, want, tok, n)
    return "magic, version, count, vocab, EOT and name in llm.c's layout, for uint16 and uint32 vocabularies"


def _shifted(got: np.ndarray, want: np.ndarray) -> None:
    """Fields one or two slots off: a slot left out (or one too many) moves every field after it."""
    for s in (1, -1, 2, -2):
        moved = [i for i in range(0, 6) if 0 <= i + s < 8 and got[i] != want[i] and got[i] == want[i + s]]
        if len(moved) >= 2:
            i = moved[0]
            slot = f"left out (is the {FIELDS[i]} slot missing?)" if s > 0 else "an extra value in front"
            raise Hint(
                f"your fields are shifted by {abs(s)}: header[{i}] holds the {FIELDS[i + s]} ({got[i]}), which "
                f"belongs in header[{i + s}]; header[{i}] is the {FIELDS[i]} ({want[i]}). A slot was {slot}. {ORDER}"
            )


def _header_mistake(got: np.ndarray, want: np.ndarray, tok, n: int) -> None:
    name = tok.name.encode("utf-8")
    if got[0] != MAGIC and got[0] == np.int32(MAGIC).byteswap():
        raise Hint("the magic's bytes are swapped: write header[0] = 20240520 into an np.int32 array")
    _shifted(got, want)
    if got[0] != want[0]:
        raise Hint(f"header[0] is llm.c's magic {MAGIC}, got {got[0]}")
    if got[1] != want[1] and got[1] in (1, 2):
        if tok.vocab_size == 2**16:
            raise Hint(
                "a vocab of 65,536 has ids 0..65,535, and uint16 holds up to 65,535: the version must be 1. "
                "Use vocab_size <= 2**16 (not <)"
            )
        if want[1] == 2:
            raise Hint(
                f"a vocab of {tok.vocab_size:,} has ids above 65,535, which uint16 cannot hold: the version "
                f"must be 2 (uint32 tokens), got {got[1]}"
            )
        raise Hint(
            f"a vocab of {tok.vocab_size:,} fits uint16: the version must be 1, got {got[1]}. The version follows "
            f"vocab_size (the largest id), not the token count"
        )
    if got[2] == n + 1:
        raise Hint(f"header[2] is the token count as given ({n}); you wrote {n + 1}. Nothing is added to it")
    if got[3] != want[3] and got[3] == math.ceil(tok.vocab_size / 64) * 64:
        raise Hint(
            f"header[3] is the tokenizer's own vocab size ({tok.vocab_size}); you wrote {got[3]}, padded to a "
            f"multiple of 64. Padding is the model's affair (its vocab_size); the shard records the tokenizer's"
        )
    if got[4] != want[4] and got[4] in (50256, tok.vocab_size - 1) and got[3] != want[4]:
        raise Hint(
            f"header[4] is this tokenizer's EOT id, tokenizer.eot = {tok.eot}; you wrote {got[4]} (GPT-2's 50256, "
            f"or vocab_size - 1). Not every tokenizer puts EOT last"
        )
    if got[5] != want[5] and got[5] == len(tok.name):
        raise Hint(
            f"header[5] counts the name's UTF-8 bytes, len(name.encode('utf-8')) = {len(name)} for "
            f"{tok.name!r}; you counted its {len(tok.name)} characters"
        )
    if got[4] != want[4] and got[4] == tok.vocab_size and got[3] == want[3]:
        raise Hint(
            f"header[4] is the EOT id, tokenizer.eot = {tok.eot}; you wrote vocab_size ({tok.vocab_size}), which is "
            f"no id at all: ids run 0..vocab_size - 1"
        )
    if got[5] != want[5] and got[5] == -(-len(name) // 4):
        raise Hint(f"header[5] counts the name's bytes ({len(name)}), not the ints it fills ({got[5]})")
    for i, field in enumerate(FIELDS[:6]):
        if got[i] != want[i]:
            if got[i] in want[:6] and (j := list(want[:6]).index(got[i])) != i and got[j] != want[j]:
                raise Hint(
                    f"header[{i}] holds the {FIELDS[j]} ({got[i]}), which belongs in header[{j}]; "
                    f"header[{i}] is the {field} ({want[i]}). {ORDER}"
                )
            raise Hint(f"header[{i}] is the {field}: expected {want[i]}, got {got[i]} (tokenizer {tok.name!r})")
    if np.array_equal(got[NAME_SLOT : NAME_SLOT + len(name)], np.frombuffer(name, dtype=np.uint8)):
        raise Hint(
            "you wrote one name byte per int; the name's bytes are packed 4 to an int: write them through the "
            "uint8 view, header.view(np.uint8)[32:32 + len(name)]"
        )
    at = got.view(np.uint8).tobytes().find(name)
    if at == -1:
        raise Hint(f"the tokenizer name {tok.name!r} is missing: write its UTF-8 bytes into header ints 8..23")
    if at != NAME_SLOT * 4:
        raise Hint(
            f"the name starts at byte {at}; it belongs at byte {NAME_SLOT * 4} (header ints 8..23, and "
            f"header.view(np.uint8) counts bytes, not ints)"
        )
    i = int(np.flatnonzero(got != want)[0])
    raise Hint(f"header[{i}] should be {want[i]}, got {got[i]}: every int not used by a field stays 0")


# ---- 1.3 reading the tokens back ------------------------------------------------------------------


@checker("shard reader")
def check_shard_reader(read_tokens):
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for tok in (GPT2, CL100K):
            ids = rng.integers(0, tok.vocab_size, 1000)  # GPT-2 ids up to 50,256: past int16's 32,767
            path = Path(tmp) / f"{tok.name}_000000.bin"
            write_shard(path, ids, tok)
            info, tokens = read_shard(path)  # finegpt's, first
            want, raw = np.array(tokens, dtype=np.int64), path.read_bytes()
            del tokens
            got = np.array(array("the tokens", student(read_tokens, str(path))))  # a copy: the file goes with tmp
            if path.read_bytes() != raw:
                raise Hint("your code changed the shard file: a reader only reads (np.memmap(..., mode='r'))")
            if got.dtype.kind in "iu" and got.shape == want.shape and np.array_equal(got.astype(np.int64), want):
                continue
            _reader_mistake(got, want, raw, info)
    return "the tokens of a version-1 (uint16) and a version-2 (uint32) shard, exactly"


def _reader_variants(raw: bytes, info: dict) -> dict:
    """Each typical misreading of the shard's bytes, as the array it gives."""
    dtype = np.dtype(info["dtype"])
    body, n = raw[HEADER_BYTES:], len(raw[HEADER_BYTES:]) // dtype.itemsize
    signed = np.int16 if dtype.itemsize == 2 else np.int32
    narrow = np.uint16 if dtype.itemsize == 4 else np.uint32
    return {
        f"your first numbers are the header (llm.c's magic {MAGIC} opens it): the tokens start after the "
        f"{HEADER_BYTES}-byte header (np.fromfile(..., offset=1024) or np.memmap(..., offset=1024))": np.frombuffer(
            raw, dtype
        ),
        "offset counts bytes, not ints: the header is 256 int32 = 1024 bytes, so offset=1024 (you skipped 256 bytes)": (
            np.frombuffer(raw[256:], dtype)
        ),
        "negative ids: the tokens are unsigned (uint16 / uint32), not int16 / int32": np.frombuffer(body, signed),
        (
            "this shard is version 2 (header[1] = 2): its tokens are uint32, 4 bytes each; you read 2-byte numbers. "
            "Pick the dtype from the version"
            if dtype.itemsize == 4
            else "a version-1 shard holds uint16 tokens (2 bytes each); you read 4-byte numbers. Pick the dtype "
            "from the version"
        ): np.frombuffer(body[: len(body) // 4 * 4], narrow),
        "your ids are byte-swapped (big-endian '>u2' / '>u4'): shards are little-endian, np.uint16 / np.uint32": (
            np.frombuffer(body, dtype.newbyteorder(">"))
        ),
        "you read the tokens as floats: they are unsigned ints, np.uint16 (version 1) or np.uint32 (version 2)": (
            np.frombuffer(body[: len(body) // 4 * 4], np.float32)
            if dtype.itemsize == 4
            else np.frombuffer(body, np.float16)
        ),
        f"header[2] counts tokens, not bytes: you read {n // dtype.itemsize} tokens of {n}": np.frombuffer(body, dtype)[
            : n // dtype.itemsize
        ],
        f"the last token is missing: read all header[2] = {n} of them (count={n}, not {n - 1})": np.frombuffer(
            body, dtype
        )[:-1],
        f"the first token is missing: the tokens start at byte {HEADER_BYTES}, right after the header": np.frombuffer(
            body, dtype
        )[1:],
    }


def _reader_mistake(got: np.ndarray, want: np.ndarray, raw: bytes, info: dict) -> None:
    flat = got.reshape(-1).astype(np.float64)
    for hint, wrong in _reader_variants(raw, info).items():
        if flat.shape == wrong.shape and np.array_equal(flat, wrong.astype(np.float64), equal_nan=True):
            raise Hint(hint)
    if got.shape != want.shape:
        raise Hint(f"the header's count (header[2]) says {want.size} tokens; you returned shape {got.shape}")
    if got.dtype.kind == "f":
        raise Hint(f"token ids are integers; you returned {got.dtype}: keep the shard's uint16 / uint32")
    i = int(np.flatnonzero(got.astype(np.int64) != want.astype(np.int64))[0])
    raise Hint(f"in the version-{info['version']} shard, token {i} should be {want[i]}, got {got[i]}")


# ---- 1.1 bytes per token --------------------------------------------------------------------------

TEXTS = [
    "The quick brown fox jumps over the lazy dog. " * 12,
    "Le cœur a ses raisons que la raison ne connaît point. Ça alors, déjà l'été !",
    "Grüße aus München: Äpfel, Öl und Übermut.",
    "東京は日本の首都です。",
    "def f(x):\n    return x ** 2  # 🙂\n",
    "And that was the lot.",
]


@checker("bytes per token")
def check_bytes_per_token(bytes_per_token):
    for name in ("gpt2", "bytes"):
        tok = get_tokenizer(name)
        want = _exact(tok)  # finegpt's, first: the ratio prepare reports (to its 4 decimals), unrounded
        if abs(_prepared_bytes_per_token(tuple(TEXTS), name) - want) > 1e-4:
            raise RuntimeError(f"prepare's bytes_per_token disagrees with {want:.6f}")
        got = number("the ratio", student(bytes_per_token, list(TEXTS), tok))
        if math.isclose(got, want, rel_tol=1e-9):
            continue
        for hint, value in _ratio_mistakes(tok):
            if math.isclose(got, value, rel_tol=1e-9):
                raise Hint(hint)
        per_doc = [f"{len(t.encode('utf-8'))} bytes / {len(tok.encode(t))} tokens" for t in TEXTS[:2]]
        raise Hint(
            f"with the {name} tokenizer the ratio is {want:.4f} bytes per token; yours is {got:.4f}. The first "
            f"two texts hold {per_doc[0]} and {per_doc[1]}"
        )
    return "UTF-8 bytes over tokens, equal to what finegpt prepare reports, for GPT-2 and byte tokens"


def _exact(tok) -> float:
    return sum(len(t.encode("utf-8")) for t in TEXTS) / sum(len(ids) for ids in tok.encode_batch(TEXTS))


def _ratio_mistakes(tok) -> list:
    """Each typical mistake as the number it gives, in (hint, value) pairs."""
    counts = [len(ids) for ids in tok.encode_batch(TEXTS)]
    utf8 = [len(t.encode("utf-8")) for t in TEXTS]
    ratio = sum(utf8) / sum(counts)
    rounded = "you rounded the ratio: return it unrounded, and round only when you print it"
    eot = "you counted an EOT token per document; the ratio is about the text's own tokens (EOT carries no text)"
    return [
        ("you counted characters; count UTF-8 bytes, len(text.encode('utf-8')): é is 2 bytes, 東 3, 🙂 4",
         sum(map(len, TEXTS)) / sum(counts)),
        ("you averaged each document's ratio, so a 3-token line weighs as much as a long page; divide all the "
         "bytes by all the tokens", float(np.mean([b / c for b, c in zip(utf8, counts)]))),
        (eot, sum(utf8) / (sum(counts) + len(TEXTS))),
        ("that is tokens per byte: divide bytes by tokens, not tokens by bytes", sum(counts) / sum(utf8)),
        ("that is the last document's ratio only: the loop overwrites instead of adding up (use += or sum)",
         utf8[-1] / counts[-1]),
        ("integer division (//) drops the fraction: use / for the ratio", float(sum(utf8) // sum(counts))),
        ("you counted words (text.split()), not tokens: use len(tokenizer.encode(text))",
         sum(utf8) / sum(len(t.split()) for t in TEXTS)),
    ] + [
        ("you tokenized the texts joined into one string, which merges tokens across their edges: encode each "
         "text on its own", b / len(tok.encode(sep.join(TEXTS))))
        for sep in ("", " ", "\n") for b in (sum(utf8), len(sep.join(TEXTS).encode("utf-8")))
    ] + [
        (f"you counted {enc.upper()} bytes: the text's bytes on disk are UTF-8, len(text.encode('utf-8'))",
         sum(len(t.encode(enc)) for t in TEXTS) / sum(counts))
        for enc in ("utf-16", "utf-32")
    ] + [(rounded, round(ratio, d)) for d in (4, 3, 2)]  # fmt: skip


@functools.cache
def _prepared_bytes_per_token(texts: tuple[str, ...], tokenizer: str) -> float:
    """What `finegpt prepare` reports for these documents (its stats, rounded to 4 decimals)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "docs.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        stats = prepare(str(src), out=Path(tmp) / "shards", tokenizer=tokenizer, workers=0, progress=False)
    return stats["bytes_per_token"]
