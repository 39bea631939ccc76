"""Prepare: stream documents, tokenize them in spawn-safe worker processes, write fixed-size shards.

Entry point: prepare(source, out, tokenizer, tokens, ...) -> stats dict. Resumable from manifest.json;
the first `val_tokens` tokens of the stream are the val split, the rest train, stopping exactly at `tokens`.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

from finegpt import folders
from finegpt.data import outfolder
from finegpt.data.encode import byte_lengths, chunks, close_pool, encoded, start_pool, tokenizer_ready
from finegpt.data.outfolder import MANIFEST, STATS
from finegpt.data.shards import HEADER_BYTES, token_dtype, write_meta, write_shard
from finegpt.data.sources import iter_batches, resolve_source, source_fingerprint
from finegpt.data.tokenizers import default_tokenizer, get_tokenizer
from finegpt.errors import bad
from finegpt.files import NO_SPACE, atomic_write_text

BYTES_PER_TOKEN_GUESS = {"bytes": 1.0, "gpt2": 4.0}  # only sizes the default val split when no budget is given


# ---- the main side ---------------------------------------------------------------------------------


def _as_count(field: str, value, allow_zero: bool = False):
    """Accept 2e9 or "2e9" for 2_000_000_000; reject fractions, negatives, bools."""
    try:
        count = float(value) if isinstance(value, str) else value
        ok = not isinstance(count, bool) and float(count).is_integer() and (count >= 0 if allow_zero else count > 0)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise bad(
            field, value, "must be a whole number " + (">= 0" if allow_zero else "> 0"), f"For example {field}=2e9"
        )
    return int(count)


def _emitted(spec: dict, start: int, shuffle_buffer: int, seed: int):
    """Document batches in output order from position `start`. Shuffling permutes fixed windows of
    `shuffle_buffer` documents with an RNG seeded by (seed, window), so a resume can recompute any position."""
    import pyarrow as pa

    if not shuffle_buffer:
        yield from iter_batches(spec, start=start)
        return
    window = start // shuffle_buffer
    skip = start - window * shuffle_buffer
    pending, n_pending = [], 0
    batches = iter_batches(spec, start=window * shuffle_buffer)
    while True:
        for batch in batches:
            pending.append(batch)
            n_pending += len(batch)
            if n_pending >= shuffle_buffer:
                break
        if not n_pending:
            return
        docs = pa.concat_arrays(pending)
        order = np.random.default_rng([seed, window]).permutation(min(shuffle_buffer, len(docs)))
        yield docs.take(order[skip:])
        pending, n_pending = [docs.slice(len(order))], len(docs) - len(order)
        skip, window = 0, window + 1


def _shard_after(pos: int, val_tokens: int, shard_tokens: int, budget: int | None):
    """(split, index, end position) of the shard that starts at stream position `pos`."""
    if pos < val_tokens:
        i = pos // shard_tokens
        return "val", i, min(val_tokens, (i + 1) * shard_tokens)
    i = (pos - val_tokens) // shard_tokens
    end = val_tokens + (i + 1) * shard_tokens
    return "train", i, min(end, budget) if budget else end


def prepare(
    source: str = "shakespeare",
    out="data/shakespeare",
    tokenizer: str | None = None,
    tokens=None,
    *,
    name: str | None = None,
    data_files=None,
    text_column: str = "text",
    shard_tokens=100_000_000,
    val_fraction: float = 0.1,
    val_tokens=None,
    workers: int | None = None,
    shuffle_buffer: int = 0,
    seed: int = 1337,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Tokenize `source` into `<out>/{val,train}_NNNNNN.bin` + meta.json + stats.json; returns the stats.

    tokens: the budget, counting EOTs; the output stops exactly there (or when the source ends).
    val_tokens: the first tokens of the stream, held out; default val_fraction of the budget (without a
    budget, of the source's size estimated from its bytes), at most one shard.
    Rerunning the same command after a crash or kill resumes from manifest.json, unless a source file
    changed since (then it refuses; overwrite=True starts over). With overwrite=True the new shards are
    built in `<out>/overwrite.partial/` and replace the old ones only once complete.
    """
    out = folders.check_path("out", out, "--out data/shakespeare")
    folders.check_unlocked(out, "out")  # a second prepare into the same folder fails at once
    tok = get_tokenizer(tokenizer or default_tokenizer(source))
    budget = None if tokens is None else _as_count("tokens", tokens)
    shard_tokens = _as_count("shard_tokens", shard_tokens)
    if shard_tokens >= 2**31:
        raise bad(
            "shard_tokens", shard_tokens, "too large for the int32 count in the header", "Use at most 2e9 (default 1e8)"
        )
    if not 0 <= val_fraction < 1:
        raise bad("val_fraction", val_fraction, "must be in [0, 1)", "Use e.g. 0.1 for a 10 % validation split")
    shuffle_buffer = _as_count("shuffle_buffer", shuffle_buffer, allow_zero=True)
    _check_seed(seed)
    workers = _default_workers(tok.name) if workers is None else _as_count("workers", workers, allow_zero=True)
    spec = resolve_source(source, name, data_files, text_column)
    if spec["kind"] == "hf" and not spec["data_files"] and budget is None:
        raise bad(
            "tokens", None, f"{source} holds trillions of tokens, so a budget is needed", "Pass e.g. --tokens 1e9"
        )

    t_start = time.time()
    pool = start_pool(tok.name, workers)
    try:
        expected_tokens = _expected_tokens(spec, source, tok.name, budget, size_needed=val_tokens is None)
        if val_tokens is None:
            val_tokens = min(round(val_fraction * expected_tokens), shard_tokens)
        val_tokens = _as_count("val_tokens", val_tokens, allow_zero=True)
        if budget is not None and val_tokens >= budget:
            raise bad(
                "val_tokens",
                val_tokens,
                f"leaves no train tokens in a budget of {budget}",
                "Use a smaller val_tokens or val_fraction",
            )
        tokenizer_ready(tok, pool)  # a missing BPE file fails here, before anything is written
        job = {
            **spec,
            "tokenizer": tok.name,
            "tokens": budget,
            "val_tokens": val_tokens,
            "shard_tokens": shard_tokens,
            "shuffle_buffer": shuffle_buffer,
            "seed": seed if shuffle_buffer else None,
        }

        def write(work: Path, manifest: dict) -> dict:
            return _run(work, tok, job, manifest, pool, workers, progress, t_start, expected_tokens)

        return _into_folder(out, job, spec, overwrite, write, _shard_bytes(expected_tokens, tok, shard_tokens))
    finally:
        if pool is not None:
            close_pool(pool)


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise bad("seed", seed, "must be a whole number >= 0", "Use e.g. --seed 1337")


