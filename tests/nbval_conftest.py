"""The environment the notebooks run in under nbval (copied in as conftest.py by tests/test_notebooks.py)
and in tools/refresh_notebooks.py: offline, CPU, smoke mode unless FINEGPT_MODE says otherwise."""

import os
from pathlib import Path

os.environ.setdefault("FINEGPT_MODE", "smoke")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# tiny models on shared CI cores: one thread per kernel avoids threads spinning against each other
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
_cache = Path(__file__).resolve().parents[1].parent / "shared" / "tiktoken_cache"  # beside the repo, if there
if "TIKTOKEN_CACHE_DIR" not in os.environ and _cache.is_dir():
    os.environ["TIKTOKEN_CACHE_DIR"] = str(_cache)
