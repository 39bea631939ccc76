"""Random-window batches over the memmapped shards of one split (nanoGPT style), resumable by step number.

Entry point: BatchLoader(data_dir, split, batch_size, block_size, seed, rank, world_size).get_batch(step).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from finegpt.data.shards import load_meta, read_shard
from finegpt.errors import bad


class BatchLoader:
    """`get_batch(step)` is a pure function of (seed, split, step, rank, world_size).

    Each step draws `world_size * batch_size` window starts from an RNG seeded with (seed, split, step)
    over the split's shards seen as one concatenated token stream; rank r keeps rows r*B:(r+1)*B.
    So 2 ranks x B rows see exactly what 1 rank x 2B rows sees, and resuming needs only the step.
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
    ):
        if split not in ("train", "val"):
            raise bad("split", split, "unknown split", "Use train or val")
        for field, value in (("batch_size", batch_size), ("block_size", block_size), ("world_size", world_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(field, value, "must be a positive integer", f"Use {field} >= 1")
        if not 0 <= rank < world_size:
            raise bad("rank", rank, f"outside 0..{world_size - 1}", "Pass the process's rank in its world_size")
        self.data_dir = Path(data_dir)
        meta = load_meta(self.data_dir)
        self.meta = meta
        self.tokenizer, self.vocab_size, self.eot = meta["tokenizer"], meta["vocab_size"], meta["eot"]
        self.split, self.batch_size, self.block_size = split, batch_size, block_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shards = [read_shard(self.data_dir / s["file"], meta)[1] for s in meta["shards"] if s["split"] == split]
        self.offsets = np.cumsum(
            [0] + [len(s) for s in self.shards]
        )  # shard i holds stream positions offsets[i]:offsets[i+1]
        self.num_tokens = int(self.offsets[-1])
        if self.num_tokens < block_size + 1:
            raise bad(
                "block_size",
                block_size,
                f"the {split} split of {self.data_dir} holds only {self.num_tokens} tokens, fewer than block_size + 1",
                "Use a smaller block_size, or prepare more data (--tokens, val_fraction)",
            )
        self._split_id = zlib.crc32(split.encode())  # stable across processes, unlike hash()

    def starts(self, step: int) -> np.ndarray:
        """Window starts for all ranks at this step, (world_size * batch_size,)."""
        rng = np.random.default_rng([self.seed, self._split_id, step])
        return rng.integers(0, self.num_tokens - self.block_size, size=self.world_size * self.batch_size)

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
        ix = self.starts(step)[self.rank * B : (self.rank + 1) * B]
        rows = np.empty((B, T + 1), dtype=np.int64)
        for b, start in enumerate(ix):
            rows[b] = self._window(int(start), T + 1)
        x = torch.from_numpy(rows[:, :-1].copy())  # (B, T)
        y = torch.from_numpy(rows[:, 1:].copy())  # (B, T)
        return x, y

    def __repr__(self) -> str:
        return (
            f"BatchLoader({str(self.data_dir)!r}, {self.split!r}, batch_size={self.batch_size}, "
            f"block_size={self.block_size}, tokens={self.num_tokens:,}, tokenizer={self.tokenizer!r})"
        )
