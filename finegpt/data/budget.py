"""What a token budget reads: tokens read, distinct tokens, epochs and the share of the prepared data a run
sees, from the plan alone (read_budget), and measured on prepared shards (measure_coverage).

Entry points: read_budget, ReadBudget, over_budget_warning, prepare_command, eval_summary,
measure_coverage, coverage_table.

Why random windows waste data. Draw R windows of T input tokens at starts uniform over the S-token
stream: a given token is inside one draw with probability p ≈ T/S, so after the reads D = R·T tokens it is
unseen with probability (1 - p)^R ≈ exp(-R·T/S) = exp(-D/S). Its count is Poisson with mean λ = D/S:
unseen e^-λ, read twice or more 1 - e^-λ(1 + λ). Reads equal to the stream (λ = 1) leave 1/e ≈ 37 % of
it unseen and read 1 - 2/e ≈ 26 % of it twice or more. The epoch sampler reads every window once per epoch:
at λ = 1 nothing is unseen and nothing is read twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from finegpt.config import SAMPLINGS
from finegpt.data.loader import BatchLoader
from finegpt.data.tokenizers import default_tokenizer
from finegpt.errors import bad


@dataclass(frozen=True)
class ReadBudget:
    """A run's reads against its prepared train split. Token counts are input tokens (x, not y)."""

    sampling: str
    block_size: int
    tokens_read: int
    train_tokens: int  # prepared
    val_tokens: int  # prepared
    tokens_per_epoch: int  # the epoch sampler's windows x block_size: what one pass reads
    epochs: float  # tokens_read / tokens_per_epoch
    distinct_tokens: int  # exact for 'epoch', the expectation for 'random'
    unseen_share: float  # of the tokens one pass reads, never read
    repeated_share: float  # of the tokens one pass reads, read twice or more

    @property
    def seen_share(self) -> float:
        """Share of the prepared train split the run reads at least once."""
        return self.distinct_tokens / self.train_tokens

    @property
    def covered(self) -> bool:
        """The prepared data holds the whole run: no token has to be read twice."""
        return self.tokens_read <= self.tokens_per_epoch

    @property
    def prepare_tokens(self) -> int:
        """`finegpt prepare --tokens` (val included) whose train split is one epoch of this run: windows of
        block_size + 1 tokens that share their edges need one token beyond the reads."""
        return self.val_tokens + math.ceil(self.tokens_read / self.block_size) * self.block_size + 1

    def summary(self) -> str:
        """One line for logs: what the run reads of its prepared data."""
        expected = "expected " if self.sampling == "random" else ""
        return (
            f"sampling={self.sampling}: reads {self.tokens_read:,} tokens = {self.epochs:.2f} epochs of the "
            f"{self.train_tokens:,}-token train split; {expected}distinct {self.distinct_tokens:,} "
            f"({100 * self.seen_share:.1f} % of it), {100 * self.repeated_share:.1f} % read twice or more"
        )


