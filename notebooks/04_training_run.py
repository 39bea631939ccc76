# %% [markdown]
# # 04 · Training run: train a GPT, watch it learn, stop it and resume it
#
# **What you will learn**
# - how to pick the model, batch and length of a run from notebook 03's plan for your GPU;
# - how much of the training data a run of random windows reads, and how often;
# - what the learning-rate schedule looks like, and how to read a live loss curve;
# - how checkpoints make a run survive an interrupt, and why a resumed run continues exactly;
# - what tokens per second, MFU and the validation loss say about the run.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/04_training_run.ipynb)

# %%
# Install finegpt when this kernel lacks it. Written by tools/repo_url.py from pyproject.toml.
import importlib.util
import subprocess
import sys

REPO = "https://github.com/finegpt/finegpt"
if importlib.util.find_spec("finegpt") is None:
    if "google.colab" not in sys.modules:
        raise ModuleNotFoundError(f"finegpt is not installed in this kernel. In a clone of {REPO} run "
                                  "`pip install -e .`, then restart the kernel")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"finegpt @ git+{REPO}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"pip could not install finegpt from {REPO}:\n{pip.stderr[-1500:]}\nCheck that "
                           "the URL opens in a browser; a fork sets its own with `python tools/repo_url.py --set URL`")
    importlib.invalidate_caches()
import finegpt

print(f"finegpt {finegpt.__version__}")

# %% [markdown]
# **Which mode?** `"smoke"`: tiny and offline, what the tests run (seconds). `"cpu"`: a laptop without a GPU: the
# byte-level model of `finegpt quickstart`, trained on the plays for real, in a few minutes. `"full"`: the plan of
# notebook 03 for your GPU, on the FineWeb shards of notebook 01. With `None` the notebook takes `"full"` on a CUDA
# GPU and `"cpu"` without one.

# %% tags=["parameters"]
MODE = None  # "smoke", "cpu" or "full"; None: "full" on a CUDA GPU, else "cpu"

# %% [markdown]
# Everything below comes from `finegpt` and the libraries it builds on. `finegpt.lab` is the part that carries the
# lab from notebook to notebook: the mode, the lab folder, this notebook's sizes and its clock.

# %%
import math
import time
from dataclasses import replace

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from finegpt import lab, plots
from finegpt import memory as M
from finegpt.data import BatchLoader, get_tokenizer, load_meta, prepare  # noqa: F401 (prepare: the fix, if 01 is missing)
from finegpt.sample import generate_text
from finegpt.train import get_lr, load_checkpoint, train

# %% [markdown]
# The parameters cell only records what you asked for; here it becomes a decision, with this mode's sizes, the lab
# folder, and the time this notebook should take on this machine and, for planning, on a Colab T4.

# %%
MODE = lab.pick_mode(MODE)
settings = lab.settings(MODE, gpu=M.detected_gpu_key(default="T4"))
paths = lab.paths(MODE)
clock = lab.start("04", settings, paths)

# %% [markdown]
# What does this notebook train on? The shards notebook 01 wrote into the lab folder: FineWeb's GPT-2 tokens in
# full mode, the plays' bytes in cpu and smoke mode. If they are not there the next cell stops and says how to
# get them; it never trains on something else instead.

# %%
found = lab.check(clock)
data_dir = paths.train_data

# %% [markdown]
# ## 1. Which model, batch and run length does this machine get?
#
# In full mode: notebook 03's `session_plan` for the detected card: among a ladder of model sizes, the one whose
# token budget for a fixed number of minutes comes closest to the compute-optimal 20 tokens per (non-embedding)
# parameter, at a micro-batch that fits with headroom. On a Colab T4 it uses fp16 with a gradient scaler (the
# T4 has no bf16).
#
# In cpu mode: the settings of `finegpt quickstart`, a 4-layer, 128-wide model reading one byte per token, which
# learns to write like the plays in a few thousand steps on a laptop. Smoke mode is the same code on a toy scale.

# %%
model_cfg, train_cfg = lab.run_configs(settings, paths)
meta = load_meta(data_dir)
tokens_per_iter = train_cfg.batch_size * train_cfg.gradient_accumulation_steps * model_cfg.block_size
print(model_cfg)
print(f"{train_cfg.max_iters:,} iterations x {tokens_per_iter:,} tokens = {train_cfg.max_iters * tokens_per_iter:,} "
      f"tokens drawn from {meta['tokens']['train']:,} prepared train tokens ({meta['tokenizer']} tokenizer)")

