"""Notebook 01's checkers: each typical mistake, written as a student would, gets a hint naming it."""

import struct

import numpy as np
import pytest

from finegpt import exercises as ex
from finegpt.data.shards import MAGIC, make_header
from tests.exercise_support import assert_hint, ids

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- 1.1 bytes per token --------------------------------------------------------------------------


def _utf8(texts):
    return sum(len(t.encode("utf-8")) for t in texts)


def _tokens(texts, tok):
    return sum(len(tok.encode(t)) for t in texts)


def _last_only(texts, tok):
    for t in texts:
        ratio = len(t.encode()) / len(tok.encode(t))
    return ratio


BYTES_PER_TOKEN = [
    (lambda texts, tok: sum(map(len, texts)) / _tokens(texts, tok), "you counted characters"),
    (lambda texts, tok: float(np.mean([len(t.encode()) / len(tok.encode(t)) for t in texts])), "you averaged each"),
    (lambda texts, tok: _utf8(texts) / sum(len(tok.encode(t)) + 1 for t in texts), "an EOT token per document"),
    (lambda texts, tok: _tokens(texts, tok) / _utf8(texts), "that is tokens per byte"),
    (_last_only, "the last document's ratio only"),
    (lambda texts, tok: _utf8(texts) // _tokens(texts, tok), "integer division (//)"),
    (lambda texts, tok: round(_utf8(texts) / _tokens(texts, tok), 2), "you rounded the ratio"),
    (lambda texts, tok: _utf8(texts) / sum(len(t.split()) for t in texts), "you counted words"),
    (lambda texts, tok: _utf8(texts) / len(tok.encode("".join(texts))), "texts joined into one string"),
    (lambda texts, tok: len(" ".join(texts).encode()) / len(tok.encode(" ".join(texts))), "joined into one string,"),
    (lambda texts, tok: sum(len(t.encode("utf-16")) for t in texts) / _tokens(texts, tok), "you counted UTF-16 bytes"),
]


@pytest.mark.parametrize("answer,hint", BYTES_PER_TOKEN, ids=ids(BYTES_PER_TOKEN))
def test_bytes_per_token_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_bytes_per_token, answer, hint)


# ---- 1.2 the header -------------------------------------------------------------------------------


def _edit(change):
    """make_header, then one change, as a student's slip."""

    def shard_header(num_tokens, tokenizer):
        header = make_header(num_tokens, tokenizer)
        change(header, num_tokens, tokenizer)
        return header

    return shard_header


def _without_version_slot(num_tokens, tokenizer):
    header = np.zeros(256, dtype=np.int32)
    name = tokenizer.name.encode()
    header[:5] = [MAGIC, num_tokens, tokenizer.vocab_size, tokenizer.eot, len(name)]
    header.view(np.uint8)[32 : 32 + len(name)] = np.frombuffer(name, dtype=np.uint8)
    return header