def _shard_bytes(expected_tokens, tok, shard_tokens: int) -> int | None:
    """The bytes the shards of expected_tokens take on disk (tokens and a header each); None when unknown."""
    if not expected_tokens:
        return None
    itemsize = np.dtype(token_dtype(tok.vocab_size)).itemsize
    return int(expected_tokens * itemsize + HEADER_BYTES * (expected_tokens // shard_tokens + 2))


def _into_folder(out: Path, job: dict, spec: dict, overwrite: bool, write, need_bytes=None) -> dict:
    """Under out's lock: resume an unfinished job, start one, or (overwrite) start one beside the old shards.
    write(work, manifest) writes into `work`; a staged result replaces out's old one only once complete.
    A full disk: one line, every shard written so far whole, and the same command resumes."""
    work, manifest = outfolder.plan_output(out, job, spec, overwrite)  # refuses before anything is written
    if manifest is None:
        outfolder.check_space(out, need_bytes)
    outfolder.make_writable(out)
    with folders.FolderLock(out, "out", "finegpt prepare") as lock:
        if outfolder.recover_output(out):  # an earlier overwrite was cut short while replacing: finish it
            work, manifest = outfolder.plan_output(out, job, spec, overwrite)
        if work != out and manifest is None:
            folders.fresh_stage(out)
        outfolder.make_writable(work)
        manifest = manifest or _new_manifest(job, spec)
        outfolder.clear_stale(work, keep={s["file"] for s in manifest["shards"]} | {MANIFEST})
        try:
            atomic_write_text(work / MANIFEST, json.dumps(manifest, indent=1) + "\n")
            stats = write(work, manifest)
        except OSError as e:
            lock.check_held()  # the folder deleted under it: one line, and it is never made again
            if e.errno not in NO_SPACE:
                raise
            raise outfolder.no_space(out, work, e) from e
        if work != out:
            outfolder.commit_output(work, out)
        return stats


def _default_workers(tokenizer_name: str) -> int:
    """All cores this process may use for BPE; none for bytes, which is cheaper than pickling the text."""
    if tokenizer_name == "bytes":
        return 0
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _expected_tokens(spec: dict, source: str, tokenizer_name: str, budget: int | None, size_needed: bool):
    """The budget, or without one (when size_needed) the source's size guessed from its bytes: a first pass,
    local sources only. It sizes the val split and the progress bar. Reading the source here, before touching
    the output, makes an empty source or a missing column fail early."""
    batches = iter_batches(spec)
    try:
        for batch in batches:
            if len(batch) and byte_lengths(batch).max() > 0:
                break
        else:
            raise bad("source", source, "has no documents with text", "Check the path, the glob, or --text_column")
        if budget is not None or not size_needed:
            return budget
        size_bytes = sum(int(byte_lengths(b).sum()) for b in itertools.chain([batch], batches))
        return size_bytes / BYTES_PER_TOKEN_GUESS[tokenizer_name]
    finally:
        batches.close()


def _new_manifest(job: dict, spec: dict) -> dict:
    """Progress of a fresh prepare: written after every shard, so a rerun resumes where it stopped; the
    sources' fingerprint lets that rerun notice files that changed in between."""
    return {
        "job": job,
        "sources": source_fingerprint(spec),
        "finished": False,
        "shards": [],
        "pos": 0,
        "doc": 0,
        "offset": 0,
        "documents": 0,
        "text_bytes": 0,
        "elapsed_s": 0.0,
    }


def _run(
    out: Path, tok, job: dict, m: dict, pool, workers: int, progress: bool, t0: float, expected_tokens=None
) -> dict:
    from finegpt.progress import progress as progress_bar

    budget, val_tokens, shard_tokens = job["tokens"], job["val_tokens"], job["shard_tokens"]
    elapsed0 = m["elapsed_s"]
    pos, skip = m["pos"], m["offset"]  # skip: tokens of the first doc already in finished shards
    split, index, end = _shard_after(pos, val_tokens, shard_tokens, budget)
    buf = np.empty(end - pos, dtype=token_dtype(tok.vocab_size))
    fill = 0
    bar = progress_bar(expected_tokens, f"prepare {job['source']}", "tok", initial=pos, enabled=progress)
    docs_done, doc_pos = m["documents"], m["doc"]

    def finish_shard(doc: int, offset: int) -> None:
        name = f"{split}_{index:06d}.bin"
        write_shard(out / name, buf[:fill], tok)
        m["shards"].append({"file": name, "split": split, "tokens": fill})
        m.update(pos=pos + fill, doc=doc, offset=offset, elapsed_s=elapsed0 + time.time() - t0)
        atomic_write_text(out / MANIFEST, json.dumps(m, indent=1) + "\n")  # after the shard: a shard never counts early

    done = budget is not None and pos >= budget
    stream = encoded(
        chunks(_emitted(job, m["doc"], job["shuffle_buffer"], job["seed"]), m["doc"]), tok.name, pool, workers
    )
    try:
        for first, (tokens, lens, text_bytes) in [] if done else stream:
            ends = np.cumsum(lens)  # doc ends within this chunk's tokens
            starts = ends - lens
            c = skip
            skip = 0
            while c < len(tokens):
                take = min(end - pos - fill, len(tokens) - c)
                buf[fill : fill + take] = tokens[c : c + take]
                new = (starts >= c) & (starts < c + take) & (lens > 0)  # docs whose first token (their EOT) lands now
                m["documents"] += int(new.sum())
                m["text_bytes"] += int(text_bytes[new].sum())
                fill += take
                c += take
                bar.update(take)
                if pos + fill == end:
                    whole = int(np.searchsorted(ends, c, side="right"))  # docs of this chunk fully written
                    finish_shard(first + whole, c - int(starts[whole]) if whole < len(lens) else 0)
                    pos, fill = pos + fill, 0
                    if budget is not None and pos >= budget:
                        done = True
                        break
                    split, index, end = _shard_after(pos, val_tokens, shard_tokens, budget)
                    buf = np.empty(end - pos, dtype=buf.dtype)
            doc_pos = first + len(lens)
            bar.set_postfix(docs_s=f"{(m['documents'] - docs_done) / max(time.time() - t0, 1e-9):.0f}", refresh=False)
            if done:
                break
    finally:  # a terminal's stdout is routed above the bar until it closes
        bar.close()
    stream.close()
    if fill:  # the source ended inside a shard: the last shard is shorter
        finish_shard(doc_pos, 0)
        pos += fill
    if not any(s["split"] == "train" for s in m["shards"]):
        raise bad(
            "val_tokens",
            val_tokens,
            f"the source ended after {pos} tokens, all of them in the val split",
            f"Use --val_tokens below {pos} or a smaller --val_fraction",
        )
    m["elapsed_s"] = elapsed0 + time.time() - t0
    return _finish(out, tok, job, m)


def _finish(out: Path, tok, job: dict, m: dict) -> dict:
    tokens = sum(s["tokens"] for s in m["shards"])
    stats = {
        "source": job["source"],
        "name": job["name"],
        "tokenizer": tok.name,
        "documents": m["documents"],
        "tokens": tokens,
        "tokens_by_split": {s: sum(d["tokens"] for d in m["shards"] if d["split"] == s) for s in ("train", "val")},
        "text_bytes": m["text_bytes"],
        "bytes_per_token": round(m["text_bytes"] / max(tokens - m["documents"], 1), 4),
        "elapsed_s": round(m["elapsed_s"], 3),
        "tokens_per_s": round(tokens / max(m["elapsed_s"], 1e-9)),
        "budget": job["tokens"],
        "shards": m["shards"],
    }
    atomic_write_text(out / STATS, json.dumps(stats, indent=1) + "\n")
    m["finished"] = True
    atomic_write_text(out / MANIFEST, json.dumps(m, indent=1) + "\n")
    job_info = {
        k: job[k] for k in ("source", "name", "data_files", "files", "val_tokens", "shard_tokens", "shuffle_buffer")
    }
    write_meta(out, tok, m["shards"], job=job_info)  # last: its presence means the data is complete
    return stats
