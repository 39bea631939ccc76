"""Tokenizing in worker processes: Arrow batches of documents cut into ~1 MB chunks, encoded by a spawn-safe
pool (or in-process for bytes), returned in order. finegpt.data.prepare writes what comes out into shards.

Entry points: encode_chunk (a worker's task), chunks, start_pool, encoded.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from finegpt.data.shards import token_dtype
from finegpt.data.tokenizers import get_tokenizer

CHUNK_BYTES = 1 << 20  # text per task sent to a worker: big enough to amortise pickling, small enough to balance


# ---- the worker side: top-level functions, so they pickle under spawn -----------------------------


def _watch_parent() -> None:
    """Exit when the parent dies (even by SIGKILL), so killed runs leave no orphaned workers."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=lambda: (multiprocessing.connection.wait([parent.sentinel]), os._exit(1)), daemon=True
        ).start()


def _init_worker(tokenizer_name: str) -> None:
    _watch_parent()
    tok = get_tokenizer(tokenizer_name)
    if tok.name == "gpt2":
        _ = tok.enc  # load the BPE files now, while the parent opens the source


def encode_chunk(texts, tokenizer_name: str):
    """Documents (pyarrow strings) -> (tokens, per-doc token counts, per-doc UTF-8 bytes).

    Each non-empty document becomes EOT + its ids; an empty one contributes nothing.
    """
    import pyarrow.compute as pc

    tok = get_tokenizer(tokenizer_name)
    texts = pc.fill_null(texts, "")
    text_bytes = byte_lengths(texts)
    ids = [tok.encode_array(t) for t in texts.to_pylist()]  # one thread per worker: the workers are the parallelism
    lens = np.array([len(d) + 1 if len(d) else 0 for d in ids], dtype=np.int64)
    tokens = np.empty(int(lens.sum()), dtype=token_dtype(tok.vocab_size))
    p = 0
    for d in ids:
        if len(d):
            tokens[p] = tok.eot
            tokens[p + 1 : p + 1 + len(d)] = d
            p += len(d) + 1
    return tokens, lens, text_bytes


# ---- the main side: chunks in, encoded chunks out, in order --------------------------------


def byte_lengths(texts) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.binary_length(pc.fill_null(texts, "")).to_numpy(zero_copy_only=False).astype(np.int64)


def chunks(batches, first_index: int):
    """(index of first doc, docs) with about CHUNK_BYTES of text each, cut from Arrow batches with no Python strings."""
    import pyarrow as pa

    index, pieces, size = first_index, [], 0
    for batch in batches:
        ends = np.cumsum(byte_lengths(batch))
        pos = 0
        while pos < len(batch):
            base = ends[pos - 1] if pos else 0
            k = min(int(np.searchsorted(ends[pos:] - base, CHUNK_BYTES - size)) + 1, len(batch) - pos)
            pieces.append(batch.slice(pos, k))
            size += int(ends[pos + k - 1] - base)
            pos += k
            if size >= CHUNK_BYTES:
                chunk = pa.concat_arrays(pieces)  # a compact copy: pickles only its own bytes
                yield index, chunk
                index, pieces, size = index + len(chunk), [], 0
    if pieces:
        yield index, pa.concat_arrays(pieces)


def start_pool(tokenizer_name: str, workers: int):
    if workers == 0:
        return None
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(tokenizer_name,)
    )
    for _ in range(workers):  # start them now: they load the tokenizer while the source opens
        pool.submit(int)
    return pool


def encoded(chunks, tokenizer_name: str, pool, workers: int):
    """(first doc index, encode_chunk result) in order; at most 2 chunks per worker in flight."""
    if pool is None:
        for index, texts in chunks:
            yield index, encode_chunk(texts, tokenizer_name)
        return
    try:
        pending = deque()
        for index, texts in chunks:
            pending.append((index, pool.submit(encode_chunk, texts, tokenizer_name)))
            if len(pending) >= 2 * workers:
                index, future = pending.popleft()
                yield index, future.result()
        while pending:
            index, future = pending.popleft()
            yield index, future.result()
    except BrokenProcessPool:
        get_tokenizer(
            tokenizer_name
        ).enc if tokenizer_name == "gpt2" else None  # raises the readable error, if that was it
        raise
