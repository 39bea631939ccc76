# %% [markdown]
# # 04 · Training run: solutions
#
# Worked solutions to the two exercises of [04 · Training run](../04_training_run.ipynb). Try each one
# there first: its check cell compares your code with finegpt's own schedule and training step.

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