# %% [markdown]
# The vocabulary comes from the data: the tokenizer's size in `meta.json`, rounded up to a multiple of 64 as
# notebook 02 explained.
#
# How much memory will it take, and how long? The same estimate as in notebook 03:

# %%
run = M.RunConfig(batch_size=train_cfg.batch_size, gradient_accumulation_steps=train_cfg.gradient_accumulation_steps,
                  dtype=train_cfg.dtype, device=settings.device, gpu=settings.gpu)
report = M.estimate(model_cfg, run)
minutes = M.train_time_s(model_cfg, train_cfg.max_iters * tokens_per_iter, settings.gpu, run.dtype) / 60 if settings.gpu else None
print(f"predicted peak: {report.peak_bytes / 2**20:,.1f} MiB ({report.peak_phase})"
      + (f", {'fits' if report.fits else 'does NOT fit'} the {M.GPUS[settings.gpu].name}; about {minutes:.0f} "
         f"minutes of training at {M.default_mfu(settings.gpu):.0%} MFU" if settings.gpu else ""))

# %% [markdown]
# On a GPU the line also gives the verdict against the card and the planned minutes. On a CPU there is no card to
# fit, but the number shows how little memory a small model needs.

# %% [markdown]
# ## 2. How much of the data will the run read, and how often?
#
# `finegpt`'s loader draws each batch as random windows of `block_size + 1` tokens (nanoGPT's way): the window
# starts come from a random generator seeded with the step number, so a resumed run draws the same ones. Random
# windows overlap and leave gaps, whatever the budget. Because the starts are a pure function of the step, we can
# list every window this run will draw before it starts, and count how often each training token is read:

# %%
# COVERAGE TABLE: how often the run reads each training token (drawn from the loader this run uses)
loader = BatchLoader(data_dir, "train", train_cfg.batch_size, model_cfg.block_size, seed=train_cfg.seed)
micro_steps = train_cfg.max_iters * train_cfg.gradient_accumulation_steps
starts = np.concatenate([loader.starts(k) for k in range(micro_steps)])
coverage = lab.window_coverage(loader.num_tokens, starts, model_cfg.block_size + 1)
reads = len(starts) * (model_cfg.block_size + 1) / loader.num_tokens
print(f"{len(starts):,} windows of {model_cfg.block_size + 1} tokens over {loader.num_tokens:,} train tokens: "
      f"{reads:.2f} reads per token on average")
pd.Series(coverage, name="share of train tokens").map("{:.1%}".format).to_frame().T

# %% [markdown]
# In words, with this run's numbers:

# %%
display(Markdown(
    f"On average each train token is read {reads:.2f} times, yet {coverage['never']:.0%} of them are never read and "
    f"{coverage['twice'] + coverage['3+ times']:.0%} are read twice or more: random windows overlap and leave gaps. "
    "What the model reads more than once it can partly memorise, so the training loss, measured on text it has "
    "trained on, can run below what it scores on text it has never seen. The validation loss, on held-out text, "
    "is the honest measure."))

# %% [markdown]
# ## 3. How does the learning rate change during the run?
#
# nanoGPT's schedule: a linear warmup (large early updates would wreck the random initial weights), then
# a cosine decay down to `min_lr`. Here it is written out by hand, checked against `finegpt.train.get_lr`.

# %%
def lr_by_hand(it, c=train_cfg):
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    progress = min(1.0, (it - c.warmup_iters) / (c.lr_decay_iters - c.warmup_iters))
    return c.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (c.learning_rate - c.min_lr)


schedule = [get_lr(it, train_cfg) for it in range(train_cfg.max_iters + 1)]
assert all(math.isclose(lr_by_hand(it), schedule[it]) for it in range(train_cfg.max_iters + 1))

# %% [markdown]
# The check passed at every iteration of the run. Now the curve: look for the short ramp at the start and
# the long cosine after it.

