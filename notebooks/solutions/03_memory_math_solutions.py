# %% [markdown]
# # 03 · Memory math: solutions
#
# Worked solutions to the three exercises of [03 · Memory math](../03_memory_math.ipynb). Try each one
# there first: its check cell compares your numbers with `finegpt.memory.estimate` and names the term
# you missed.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/solutions/03_memory_math_solutions.ipynb)

# %%
# Install finegpt when this kernel lacks it. Written by tools/repo_url.py from pyproject.toml.
import importlib.metadata
import importlib.util
import subprocess
import sys

REPO = "https://github.com/finegpt/finegpt"
if importlib.util.find_spec("finegpt") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(f"finegpt is not installed in this kernel. In a clone of {REPO} run "
                                  "`pip install -e .`, then restart the kernel")
    loaded = [n for n in ("ipywidgets", "numpy", "pandas", "matplotlib", "torch") if n in sys.modules]
    before = {n: importlib.metadata.version(n) for n in loaded}
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"finegpt @ git+{REPO}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install finegpt from {REPO}:\n{pip.stderr[-1500:]}\nCheck that "
                           "the URL opens in a browser; a fork sets its own with `python tools/repo_url.py --set URL`")
    changed = [f"{n} {v} -> {importlib.metadata.version(n)}" for n, v in before.items()
               if importlib.metadata.version(n) != v]
    if changed:  # finegpt asks for versions Colab has; a package this kernel already uses changed anyway
        raise RuntimeError(f"pip replaced packages this kernel had already loaded ({', '.join(changed)}). "
                           "Restart the session (Runtime > Restart session), then run the notebook from the top")
    importlib.invalidate_caches()
import finegpt

print(f"finegpt {finegpt.__version__}")

# %%
import torch

from finegpt.model import GPT, count_params

# %% [markdown]
# ## Exercise 3.1 · The optimizer step's bytes
#
# Why it is written this way: one line per tensor that is alive while `optimizer.step()` runs, each a
# multiple of a parameter count. The decayed parameters (the 2-D tensors) are counted from the model
# itself, built on the meta device, so no formula for them can drift from the model.

# %%
def optimizer_step_bytes(cfg, optimizer, dtype):
    N = count_params(cfg, non_embedding=False)
    size = 2 if dtype == "pure_bf16" else 4  # autocast keeps fp32 master weights
    with torch.device("meta"):  # shapes only, no memory
        decayed = sum(p.numel() for p in GPT(cfg).parameters() if p.dim() >= 2)
    weights, grads = N * size, N * size
    states = {"adamw_fused": 2, "adamw_foreach": 2, "sgd_momentum": 1, "sgd": 0}[optimizer] * N * size
    temporaries = decayed * size if optimizer == "adamw_foreach" else 0  # fused updates in place
    return weights + grads + states + temporaries


# %%
from finegpt.exercises import check_optimizer_step_bytes

check_optimizer_step_bytes(optimizer_step_bytes)

# %% [markdown]
# ## Exercise 3.2 · The logits and the cross-entropy
#
# Why it is written this way: the term is n·V scores times the bytes each score costs at the start of
# backward, and that per-score cost is the only thing that depends on the dtype: the logits, the
# log-softmax cross-entropy keeps, and the gradients of both. Under autocast the logits are 16-bit
# but cross-entropy works in fp32.

# %%
BYTES_PER_SCORE = {
    "fp32": 4 + 4 + 4 + 4,  # logits, log-softmax, their two gradients
    "bf16": 2 + 4 + 4 + 4,  # autocast: 16-bit logits, fp32 cross-entropy
    "fp16": 2 + 4 + 4 + 4,
    "pure_bf16": 2 + 2 + 2 + 2,
}


def logits_bytes(batch_size, block_size, vocab_size, dtype):
    n = batch_size * block_size  # tokens in the micro-batch
    return n * vocab_size * BYTES_PER_SCORE[dtype]


# %%
from finegpt.exercises import check_logits_bytes

check_logits_bytes(logits_bytes)

# %% [markdown]
# ## Exercise 3.3 · The largest micro-batch
#
# Why it is written this way: memory only grows with the batch, so `fits` is true up to some b and false
# after it. Doubling finds a bracket [lo, hi) with lo fitting and hi not in log2(answer) calls, and
# halving the bracket finds the edge in as many again; `lo` always fits, so it is the answer.

# %%
def largest_batch(fits, limit=4096):
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= limit and fits(hi):
        lo, hi = hi, 2 * hi
    hi = min(hi, limit + 1)  # the first size not allowed
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


# %%
from finegpt.exercises import check_largest_batch

check_largest_batch(largest_batch)

# %% [markdown]
# Back to [03 · Memory math](../03_memory_math.ipynb), or on to the
# [04 solutions](04_training_run_solutions.ipynb).
