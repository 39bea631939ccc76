# %% [markdown]
# # 04 · Training run: train a GPT, watch it learn, stop it and resume it
#
# **What you will learn**
# - how to pick the model, batch and length of a run from notebook 03's plan for your GPU;
# - what the learning-rate schedule looks like, and how to read a live loss curve;
# - what tokens per second and MFU say about how well the GPU is used;
# - how checkpoints make a run survive an interrupt, and why a resumed run continues exactly;
# - what the validation loss means.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/04_training_run.ipynb)

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # on Colab: install finegpt from GitHub (about a minute)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "finegpt @ git+https://github.com/finegpt/finegpt"], check=True)

# %% [markdown]
# **Smoke or full?** With `SMOKE = None` the notebook decides: *smoke mode* (tiny, offline, a few seconds
# on a CPU; what the tests run) when there is no CUDA GPU or the environment sets `FINEGPT_SMOKE=1`,
# *full mode* (FineWeb, a real GPU run) otherwise. Set `SMOKE = True` or `False` to choose yourself.

# %% tags=["parameters"]
SMOKE = None  # None: smoke mode (tiny, CPU, offline) without a CUDA GPU or when FINEGPT_SMOKE=1

# %%
import math
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
from IPython.display import Markdown, display

from finegpt import memory as M
from finegpt import plots
from finegpt.config import ModelConfig, TrainConfig, padded_vocab
from finegpt.data import get_tokenizer, load_meta, prepare
from finegpt.sample import generate_text
from finegpt.train import get_lr, load_checkpoint, train

# %% [markdown]
# The parameters cell only records what you asked for; here `None` becomes a decision, and `device`
# follows it: smoke mode trains on the CPU even when a GPU is present.

# %%
if SMOKE is None:
    SMOKE = os.environ.get("FINEGPT_SMOKE") == "1" or not torch.cuda.is_available()
device = "cuda" if torch.cuda.is_available() and not SMOKE else "cpu"
print(f"SMOKE={SMOKE}, device={device}")

# %% [markdown]
# ## 1. Which model, batch and run length does this machine get?
#
# On a GPU we take notebook 03's `session_plan` for the detected card: among a ladder of model sizes, the
# one whose token budget for a fixed number of minutes comes closest to the compute-optimal 20 tokens per
# (non-embedding) parameter, at a micro-batch that fits with headroom. On a Colab T4 it uses fp16 with a
# gradient scaler (the T4 has no bf16). The data is the FineWeb shards notebook 01 wrote.
#
# In smoke mode (CPU, no network) we train a tiny model on Shakespeare, one byte per token (vocabulary
# 256 bytes + EOT), for a few seconds: the same code on a much smaller scale.

# %%
if SMOKE:
    data_dir = Path("data/shakespeare-bytes")
    if not (data_dir / "meta.json").exists():
        prepare("shakespeare", out=data_dir, tokenizer="bytes", progress=False)
    model_cfg = ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, dropout=0.0)
    train_cfg = TrainConfig(out_dir="out-04-smoke", data_dir=str(data_dir), batch_size=32, gradient_accumulation_steps=1,
                            max_iters=200, eval_interval=50, eval_iters=5, log_interval=10, learning_rate=3e-3,
                            min_lr=3e-4, warmup_iters=10, lr_decay_iters=200, device="cpu", dtype="float32",
                            deterministic=True, keep_checkpoints=20)
