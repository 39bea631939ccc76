"""Tokenizing in worker processes: Arrow batches of documents cut into ~1 MB chunks, encoded by a spawn-safe
pool (or in-process for bytes), returned in order. finegpt.data.prepare writes what comes out into shards.

Entry points: encode_chunk (a worker's task), chunks, start_pool, tokenizer_ready, encoded, close_pool.
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
from finegpt.errors import FinegptError

CHUNK_BYTES = 1 << 20  # text per task sent to a worker: big enough to amortise pickling, small enough to balance


# ---- the worker side: top-level functions, so they pickle under spawn -----------------------------


def _watch_parent() -> None:
    """Exit when the parent dies (even by SIGKILL), so killed runs leave no orphaned workers."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(
            target=lambda: (multiprocessing.connection.wait([parent.sentinel]), os._exit(1)), daemon=True
        ).start()


_worker_error = None  # in a worker: the one-line error its tokenizer failed with, for the parent to raise


def _init_worker(tokenizer_name: str) -> None:
    global _worker_error
    _watch_parent()
    tok = get_tokenizer(tokenizer_name)
    if tok.name == "gpt2":
        try:
            _ = tok.enc  # load the BPE files now, while the parent opens the source
        except FinegptError as e:
            _worker_error = e


def _worker_ready():
    """A worker's first task: None, or the error its tokenizer failed with (no traceback in the worker)."""
    return _worker_error


def encode_chunk(texts, tokenizer_name: str):
    """Documents (pyarrow strings) -> (tokens, per-doc token counts, per-doc UTF-8 bytes).

    Each non-empty document becomes EOT + its ids; an empty one contributes nothing.
    """
    tok = get_tokenizer(tokenizer_name)
    text_bytes = byte_lengths(texts)
    ids = [tok.encode_array(t or "") for t in texts.to_pylist()]  # one thread per worker: workers are the parallelism
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
    """UTF-8 bytes per document (0 for a null), read off the string array's offsets. No pyarrow.compute:
    its first call imports pandas, a second of start-up in each process on a busy machine."""
    import pyarrow as pa

    if isinstance(texts, pa.ChunkedArray):
        return np.concatenate([byte_lengths(c) for c in texts.chunks] or [np.zeros(0, np.int64)])
    if texts.type not in (pa.string(), pa.large_string()):  # e.g. string_view: no offsets buffer
        return np.array([len(t.encode()) if t else 0 for t in texts.to_pylist()], dtype=np.int64)
    width = np.dtype(np.int64 if texts.type == pa.large_string() else np.int32)
    offsets = np.frombuffer(texts.buffers()[1], width, count=len(texts) + 1, offset=texts.offset * width.itemsize)
    lengths = np.diff(offsets).astype(np.int64)
    if texts.null_count:  # a null's slot is usually empty, but Arrow does not promise it
        lengths[[t is None for t in texts.to_pylist()]] = 0
    return lengths


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
    from multiprocessing import resource_tracker

    started_tracker = resource_tracker._resource_tracker._pid is None  # spawn starts one; close_pool stops it
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(tokenizer_name,)
    )
    # start them now: they load the tokenizer while this process opens the source
    pool.warmups = [pool.submit(_worker_ready) for _ in range(workers)]
    pool.started_tracker = started_tracker
    return pool


def tokenizer_ready(tok, pool) -> None:
    """A tokenizer that cannot load (a missing BPE file) fails here, before anything is written. The
    workers load it in their initializer, so this process never needs its own copy (0.3 s of CPU)."""
    if pool is None:
        tok.encode("")
        return
    try:
        errors = [future.result() for future in pool.warmups]
    except BrokenProcessPool:
        tok.encode("")  # raises the readable error, if that was it
        raise
    if any(errors):
        raise next(e for e in errors if e)


def close_pool(pool) -> None:
    """Stop the workers and wait for them (each finishes at most the chunk in hand), then the resource
    tracker that spawn started beside them, if start_pool started it: no process of prepare's outlives it."""
    pool.shutdown(wait=True, cancel_futures=True)  # the pool's queues (and their semaphores) go with it
    if pool.started_tracker:
        from multiprocessing import resource_tracker

        resource_tracker._resource_tracker._stop()  # closes its pipe and waits for it (private, since 3.8)


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