# %%
lr_plot = plots.LossPlot("Learning-rate schedule")
for it in range(0, train_cfg.max_iters + 1, max(1, train_cfg.max_iters // 200)):
    lr_plot.add(it, lr=schedule[it])
lr_plot.figure()

# %% [markdown]
# The rate never reaches zero: it stops at `min_lr`, a tenth of the peak in every mode, so the last iterations
# still learn a little.

# %% [markdown]
# ## 4. Does the loss go down? Train with a live plot
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
# the run passes `stop_at`. `overwrite=True` starts from scratch even if an earlier run left a checkpoint.

# %%
plot = plots.LossPlot(f"Training: {meta['tokenizer']} tokens of {found[next(iter(found))].info['source']}").show()
t0 = time.time()
try:
    train(model_cfg, train_cfg, callback=interrupt_midway, overwrite=True)
except KeyboardInterrupt:
    interrupted_at = history[-1]["iter"]
    plot.mark(interrupted_at, f"interrupted at {interrupted_at}")
    print(f"interrupted at iter {interrupted_at} after {time.time() - t0:.0f} s")

# %% [markdown]
# Read the log: a checkpoint was saved at the first evaluation, and training went on a little before the
# interrupt. Those last iterations are lost, unless the checkpoint holds everything needed to redo them.

# %% [markdown]
# ## 5. What did the checkpoint save?
#
# Every evaluation writes a checkpoint: to a temporary file first, then renamed, so a crash mid-write
# never leaves a broken `ckpt.pt`. It holds plain data only (weights, optimizer moments, RNG states,
# the iteration, the config), and loads with `torch.load(weights_only=True)`.

# %%
out_dir = paths.run
ckpt = load_checkpoint(out_dir, map_location="cpu")
print("files:", sorted(p.name for p in out_dir.iterdir()))
print("keys:", sorted(ckpt))
print(f"saved at iter {ckpt['iter_num']}, best val loss {ckpt['best_val_loss']:.4f}")
assert ckpt["iter_num"] == train_cfg.eval_interval

# %% [markdown]
# Beyond the weights, `optimizer` holds AdamW's two moments per parameter (twice the weights' size) and
# `rng` the random generators' state. Without them a resumed run would take different steps.

# %% [markdown]
# ## 6. Does a resumed run continue exactly where it stopped?
#
# `init_from="resume"` loads the checkpoint: weights, optimizer state, the RNG states and the iteration
# number. Batches are a pure function of the step number, so the resumed run sees the same batches as
# an uninterrupted one. The iterations between the checkpoint and the interrupt run again, and must give
# the same losses as the first time. The plot marks both moments.

# %%
first_try = {r["iter"]: r["loss"] for r in history if "loss" in r}
resumed_rows = []


def keep_plotting(row):
    resumed_rows.append(row)
    plot.log(row)


plot.mark(ckpt["iter_num"], f"resumed from {ckpt['iter_num']}")
t0 = time.time()
result = train(model_cfg, replace(train_cfg, init_from="resume"), callback=keep_plotting)
plot.final()
train_s = time.time() - t0

# %% [markdown]
# The finished plot, as it stands after the run:

# %%
plot.figure()

# %% [markdown]
# The dotted lines are the interrupt and the resume. Between them the run went back to its checkpoint: the
# iterations after it ran twice. Compare them, once before the interrupt and again after resuming:

# %%
again = {r["iter"]: r["loss"] for r in resumed_rows if "loss" in r and r["iter"] in first_try}
print("iterations run twice:", {it: (round(first_try[it], 4), round(loss, 4)) for it, loss in again.items()})
tolerance = 1e-2 if MODE == "full" else 1e-4  # GPU kernels may sum in a different order from run to run
assert again and all(math.isclose(first_try[it], loss, rel_tol=tolerance) for it, loss in again.items())

# %% [markdown]
# Equal losses show that the checkpoint was enough: nothing else survived the interrupt. On a GPU the
# tolerance is looser only because its kernels may add numbers in a different order.

# %% [markdown]
# ## 7. How fast was it, and how well did it use the hardware?
#
# Tokens per second is the raw speed. MFU (model FLOPs utilisation) divides the FLOPs the model needs
# per second (6 per parameter per token, plus attention) by the GPU's datasheet peak: it says how much of
# the hardware you bought you are using. On a CPU there is no datasheet peak, so no MFU.

# %%
train_rows = [r for r in resumed_rows if "tokens_per_s" in r]
tokens_per_s = sorted(r["tokens_per_s"] for r in train_rows)[len(train_rows) // 2]
mfus = sorted(r["mfu"] for r in train_rows if r.get("mfu") is not None)
print(f"median speed: {tokens_per_s:,.0f} tokens/s" + (f", MFU {100 * mfus[len(mfus) // 2]:.1f}%" if mfus else ""))
if minutes:
    print(f"planned: {minutes:.0f} min of training at {M.default_mfu(settings.gpu):.0%} MFU; "
          f"this run trained for {train_s / 60:.1f} min after the resume")

# %% [markdown]
# Tokens per second is the number to compare between settings on the same machine. MFU is the one to
# compare across machines, because it divides by each card's own peak.

# %% [markdown]
# ## 8. What is the validation loss, and is it good?
#
# The loss is the average cross-entropy of the next token on held-out text, in nats. A model that knows
# nothing spreads its bets evenly over the vocabulary and scores ln(vocabulary size); every nat below that
# is something learned. exp(loss) is the perplexity: how many tokens the model is still choosing between.

# %%
val_loss = result["final_val_loss"]
uniform = math.log(meta["vocab_size"])
unit = {"bytes": "byte", "gpt2": "GPT-2 token"}.get(meta["tokenizer"], "token")
print(f"final val loss {val_loss:.3f} nats per {unit} after {result['iter_num']:,} iterations "
      f"(perplexity {math.exp(val_loss):.1f}); a uniform guess over {meta['vocab_size']:,} tokens scores {uniform:.3f}")
assert val_loss < uniform

# %% [markdown]
# Compare losses only between runs with the same tokenizer: a byte model and a GPT-2-token model predict
# different units, so their losses sit on different scales. The cpu run uses exactly the settings of
# `finegpt quickstart`, so its loss can be compared with the quickstart's.

# %% [markdown]
# ## 9. Is it as good as GPT-2?
#
# The popular guide says people's small FineWeb models "often beat original GPT-2". The only fair check
# scores both models on the same held-out tokens: `finegpt.eval.compare` loads OpenAI's GPT-2 (124M) into
# finegpt's own `GPT` class and measures both on this run's validation shard, token for token. It needs GPT-2's
# weights (a 500 MB download) and a run on GPT-2 tokens, so it runs in full mode only. From a terminal:
# `finegpt eval --ckpt <lab folder>/full/run-04 --baseline gpt2`.

# %%
if meta["tokenizer"] != "gpt2":
    print(f"skipped: this run predicts {meta['tokenizer']}, GPT-2 predicts GPT-2 tokens; their losses are not comparable")
else:
    from finegpt.eval.compare import compare, format_table

    try:
        print(format_table(compare(ckpt=str(paths.run), baseline="gpt2", tokens=2**20)))
    except Exception as e:  # no network: the weights cannot be downloaded
        print(f"skipped: GPT-2's weights could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})")

# %% [markdown]
# Scoring both models on the same tokens is the whole point: a loss measured on other text says nothing
# about which model is better.

# %% [markdown]
# What does the model write now? (Notebook 05 is all about sampling.)

# %%
tok = get_tokenizer(meta["tokenizer"])
prompt = "ROMEO:\n" if meta["tokenizer"] == "bytes" else "The meaning of life is"
print(generate_text(result["model"], tok, prompt, max_new_tokens=300 if meta["tokenizer"] == "bytes" else 100,
                    temperature=0.8, seed=1337)[0])

# %% [markdown]
# Look at what a short run learns first: the shape of the text (names in capitals followed by a colon,
# line breaks, punctuation) comes before real words do.

# %% [markdown]
# ## Try it
# - Raise `max_iters` (`train_cfg = replace(train_cfg, max_iters=...)`) and watch the loss curve.
# - Set `learning_rate` ten times higher: does the loss spike or diverge? `finegpt` stops and names the last
#   good checkpoint.
# - Change `stop_at` to interrupt before the first checkpoint: what does resume say?
# - Set `compile=True` on a GPU and compare tokens/s and MFU.
#
# ## Recap
# - The plan from notebook 03 sets model, micro-batch, accumulation and run length for the device.
# - Random windows read some tokens several times and others never; the coverage table measures it before
#   the run starts.
# - Warmup then cosine decay; the live plot shows train and val loss against the schedule.
# - Checkpoints are written atomically and hold everything needed to continue; a resumed run repeats the
#   lost iterations with the same losses.
# - Validation loss below ln(vocabulary) is what the model has learned.

# %% [markdown]
# How long did it take? The last cell prints this notebook's time beside the estimate printed at the top, and
# writes both into the lab folder's `timings.json`.

# %%
clock.done()

# %% [markdown]
# **Next:** [05 · Sampling](05_sampling.ipynb): generate text from this checkpoint.
