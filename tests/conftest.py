"""Shared test setup: tiktoken's GPT-2 files from the local cache when one is beside the repo; one_thread."""

import os
from pathlib import Path

import pytest

_cache = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken_cache"
if "TIKTOKEN_CACHE_DIR" not in os.environ and _cache.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_cache)
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One thread per test process: pytest-xdist runs one process per core, and tiny models gain nothing from
# more threads while oversubscribed OpenMP threads spin against each other (a 40x slowdown, measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture
def one_thread():
    """Tiny ops run fastest on one thread, and a test must not fight other tests for cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def eager_as_cited():
    """Estimate eager CUDA runs with terms.py's own count (the CPU build's), whatever a GPU run has written
    to calibration.json's eager_cuda: for tests that pin the formula itself."""
    from finegpt.memory import calibration

    with calibration.use({**calibration.load(), "eager_cuda": {}}):
        yield