else:
    GPU = M.detected_gpu_key(default="T4")  # this card's preset; the lab's T4 if it has none
    session = M.session_plan(GPU)
    data_dir = Path("data/fineweb-10BT")  # written by notebook 01; prepared here if 01 was skipped
    if not (data_dir / "meta.json").exists():
        prepare("fineweb", name="sample-10BT", out=data_dir, tokenizer="gpt2", tokens=session.tokens + 5_000_000,
                val_tokens=5_000_000)
    model_cfg = ModelConfig(**session.model)
    iters = session.max_iters
    lr = 1e-3 if session.params < 50e6 else 6e-4  # small models take a larger learning rate
    train_cfg = TrainConfig(out_dir="out-04", data_dir=str(data_dir), batch_size=session.batch_size,
                            gradient_accumulation_steps=session.gradient_accumulation_steps, max_iters=iters,
                            eval_interval=max(50, iters // 8), eval_iters=20, log_interval=10, learning_rate=lr,
                            min_lr=lr / 10, warmup_iters=max(10, iters // 20), lr_decay_iters=iters,
                            dtype={"fp16": "float16", "bf16": "bfloat16"}[session.dtype], keep_checkpoints=20)
    display(Markdown(f"Plan for the {M.GPUS[GPU].name}: " + "; ".join(session.notes)))

# %% [markdown]
# Whichever branch ran, the vocabulary comes from the data: the tokenizer's size from `meta.json`,
# rounded up to a multiple of 64 as notebook 02 explained.

# %%
meta = load_meta(data_dir)
model_cfg = replace(model_cfg, vocab_size=padded_vocab(meta["vocab_size"]))  # the tokenizer's, padded to 64
tokens_per_iter = train_cfg.batch_size * train_cfg.gradient_accumulation_steps * model_cfg.block_size
print(model_cfg)
print(f"{train_cfg.max_iters} iterations x {tokens_per_iter:,} tokens = {train_cfg.max_iters * tokens_per_iter:,} tokens "
      f"of {meta['tokens']['train']:,} prepared ({meta['tokenizer']} tokenizer)")

# %% [markdown]
# Compare the two token counts. When the run reads fewer tokens than were prepared, as here, it never
# sees a training token twice, so its training loss is already an honest estimate.

# %% [markdown]
# How much memory will it take, and how long? The same estimate as in notebook 03:

# %%
run = M.run_config(train_cfg, gpu=None if SMOKE else GPU, device=device)  # the run as the memory model sees it
report = M.estimate(model_cfg, run)
print(f"predicted peak: {report.peak_bytes / 2**20:,.1f} MiB ({report.peak_phase})"
      + ("" if SMOKE else f", {'fits' if report.fits else 'does NOT fit'} the {M.GPUS[GPU].name}; "
                          f"about {session.minutes:.0f} minutes at {session.mfu:.0%} MFU"))

# %% [markdown]
# On a GPU the line also gives the verdict against the card and the planned minutes. On a CPU there is
# no card to fit, but the number shows how little memory a tiny model needs.

# %% [markdown]
# ## 2. How does the learning rate change during the run?
#
# nanoGPT's schedule: a linear warmup (large early updates would wreck the random initial weights), then
# a cosine decay down to `min_lr`. `finegpt.train.get_lr` gives the rate of every iteration (exercise 4.1
# below asks you to write it).

# %%
schedule = [get_lr(it, train_cfg) for it in range(train_cfg.max_iters + 1)]
w = train_cfg.warmup_iters
print(f"iteration 0: {schedule[0]:.2e}, iteration {w}: {schedule[w]:.2e}, iteration {train_cfg.max_iters}: "
      f"{schedule[-1]:.2e}")
assert max(schedule) == schedule[w] == train_cfg.learning_rate  # the peak is where warmup ends

# %% [markdown]
# The rate starts small, peaks exactly when warmup ends, and falls from there. Now the curve: look for the
# short ramp at the start and the long cosine after it.

# %%
lr_plot = plots.LossPlot("Learning-rate schedule")
for it in range(0, train_cfg.max_iters + 1, max(1, train_cfg.max_iters // 200)):
    lr_plot.add(it, lr=schedule[it])
lr_plot.figure()

# %% [markdown]
# The rate never reaches zero: it stops at `min_lr`, a tenth of the peak in both modes, so the last
# iterations still learn a little.

# %% [markdown]
# ### Exercise 4.1 · The learning-rate schedule
#
# Write `lr_at(it, cfg)`: the learning rate of iteration `it` for a `TrainConfig` `cfg`, as `get_lr` gives
# it. It reads `cfg.learning_rate`, `cfg.min_lr`, `cfg.warmup_iters`, `cfg.lr_decay_iters` and
# `cfg.decay_lr` (False: the rate is constant).

# %% [markdown]
# Aim for three pieces. Warmup, it < warmup_iters: learning_rate · (it + 1) / (warmup_iters + 1), so
# iteration 0 already moves. Decay, up to lr_decay_iters: min_lr + ½(1 + cos(π·r))·(learning_rate − min_lr)
# with r = (it − warmup_iters) / (lr_decay_iters − warmup_iters). After that: min_lr.

# %%
def lr_at(it, cfg):
    raise NotImplementedError  # your code here


# %% [markdown]
# The check compares with `get_lr` at every iteration of three configs (with warmup, without, and
# `decay_lr=False`), and names warmup off by one either way, no floor after `lr_decay_iters`, a decay to 0
# instead of `min_lr`, a linear decay, and a decay that starts before warmup ends. Worked solutions:
# [solutions/04_training_run_solutions.ipynb](solutions/04_training_run_solutions.ipynb).

# %%
from finegpt.exercises import check_lr_schedule

check_lr_schedule(lr_at)

# %% [markdown]
# ### Exercise 4.2 · One optimizer step, with gradient accumulation and clipping
#
# The rate feeds an optimizer step, and `train` runs one per iteration. Write
# `optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip)`: run
# `gradient_accumulation_steps` micro-batches (`x, y = get_batch(k)`, each (B, T); `_, loss = model(x, y)`)
# forward and backward, clip the gradients' norm to `grad_clip`, step once, zero the gradients, and
# return the step's loss, the mean over the micro-batches.

# %% [markdown]
# Aim for gradients that equal one big batch's: divide each micro-batch's loss by the number of
# micro-batches before `backward()`, so the gradients that add up in `.grad` are a mean. Clip once, with
# `torch.nn.utils.clip_grad_norm_`, after the last backward; `optimizer.zero_grad(set_to_none=True)` after
# the step.

# %%
def optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
    raise NotImplementedError  # your code here


# %% [markdown]
# The check runs your step and finegpt's own on copies of a tiny GPT, once with gradients under the clip
# and once over it, and compares the gradients `optimizer.step()` sees. It names a loss not divided by the
# number of micro-batches, `zero_grad` inside the loop, no clipping or clipping every micro-batch,
# `clip_grad_value_`, several steps, gradients left after the step, and the sum returned instead of the mean.

# %%
from finegpt.exercises import check_optimizer_step

check_optimizer_step(optimizer_step)

# %% [markdown]
# ## 3. Does the loss go down? Train with a live plot
#
# `finegpt.train.train` calls a callback with every logged row; `LossPlot.log` redraws the figure in place.
# A run's session can end at any moment (a Colab timeout, a crash, Ctrl-C), so we simulate one: the callback
# raises `KeyboardInterrupt` (what the notebook's stop button raises) partway through, after the first
# checkpoint and before the second.

# %%
stop_at = train_cfg.eval_interval + 2 * train_cfg.log_interval  # after the first checkpoint
history = []


def interrupt_midway(row):
    history.append(row)
    plot.log(row)
    if row["iter"] >= stop_at and "loss" in row:
        raise KeyboardInterrupt


# %% [markdown]
# `interrupt_midway` is an ordinary callback: it keeps each row, redraws the plot, and pulls the plug once
# the run passes `stop_at`. The lesson starts from an empty folder, so it first deletes its own earlier run
# (`overwrite=True` would keep that run until the new one finishes, and this one is about to be interrupted).

# %%
plot = plots.LossPlot(f"Training ({'smoke: Shakespeare bytes' if SMOKE else 'FineWeb'})").show()
shutil.rmtree(train_cfg.out_dir, ignore_errors=True)  # this notebook's own earlier run, if any
t0 = time.time()
try:
    train(model_cfg, train_cfg, callback=interrupt_midway)
except KeyboardInterrupt:
    print(f"interrupted at iter {history[-1]['iter']} after {time.time() - t0:.0f} s")

# %% [markdown]
# Read the log: a checkpoint was saved at the first evaluation, and training went on a little before the
# interrupt. Those last iterations are lost, unless the checkpoint holds everything needed to redo them.

# %% [markdown]
# ## 4. What did the checkpoint save?
#
# Every evaluation writes a checkpoint: to a temporary file first, then renamed, so a crash mid-write
# never leaves a broken `ckpt.pt`. It holds plain data only (weights, optimizer moments, RNG states,
# the iteration, the config), and loads with `torch.load(weights_only=True)`.

# %%
out_dir = Path(train_cfg.out_dir)
ckpt = load_checkpoint(out_dir, map_location="cpu")
print("files:", sorted(p.name for p in out_dir.iterdir()))
print("keys:", sorted(ckpt))
print(f"saved at iter {ckpt['iter_num']}, best val loss {ckpt['best_val_loss']:.4f}")
assert ckpt["iter_num"] == train_cfg.eval_interval

# %% [markdown]
# Beyond the weights, `optimizer` holds AdamW's two moments per parameter (twice the weights' size) and
# `rng` the random generators' state. Without them a resumed run would take different steps.

# %% [markdown]
# ## 5. Does a resumed run continue exactly where it stopped?
#
# `init_from="resume"` loads the checkpoint: weights, optimizer state, the RNG states and the iteration
# number. Batches are a pure function of the step number, so the resumed run sees the same batches as
# an uninterrupted one. The iterations between the checkpoint and the interrupt run again, and must give
# the same losses as the first time.

# %%
first_try = {r["iter"]: r["loss"] for r in history if "loss" in r}
resumed_rows = []


def keep_plotting(row):
    resumed_rows.append(row)
    plot.log(row)


t0 = time.time()
result = train(model_cfg, replace(train_cfg, init_from="resume"), callback=keep_plotting)
plot.final()
train_s = time.time() - t0

# %% [markdown]
# Now compare the iterations that ran twice: once before the interrupt, and again after resuming from
# the checkpoint.

# %%
again = {r["iter"]: r["loss"] for r in resumed_rows if "loss" in r and r["iter"] in first_try}
print("iterations run twice:", {it: (round(first_try[it], 4), round(loss, 4)) for it, loss in again.items()})
tolerance = 1e-4 if SMOKE else 1e-2  # GPU kernels may sum in a different order from run to run
assert again and all(math.isclose(first_try[it], loss, rel_tol=tolerance) for it, loss in again.items())

# %% [markdown]
# Equal losses show that the checkpoint was enough: nothing else survived the interrupt. On a GPU the
# tolerance is looser only because its kernels may add numbers in a different order.

# %% [markdown]
# ## 6. How fast was it, and how well did it use the hardware?
#
# Tokens per second is the raw speed. MFU (model FLOPs utilisation) divides the FLOPs the model needs
# per second (6 per parameter per token, plus attention) by the GPU's datasheet peak: it says how much of
# the hardware you bought you are using. On a CPU there is no datasheet peak, so no MFU.

# %%
train_rows = [r for r in resumed_rows if "tokens_per_s" in r]
tokens_per_s = sorted(r["tokens_per_s"] for r in train_rows)[len(train_rows) // 2]
mfus = [r["mfu"] for r in train_rows if r.get("mfu") is not None]
print(f"median speed: {tokens_per_s:,.0f} tokens/s" + (f", MFU {100 * sorted(mfus)[len(mfus) // 2]:.1f}%" if mfus else ""))
if not SMOKE:
    print(f"planned: {session.minutes:.0f} min at {session.mfu:.0%} MFU; this run trained for {train_s / 60:.1f} min")

# %% [markdown]
# Tokens per second is the number to compare between settings on the same machine. MFU is the one to
# compare across machines, because it divides by each card's own peak.

# %% [markdown]
# ## 7. What is the validation loss, and is it good?
#
# The loss is the average cross-entropy of the next token on held-out text, in nats. A model that knows
# nothing spreads its bets evenly over the vocabulary and scores ln(vocabulary size); every nat below that
# is something learned. exp(loss) is the perplexity: how many tokens the model is still choosing between.

# %%
val_loss = result["final_val_loss"]
uniform = math.log(meta["vocab_size"])
display(Markdown(
    f"Validation loss after {result['iter_num']} iterations: **{val_loss:.3f}** (perplexity {math.exp(val_loss):.1f}); "
    f"guessing uniformly over {meta['vocab_size']:,} tokens scores {uniform:.3f} (perplexity {meta['vocab_size']:,})."))
assert val_loss < uniform

# %% [markdown]
# Compare losses only between runs with the same tokenizer: a byte model and a GPT-2-token model predict
# different units, so their losses sit on different scales. Within one run, train and val losses close
# together mean the model is not yet memorising its training text.

# %% [markdown]
# ## 8. Is it as good as GPT-2?
#
# The popular guide says people's small FineWeb models "often beat original GPT-2". The only fair check
# scores both models on the same held-out tokens: `finegpt.eval.compare` loads OpenAI's GPT-2 (124M) into
# finegpt's own `GPT` class and measures both on this run's validation shard, token for token. It needs
# the network (GPT-2's weights are 500 MB), so smoke mode skips it. From a terminal:
# `finegpt eval --ckpt out-04 --baseline gpt2`.

# %%
if SMOKE:
    print("smoke mode: offline, so the GPT-2 comparison is skipped (its weights are a download)")
else:
    from finegpt.eval.compare import compare, format_table

    print(format_table(compare(ckpt=str(train_cfg.out_dir), baseline="gpt2", tokens=2**20)))

# %% [markdown]
# Scoring both models on the same tokens is the whole point: a loss measured on other text says nothing
# about which model is better.

# %% [markdown]
# What does the model write now? (Notebook 05 is all about sampling.)

# %%
tok = get_tokenizer(meta["tokenizer"])
prompt = "ROMEO:" if SMOKE else "The meaning of life is"
print(generate_text(result["model"], tok, prompt, max_new_tokens=200 if SMOKE else 100, temperature=0.8, seed=1337)[0])

# %% [markdown]
# Look at what a short run learns first: the shape of the text (names in capitals followed by a colon,
# line breaks, punctuation) comes before real words do.

# %% [markdown]
# ## Try it
# - Raise `max_iters` (smoke mode) or the session minutes in `session_plan` (GPU) and watch the loss curve.
# - Set `learning_rate` ten times higher: does the loss spike or diverge? `finegpt` stops and names the last
#   good checkpoint.
# - Change `stop_at` to interrupt before the first checkpoint: what does resume say?
# - Set `compile=True` on a GPU and compare tokens/s and MFU.
#
# ## Recap
# - The plan from notebook 03 sets model, micro-batch, accumulation and run length for the device.
# - Warmup then cosine decay; the live plot shows train and val loss against the schedule.
# - Checkpoints are written atomically and hold everything needed to continue; a resumed run repeats the
#   lost iterations with the same losses.
# - Validation loss below ln(vocabulary) is what the model has learned.
#
# **Next:** [05 · Sampling](05_sampling.ipynb): generate text from this checkpoint.
