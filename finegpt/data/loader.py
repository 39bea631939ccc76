"""Batches over the memmapped shards of one split, resumable by step number: every window once per epoch
in a seeded order (sampling='epoch', the default), or nanoGPT's random windows (sampling='random').

Entry points: BatchLoader(data_dir, split, batch_size, block_size, seed, rank, world_size, sampling).get_batch(step),
EpochOrder (the epoch sampler's order on its own).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from finegpt.config import SAMPLINGS
from finegpt.data.checks import check_batch_ids
from finegpt.data.shards import load_meta, read_shard
from finegpt.errors import bad

# An epoch of more windows than this is shuffled in blocks of this many: one block's order is a uint32
# array of 64 MiB, which every rank holds (16.7M windows of 1024 tokens: 17B tokens before blocking starts).
BLOCK_WINDOWS = 2**24


class EpochOrder:
    """Position p of an endless read -> the window it reads: epoch p // n_windows, in a seeded order.

    Each epoch is a permutation of the n_windows windows, seeded with (seed, salt, epoch), so past one
    epoch a new order starts. Up to block_windows windows it is a full permutation. Beyond that it is a
    blocked one: the windows are cut into blocks of block_windows consecutive windows, the block order is
    shuffled, and each block is shuffled within itself (seeded with (seed, salt, epoch, block)). Only the
    blocks in use are held in memory, so any stream can be ordered, and every window is still read once
    per epoch. A pure function of its arguments: resuming needs only the position.
    """

    def __init__(self, n_windows: int, seed: int, salt: int = 0, block_windows: int = BLOCK_WINDOWS):
        self.n_windows, self.seed, self.salt, self.block_windows = n_windows, seed, salt, block_windows
        self.n_blocks = -(-n_windows // block_windows)
        self._blocks: dict = {}  # (epoch, block) -> that block's order; the two most recent are kept
        self._order_of: tuple = (None, None)  # (epoch, its block order)

    def _block_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(blocks in reading order, their sizes, where each one ends in the epoch)."""
        if self._order_of[0] != epoch:
            order = np.random.default_rng([self.seed, self.salt, epoch]).permutation(self.n_blocks)
            sizes = np.minimum(self.block_windows, self.n_windows - order * self.block_windows)
            self._order_of = (epoch, (order, sizes, np.cumsum(sizes)))
        return self._order_of[1]

    def _shuffled_block(self, epoch: int, block: int) -> np.ndarray:
        key = (epoch, block)
        if key not in self._blocks:
            first = block * self.block_windows
            dtype = np.uint32 if self.n_windows <= 2**32 else np.int64  # half the memory where ids fit
            ids = np.arange(first, min(first + self.block_windows, self.n_windows), dtype=dtype)
            np.random.default_rng([self.seed, self.salt, epoch, block]).shuffle(ids)
            if len(self._blocks) >= 2:  # reads move forward: only the block before is worth keeping
                self._blocks.pop(next(iter(self._blocks)))
            self._blocks[key] = ids
        return self._blocks[key]

    def epoch(self, position: int) -> int:
        return position // self.n_windows

    def __call__(self, first: int, count: int) -> np.ndarray:
        """Window ids (int64) read at positions first .. first + count - 1."""
        pieces = []
        while count > 0:  # usually once: a run of positions leaves its block only at the block's end
            epoch, within = divmod(first, self.n_windows)
            order, sizes, ends = self._block_order(epoch)
            slot = int(np.searchsorted(ends, within, side="right"))
            offset = within - int(ends[slot] - sizes[slot])
            take = min(count, int(sizes[slot]) - offset)
            pieces.append(self._shuffled_block(epoch, int(order[slot]))[offset : offset + take])
            first, count = first + take, count - take
        return np.concatenate(pieces).astype(np.int64)  # int64: ids x block_size must not wrap