def _without_magic(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[0:5] = header[1:6].copy()
    header[5] = 0
    return header


def _version_from_strict_bound(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[1] = 1 if tokenizer.vocab_size < 65536 else 2
    return header


def _name_one_byte_per_int(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    name = tokenizer.name.encode()
    header[8:24] = 0
    header[8 : 8 + len(name)] = list(name)
    return header


def _name_at_int_offset_24(num_tokens, tokenizer):
    header = make_header(num_tokens, tokenizer)
    header[8:24] = 0
    name = tokenizer.name.encode()
    header.view(np.uint8)[24 : 24 + len(name)] = np.frombuffer(name, dtype=np.uint8)
    return header


HEADER = [
    (_edit(lambda h, n, tok: h.__setitem__(1, 1)), "version must be 2 (uint32 tokens)"),
    (_version_from_strict_bound, "a vocab of 65,536 has ids 0..65,535"),
    (_edit(lambda h, n, tok: h.__setitem__([3, 4], h[[4, 3]])), "header[3] holds the EOT id"),
    (_name_at_int_offset_24, "the name starts at byte 24"),
    (_name_one_byte_per_int, "you wrote one name byte per int"),
    (lambda n, tok: make_header(n, tok).astype(np.int64), "a header is 256 int32 numbers"),
    (lambda n, tok: make_header(n, tok).astype(">i4"), "your header is big-endian"),
    (_edit(lambda h, n, tok: h.__setitem__(3, -(-tok.vocab_size // 64) * 64)), "padded to a multiple of 64"),
    (_edit(lambda h, n, tok: h.__setitem__(4, 50256)), "header[4] is this tokenizer's EOT id"),
    (_edit(lambda h, n, tok: h.__setitem__(5, len(tok.name))), "counts the name's UTF-8 bytes"),
    (_edit(lambda h, n, tok: h.__setitem__(2, n + 1)), "header[2] is the token count as given"),
    (_without_magic, "your fields are shifted by 1: header[0] holds the version"),
    (_edit(lambda h, n, tok: h.__setitem__(4, tok.vocab_size)), "you wrote vocab_size (50257), which is no id"),
    (_edit(lambda h, n, tok: h.__setitem__(5, -(-len(tok.name) // 4))), "counts the name's bytes (4), not the ints"),
]


@pytest.mark.parametrize("answer,hint", HEADER, ids=ids(HEADER))
def test_shard_header_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_shard_header, answer, hint)


def test_a_header_without_the_version_slot_is_called_shifted_not_a_wrong_version(capsys):
    assert_hint(
        capsys,
        ex.check_shard_header,
        _without_version_slot,
        "your fields are shifted by 1: header[1] holds the token count (123456), which belongs in header[2]",
        absent="version must be",
    )


# ---- 1.3 reading the tokens back ------------------------------------------------------------------


def _version(path):
    return int(np.fromfile(path, dtype=np.int32, count=256)[1])


def _dtype(path):
    return np.uint16 if _version(path) == 1 else np.uint32


def _overwrites_the_file(path):
    tokens = np.fromfile(path, dtype=_dtype(path), offset=1024)
    with open(path, "r+b") as f:
        f.seek(1024)
        f.write(b"\0\0")
    return tokens


READER = [
    (lambda path: np.fromfile(path, dtype=np.uint16), "your first numbers are the header"),
    (lambda path: np.fromfile(path, dtype=np.uint16, offset=1024), "this shard is version 2"),
    (lambda path: np.fromfile(path, dtype=np.int16, offset=1024), "negative ids"),
    (lambda path: np.fromfile(path, dtype=np.uint32, offset=1024), "a version-1 shard holds uint16"),
    (lambda path: np.fromfile(path, dtype=_dtype(path), offset=256), "offset counts bytes, not ints"),
    (lambda path: np.fromfile(path, dtype=np.dtype(_dtype(path)).newbyteorder(">"), offset=1024), "byte-swapped"),
    (lambda path: np.fromfile(path, dtype=np.float16, offset=1024), "you read the tokens as floats"),
    (lambda path: np.fromfile(path, dtype=_dtype(path), offset=1024)[:-1], "the last token is missing"),
    (lambda path: np.fromfile(path, dtype=_dtype(path), offset=1026), "the first token is missing"),
    (
        lambda path: np.fromfile(path, dtype=_dtype(path), offset=1024, count=1000 // np.dtype(_dtype(path)).itemsize),
        "header[2] counts tokens, not bytes",
    ),
    (_overwrites_the_file, "your code changed the shard file"),
]


@pytest.mark.parametrize("answer,hint", READER, ids=ids(READER))
def test_shard_reader_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_shard_reader, answer, hint)


def test_a_header_built_with_struct_passes(capsys):
    def shard_header(num_tokens, tokenizer):
        name = tokenizer.name.encode()
        version = 1 if tokenizer.vocab_size <= 65536 else 2
        raw = struct.pack("<6i", MAGIC, version, num_tokens, tokenizer.vocab_size, tokenizer.eot, len(name))
        raw += bytes(8) + name
        return np.frombuffer(raw + bytes(1024 - len(raw)), dtype=np.int32)

    ex.check_shard_header(shard_header)
    assert capsys.readouterr().out.startswith("✓ ")
