# %% [markdown]
# # 04 · Training run: solutions
#
# Worked solutions to the two exercises of [04 · Training run](../04_training_run.ipynb). Try each one
# there first: its check cell compares your code with finegpt's own schedule and training step.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/solutions/04_training_run_solutions.ipynb)

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
import math

import torch

# %% [markdown]
# ## Exercise 4.1 · The learning-rate schedule
#
# Why it is written this way: three regions in the order the run meets them. Warmup uses (it + 1) /
# (warmup_iters + 1), so iteration 0 already takes a small step and the full rate arrives just as
# warmup ends; the cosine runs from where warmup stopped, and the rate then stays at `min_lr`.

# %%
def lr_at(it, cfg):
    if not cfg.decay_lr:
        return cfg.learning_rate
    if it < cfg.warmup_iters:
        return cfg.learning_rate * (it + 1) / (cfg.warmup_iters + 1)
    if it > cfg.lr_decay_iters:
        return cfg.min_lr
    ratio = (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * ratio))  # 1 -> 0
    return cfg.min_lr + coeff * (cfg.learning_rate - cfg.min_lr)


# %%
from finegpt.exercises import check_lr_schedule

check_lr_schedule(lr_at)

# %% [markdown]
# ## Exercise 4.2 · One optimizer step
#
# Why it is written this way: each micro-batch's loss is divided by the number of micro-batches before
# `backward`, so the gradients that add up in `.grad` are the mean over the whole batch, as if it had
# fit at once. Clipping looks at the finished sum, once; `zero_grad(set_to_none=True)` after the step
# frees the gradients until the next backward makes them again.

# %%
def optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
    total = 0.0
    for k in range(gradient_accumulation_steps):
        x, y = get_batch(k)  # (B, T) each
        _, loss = model(x, y)
        loss = loss / gradient_accumulation_steps  # the step's gradient is the mean over micro-batches
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


# %%
from finegpt.exercises import check_optimizer_step

check_optimizer_step(optimizer_step)

# %% [markdown]
# Back to [04 · Training run](../04_training_run.ipynb), or on to the
# [05 solutions](05_sampling_solutions.ipynb).