def read_budget(tokens_read: int, prepared: dict, block_size: int, sampling: str = "epoch") -> ReadBudget:
    """What reading tokens_read input tokens does to a split of prepared = {"train": n, "val": m} tokens
    (meta.json's "tokens"), with either sampler; see the module docstring for the random case."""
    if sampling not in SAMPLINGS:
        raise bad("sampling", sampling, "is not a sampler", f"Use one of {', '.join(SAMPLINGS)}")
    train_tokens = int(prepared["train"])
    windows = max(1, (train_tokens - 1) // block_size)
    per_epoch = windows * block_size
    lam = tokens_read / per_epoch
    if sampling == "epoch":  # windows read = tokens_read / block_size, each once per epoch
        distinct = min(tokens_read, per_epoch)
        unseen, repeated = max(0.0, 1.0 - lam), min(1.0, max(0.0, lam - 1.0))
    else:  # Poisson counts with mean lam
        unseen, repeated = math.exp(-lam), 1.0 - math.exp(-lam) * (1.0 + lam)
        distinct = round(per_epoch * (1.0 - unseen))
    return ReadBudget(
        sampling,
        block_size,
        int(tokens_read),
        train_tokens,
        int(prepared.get("val", 0)),
        per_epoch,
        lam,
        int(distinct),
        unseen,
        repeated,
    )


def prepare_command(meta: dict, data_dir, tokens: int) -> str:
    """The `finegpt prepare` that remakes data_dir (its source, tokenizer and val split) with `tokens` tokens."""
    job = meta.get("job") or {}
    source = job.get("source") or "shakespeare"
    parts = ["finegpt prepare", f"--source {source}"]
    if job.get("name"):
        parts.append(f"--name {job['name']}")
    if job.get("data_files"):
        files = job["data_files"]
        parts.append(f"--data_files {files if isinstance(files, str) else files[0]}")
    if meta.get("tokenizer") != default_tokenizer(source):
        parts.append(f"--tokenizer {meta['tokenizer']}")
    parts += [f"--out {data_dir}", f"--tokens {tokens}", f"--val_tokens {meta['tokens']['val']}", "--overwrite"]
    return " ".join(parts)


def over_budget_warning(budget: ReadBudget, meta: dict, data_dir) -> str | None:
    """A one-line warning when the run reads more tokens than one pass over the prepared data, else None."""
    if budget.covered:
        return None
    source = (meta.get("job") or {}).get("source")
    if source == "shakespeare":  # prepared whole unless a budget cut it
        more = "The embedded Shakespeare has no more: prepare a larger --source to read each token once"
    elif source is None:  # shards written by hand: no command to repeat
        more = f"To read each once, prepare {budget.prepare_tokens} tokens (`finegpt prepare --tokens ...`)"
    else:
        command = prepare_command(meta, data_dir, budget.prepare_tokens)
        more = f"To read each once, run `{command}` (a source that ends sooner stops there)"
    return (
        f"warning: this run reads {budget.tokens_read:,} tokens, but the train split of {data_dir} holds "
        f"{budget.tokens_per_epoch:,} in windows of {budget.block_size}: {budget.epochs:.2f} epochs, so tokens are "
        f"read again. {more}, or lower max_iters"
    )


def eval_summary(loader, eval_iters: int) -> str:
    """How much of its split an eval loader's first eval_iters steps score (the same windows every eval)."""
    windows = min(eval_iters * loader.rows_per_step, loader.n_windows)
    tokens = windows * loader.block_size
    return (
        f"{loader.split} loss over {windows:,} distinct windows of {loader.block_size} = {tokens:,} tokens, "
        f"{100 * tokens / loader.num_tokens:.1f} % of the {loader.split} split"
    )


# ---- measured coverage, for the notebook's table ---------------------------------------------------


def measure_coverage(loader, tokens_read: int, chunk_tokens: int = 2**22) -> dict:
    """Count how often each token of the loader's split is read as an input when the loader's sampler
    reads tokens_read tokens (steps 0, 1, ... of a BatchLoader; all of its ranks). Returns
    {"sampling", "tokens_read", "stream_tokens", "unseen_share", "repeated_share"}, shares of the stream's
    tokens (the last one, only ever a target, left out). Memory: the window starts plus one chunk."""
    T = loader.block_size
    steps = -(-tokens_read // (T * loader.rows_per_step))
    starts = np.sort(np.concatenate([loader.starts(k) for k in range(steps)])[: -(-tokens_read // T)])
    stream = loader.num_tokens - 1
    unseen = repeated = 0
    for a in range(0, stream, chunk_tokens):
        pos = np.arange(a, min(a + chunk_tokens, stream))
        # reads covering position i: starts in (i - T, i]
        count = np.searchsorted(starts, pos, side="right") - np.searchsorted(starts, pos - T, side="right")
        unseen += int((count == 0).sum())
        repeated += int((count >= 2).sum())
    return {
        "sampling": loader.sampling,
        "tokens_read": len(starts) * T,
        "stream_tokens": stream,
        "unseen_share": unseen / stream,
        "repeated_share": repeated / stream,
    }


def coverage_table(data_dir, block_size: int, tokens_read: int | None = None, seed: int = 1337) -> list[dict]:
    """measure_coverage for both samplers on the train split of data_dir; by default the reads equal the
    stream, where random windows leave about 1/e unseen and the epoch sampler none."""
    rows = []
    for sampling in SAMPLINGS:
        loader = BatchLoader(data_dir, "train", 1024, block_size, seed=seed, sampling=sampling)
        rows.append(measure_coverage(loader, loader.n_windows * block_size if tokens_read is None else tokens_read))
    return rows
