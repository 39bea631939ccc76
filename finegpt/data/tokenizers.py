"""Tokenizers: `gpt2` (tiktoken, EOT 50256) and `bytes` (256 byte values + EOT 256).

Entry point: get_tokenizer(name) -> object with name, vocab_size, eot, encode, encode_batch, decode,
decode_bytes (the exact bytes, for piping).
"""

from __future__ import annotations

import functools

import numpy as np

from finegpt.errors import bad

TOKENIZERS = ("gpt2", "bytes")
EOT_TEXT = "<|endoftext|>"


def default_tokenizer(source: str) -> str:
    """bytes for the small embedded corpus (like nanoGPT's shakespeare_char), GPT-2 BPE for everything else."""
    return "bytes" if source == "shakespeare" else "gpt2"


class BytesTokenizer:
    """UTF-8 bytes as ids 0..255 and one EOT id 256: the offline tokenizer, like nanoGPT's shakespeare_char."""

    name = "bytes"
    vocab_size = 257
    eot = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def encode_array(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    def decode_bytes(self, ids) -> bytes:
        """The exact bytes, EOT as <|endoftext|>; an id past EOT (padded vocab) is 0xFF, never valid UTF-8."""
        eot_bytes = EOT_TEXT.encode()
        return b"".join(eot_bytes if i == self.eot else bytes([i if 0 <= i < 256 else 0xFF]) for i in map(int, ids))

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")  # bad bytes -> U+FFFD


class GPT2Tokenizer:
    """GPT-2's BPE through tiktoken; `encode` never produces special tokens (encode_ordinary)."""

    name = "gpt2"
    vocab_size = 50257
    eot = 50256

    @functools.cached_property
    def enc(self):
        """tiktoken's Encoding, loaded on first use (0.8 s), so naming the tokenizer costs nothing."""
        import tiktoken

        try:
            return tiktoken.get_encoding("gpt2")
        except Exception as e:  # offline without a cache: a network error from tiktoken's download
            raise bad(
                "tokenizer",
                "gpt2",
                f"tiktoken could not load the GPT-2 BPE files ({type(e).__name__})",
                "Connect once to the internet, or set TIKTOKEN_CACHE_DIR to a folder holding them, "
                "or use --tokenizer bytes",
            ) from e

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return self.enc.encode_ordinary_batch(texts)

    def encode_array(self, text: str) -> np.ndarray:
        """Ids as a uint32 array without building a Python list; special-token text is encoded as plain text."""
        if hasattr(self.enc, "encode_to_numpy"):  # tiktoken >= 0.8
            return self.enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())
        return np.array(self.enc.encode_ordinary(text), dtype=np.uint32)

    def decode_bytes(self, ids) -> bytes:
        """The exact bytes; an id past EOT (only in a model's padded vocab, 50304) becomes U+FFFD's bytes."""
        out = bytearray()
        for i in map(int, ids):
            out += self.enc.decode_single_token_bytes(i) if 0 <= i <= self.eot else "\ufffd".encode()
        return bytes(out)

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if all(0 <= i <= self.eot for i in ids):
            return self.enc.decode(ids, errors="replace")
        # ids past EOT exist only in a model's padded vocab (50304): show them as U+FFFD
        runs, run = [], []
        for i in ids:
            if 0 <= i <= self.eot:
                run.append(i)
            else:
                runs.append(self.enc.decode(run, errors="replace") + "\ufffd")
                run = []
        return "".join(runs) + self.enc.decode(run, errors="replace")


_CACHE: dict[str, object] = {}


def get_tokenizer(name: str):
    """The tokenizer called `name` ("gpt2" or "bytes"), built once per process."""
    if name not in TOKENIZERS:
        raise bad(
            "tokenizer", name, "unknown tokenizer", "Use gpt2 (GPT-2 BPE, needs tiktoken's files) or bytes (offline)"
        )
    if name not in _CACHE:
        _CACHE[name] = GPT2Tokenizer() if name == "gpt2" else BytesTokenizer()
    return _CACHE[name]