class BatchLoader:
    """`get_batch(step)` is a pure function of (seed, split, step, rank, world_size, sampling).

    The split's shards are one concatenated token stream. Step k reads the global rows
    k*world_size*B .. (k+1)*world_size*B of an endless read, and rank r keeps rows r*B:(r+1)*B, so ranks
    read disjoint windows, and 2 ranks x B rows read exactly what 1 rank x 2B rows reads. Resuming
    needs only the step.
    - sampling='epoch': the stream is cut into n_windows = (tokens - 1) // block_size non-overlapping
      windows of block_size + 1 tokens (window i starts at i * block_size; its last target is the next
      window's first input, as in llm.c). Global row p reads window EpochOrder(...)(p): each epoch visits
      every window once, in an order seeded with (seed, split, epoch).
    - sampling='random': nanoGPT's windows, at starts drawn from an RNG seeded with (seed, split, step).
      About 1/e of the stream is never read when the reads add up to the stream (finegpt.data.budget).
    """

    def __init__(
        self,
        data_dir,
        split: str,
        batch_size: int,
        block_size: int,
        seed: int = 1337,
        rank: int = 0,
        world_size: int = 1,
        sampling: str = "epoch",
    ):
        if split not in ("train", "val"):
            raise bad("split", split, "unknown split", "Use train or val")
        for field, value in (("batch_size", batch_size), ("block_size", block_size), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, value, "must be a positive integer", f"Use {field} >= 1")
        if not 0 <= rank < world_size:
            raise bad("rank", rank, f"outside 0..{world_size - 1}", "Pass the process's rank in its world_size")
        if sampling not in SAMPLINGS:
            raise bad("sampling", sampling, "is not a sampler", f"Use one of {', '.join(SAMPLINGS)}")
        self.data_dir = Path(data_dir)
        meta = load_meta(self.data_dir)
        self.meta = meta
        self.tokenizer, self.vocab_size, self.eot = meta["tokenizer"], meta["vocab_size"], meta["eot"]
        self.split, self.batch_size, self.block_size = split, batch_size, block_size
        self.seed, self.rank, self.world_size, self.sampling = seed, rank, world_size, sampling
        self.shards = [read_shard(self.data_dir / s["file"], meta)[1] for s in meta["shards"] if s["split"] == split]
        # shard i holds stream positions offsets[i]:offsets[i+1]
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])
        self.num_tokens = int(self.offsets[-1])
        if self.num_tokens < block_size + 1:
            raise bad(
                "block_size",
                block_size,
                f"the {split} split of {self.data_dir} holds only {self.num_tokens} tokens, fewer than block_size + 1",
                "Use a smaller block_size, or prepare more data (--tokens, val_fraction)",
            )
        self._split_id = zlib.crc32(split.encode())  # stable across processes, unlike hash()
        self.n_windows = (self.num_tokens - 1) // block_size  # the epoch sampler's windows
        self.order = EpochOrder(self.n_windows, seed, self._split_id)

    @property
    def rows_per_step(self) -> int:
        """Windows read per step over all ranks."""
        return self.world_size * self.batch_size

    def epoch(self, step: int) -> int:
        """The epoch the epoch sampler is in at the start of this step."""
        return self.order.epoch(step * self.rows_per_step)

    def starts(self, step: int, rank: int | None = None) -> np.ndarray:
        """Window starts at this step: all ranks' (world_size * batch_size,), or one rank's (batch_size,)."""
        B = self.batch_size
        if self.sampling == "random":
            rng = np.random.default_rng([self.seed, self._split_id, step])
            starts = rng.integers(0, self.num_tokens - self.block_size, size=self.rows_per_step)
            return starts if rank is None else starts[rank * B : (rank + 1) * B]
        first = step * self.rows_per_step + (0 if rank is None else rank * B)
        rows = self.rows_per_step if rank is None else B
        return self.order(first, rows) * self.block_size

    def _window(self, start: int, length: int) -> np.ndarray:
        """`length` tokens from stream position `start`, crossing shard boundaries when needed."""
        i = int(np.searchsorted(self.offsets, start, side="right")) - 1
        local = start - int(self.offsets[i])
        piece = self.shards[i][local : local + length]
        if len(piece) == length:
            return piece
        parts, got = [piece], len(piece)
        while got < length:
            i += 1
            parts.append(self.shards[i][: length - got])
            got += len(parts[-1])
        return np.concatenate(parts)

    def get_batch(self, step: int):
        """(x, y): int64 CPU tensors of shape (B, T), y = x shifted left by one."""
        import torch

        B, T = self.batch_size, self.block_size
        rows = np.empty((B, T + 1), dtype=np.int64)
        for b, start in enumerate(self.starts(step, self.rank)):
            rows[b] = self._window(int(start), T + 1)
        check_batch_ids(rows, self.vocab_size, self.data_dir, f"the {self.split} batch of step {step}")
        x = torch.from_numpy(rows[:, :-1].copy())  # (B, T)
        y = torch.from_numpy(rows[:, 1:].copy())  # (B, T)
        return x, y

    def __repr__(self) -> str:
        return (
            f"BatchLoader({str(self.data_dir)!r}, {self.split!r}, batch_size={self.batch_size}, "
            f"block_size={self.block_size}, sampling={self.sampling!r}, tokens={self.num_tokens:,}, "
            f"tokenizer={self.tokenizer!r})"
        )
