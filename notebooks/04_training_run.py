# %% [markdown]
# # 04 · Training run: train a GPT, watch it learn, stop it and resume it
#
# **What you will learn**
# - how to pick the model, batch and length of a run from notebook 03's plan for your GPU;
# - how a run reads its training data: every window once per epoch, against nanoGPT's random windows;
# - what the learning-rate schedule looks like, and how to read a live loss curve;
# - how checkpoints make a run survive an interrupt, and why a resumed run continues exactly;
# - what tokens per second, MFU and the validation loss say about the run.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/04_training_run.ipynb)

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
from dataclasses import replace  # noqa: F401 (the "Try it" list below uses it)

import pandas as pd
from IPython.display import Markdown, display

from finegpt import lab, plots
from finegpt import memory as M
from finegpt.data import coverage_table, get_tokenizer, load_meta, prepare, read_budget  # noqa: F401 (prepare: the fix, if 01 is missing)
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
# parameter, at a micro-batch that fits with headroom. On the GPU it runs on, each candidate model's real step is
# timed for a couple of seconds (`finegpt speed`'s probe) and the plan uses those speeds; the settings' notes say
# which. On a Colab T4 it uses fp16 with a gradient scaler (the T4 has no bf16). The run is time-boxed
# (`max_minutes`): after a short warm-up the trainer times its own steps, evals and checkpoints, and sets
# `max_iters` so the run ends on time, with the learning rate reaching `min_lr` at the last step. The
# `max_iters` printed below is the plan's guess; the training log prints the one the trainer chose.
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
run = M.run_config(train_cfg, gpu=settings.gpu, device=settings.device)  # the run as the memory model sees it
report = M.estimate(model_cfg, run)
minutes = None
if settings.gpu:  # a range: finegpt's speed model for this model and batch, high to low (notebook 03, section 5.1)
    mfu_low, mfu_high = M.run_mfu_range(model_cfg, settings.gpu, train_cfg.batch_size,
                                        train_cfg.gradient_accumulation_steps, train_cfg.compile, run.label)
    minutes = [M.train_time_s(model_cfg, train_cfg.max_iters * tokens_per_iter, settings.gpu, run.dtype, mfu=m) / 60
               for m in (mfu_high, mfu_low)]
print(f"predicted peak: {report.peak_bytes / 2**20:,.1f} MiB ({report.peak_phase})"
      + (f"; on the {M.GPUS[settings.gpu].name}: {report.verdict.label} ({report.verdict.deciding}); "
         f"{minutes[0]:.1f}-{minutes[1]:.1f} minutes of training at {mfu_high:.0%}-{mfu_low:.0%} MFU"
         if settings.gpu else ""))

# %% [markdown]
# On a GPU the line also gives the verdict against the card and the planned minutes. On a CPU there is no card to
# fit, but the number shows how little memory a small model needs.

# %% [markdown]
# ## 2. How much of the data will the run read, and how often?
#
# A run reads `max_iters × batch_size × gradient_accumulation_steps × block_size` input tokens; the loader's
# `sampling` decides which. build-nanogpt reads FineWeb's shards front to back, in order, so each token is read
# once per pass. finegpt's default, `"epoch"`, keeps that promise but not the order: it cuts the train split into
# windows of `block_size + 1` tokens that do not overlap (a window's last token, only a target, is the next one's
# first) and visits them in a shuffled order, so every window is read once before any is read twice. nanoGPT's
# `"random"` starts each window at a random position: windows overlap and leave gaps. Either way a batch is a
# pure function of the step number, so a resumed run reads the same batches, and a whole run's reads can be
# worked out before it starts. First from the numbers alone, with `read_budget`:

# %%
tokens_read = train_cfg.max_iters * tokens_per_iter
budgets = {s: read_budget(tokens_read, meta["tokens"], model_cfg.block_size, sampling=s) for s in ("epoch", "random")}
print(f"this run samples with sampling={train_cfg.sampling!r}")
for budget in budgets.values():
    print(budget.summary())

# %% [markdown]
# The line for this run's sampler is the one `train` prints under `data:` when the run starts (section 4). For
# random windows the distinct tokens are an expectation: all the windows together miss a given token with
# probability about e^(−epochs).

# %% [markdown]
# Then measured: `coverage_table` lists every window each sampler would read from these shards and counts how
# often each train token is read. Two budgets: reads equal to the whole train split (one epoch, where the two
# samplers differ most), and this run's reads. Beside each measured share is `read_budget`'s prediction.

# %%
# COVERAGE TABLE: how often each sampler reads each train token, measured on the shards this run trains on
T = model_cfg.block_size
rows = coverage_table(data_dir, T, seed=train_cfg.seed) + coverage_table(data_dir, T, tokens_read, seed=train_cfg.seed)
for row in rows:
    predicted = read_budget(row["tokens_read"], meta["tokens"], T, sampling=row["sampling"])
    row.update(epochs=predicted.epochs, unseen_predicted=predicted.unseen_share,
               repeated_predicted=predicted.repeated_share)
one_epoch = {row["sampling"]: row for row in rows[:2]}
assert one_epoch["epoch"]["repeated_share"] == 0 and one_epoch["epoch"]["unseen_share"] < T / meta["tokens"]["train"]
columns = {"tokens_read": ("tokens read", "{:,}"), "epochs": ("epochs", "{:.2f}"),
           "unseen_share": ("never read", "{:.1%}"), "unseen_predicted": ("predicted", "{:.1%}"),
           "repeated_share": ("read 2+ times", "{:.1%}"), "repeated_predicted": ("predicted ", "{:.1%}")}
coverage = pd.DataFrame(rows).set_index("sampling")
pd.DataFrame({name: coverage[key].map(form.format) for key, (name, form) in columns.items()})

# %% [markdown]
# In words, with the numbers of this table:

# %%
rand, ours = one_epoch["random"], budgets[train_cfg.sampling]
display(Markdown(
    f"Reading as many tokens as the split holds, random windows leave **{rand['unseen_share']:.1%}** of it unseen "
    f"(the prediction is 1/e = {math.exp(-1):.1%}) and read **{rand['repeated_share']:.1%}** twice or more "
    f"(1 − 2/e = {1 - 2 / math.e:.1%}); the epoch sampler reads every token once: "
    f"{one_epoch['epoch']['unseen_share']:.1%} unseen (the few tokens after the last whole window), "
    f"{one_epoch['epoch']['repeated_share']:.0%} twice. This run reads {ours.epochs:.2f} epochs with "
    f"`sampling={train_cfg.sampling!r}`: {ours.distinct_tokens:,} distinct tokens ({ours.seen_share:.0%} of the "
    f"split), {ours.repeated_share:.0%} of it read twice or more. "
    + ("Every training batch is text the model has not read before, so its training loss is measured on new text, "
       "like the validation loss. " if ours.repeated_share == 0 else
       "Text read again can be partly memorised, so the training loss can run below the validation loss. ")
    + "Only the validation loss, on held-out text, says how the model does on text it will never train on."))

# %% [markdown]
# ## 3. How does the learning rate change during the run?
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
lab.show("min_lr_share_of_peak", train_cfg.min_lr / train_cfg.learning_rate, "{:.2g}")

# %% [markdown]
# The rate starts small, peaks exactly when warmup ends, and falls from there. Now the curve: look for the
# short ramp at the start and the long cosine after it.

# %%
lr_plot = plots.LossPlot("Learning-rate schedule")
for it in range(0, train_cfg.max_iters + 1, max(1, train_cfg.max_iters // 200)):
    lr_plot.add(it, lr=schedule[it])
lr_plot.figure()

# %% [markdown]
# The rate never reaches zero: it stops at `min_lr`, 0.1<!-- value: min_lr_share_of_peak --> of the peak (the
# lab sets it so in every mode), so the last iterations still learn a little.

# %% [markdown]
# ### Exercise 4.1 · The learning-rate schedule
#
# Write `lr_at(it, cfg)`: the learning rate of iteration `it` for a `TrainConfig` `cfg`, as `get_lr` gives
# it. It reads `cfg.learning_rate`, `cfg.min_lr`, `cfg.warmup_iters`, `cfg.lr_decay_iters` and
# `cfg.decay_lr` (False: the rate is constant).

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for three pieces. Warmup, it < warmup_iters: learning_rate · (it + 1) / (warmup_iters + 1), so
# iteration 0 already moves. Decay, up to lr_decay_iters: min_lr + ½(1 + cos(π·r))·(learning_rate − min_lr)
# with r = (it − warmup_iters) / (lr_decay_iters − warmup_iters). After that: min_lr.
#
# </details>

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

lab.hand_in("lr", lr_at, check_lr_schedule, paths)

# %% [markdown]
# ### Exercise 4.2 · One optimizer step, with gradient accumulation and clipping
#
# The rate feeds an optimizer step, and `train` runs one per iteration. Write
# `optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip)`: run
# `gradient_accumulation_steps` micro-batches (`x, y = get_batch(k)`, each (B, T); `_, loss = model(x, y)`)
# forward and backward, clip the gradients' norm to `grad_clip`, step once, zero the gradients, and
# return the step's loss, the mean over the micro-batches.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for gradients that equal one big batch's: divide each micro-batch's loss by the number of
# micro-batches before `backward()`, so the gradients that add up in `.grad` are a mean. Clip once, with
# `torch.nn.utils.clip_grad_norm_`, after the last backward; `optimizer.zero_grad(set_to_none=True)` after
# the step.
#
# </details>

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

lab.hand_in("step", optimizer_step, check_optimizer_step, paths)

# %% [markdown]
# ### Whose code trains?
#
# Every exercise that passed its check was handed in: notebook 02's attention, MLP and Block build the model, and
# this notebook's schedule and optimizer step drive the loop, through `train(..., hooks=mine.hooks)`. What has
# not passed stays finegpt's own. In full mode the model and the step are always finegpt's: they need the fused
# attention kernel and the mixed-precision step that a GPU run depends on.

# %%
mine = lab.handed_in(paths, MODE, config=model_cfg, only=["attention", "mlp", "block", "lr", "step"])
print(mine)

# %% [markdown]
# Both `train` calls below, the interrupted run and its resume, pass `hooks=mine.hooks`: a resumed run goes on
# with the same code it started with, or its losses could not match.

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
# the run passes `stop_at`. Run again, this notebook never deletes its earlier run first: `lab.fresh_run` trains
# with `overwrite=True`, which builds the new run beside the earlier one and replaces it only once the new one has
# finished. A kernel that dies halfway leaves your earlier model exactly as it was.

# %%
plot = plots.LossPlot(f"Training: {meta['tokenizer']} tokens of {found[next(iter(found))].info['source']}").show()
t0 = time.time()
try:
    lab.fresh_run(model_cfg, train_cfg, callback=interrupt_midway, hooks=mine.hooks)  # an earlier run stays until this one finishes
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
out_dir = lab.run_in_progress(paths.run)  # paths.run, or beside an earlier run there until this one finishes
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


plot.show()  # a new output for the resumed run: the plot above stays as it was when the run was interrupted
plot.mark(ckpt["iter_num"], f"resumed from {ckpt['iter_num']}")
t0 = time.time()
result = lab.resume_run(model_cfg, train_cfg, callback=keep_plotting, hooks=mine.hooks)  # finished: now the run in paths.run
plot.final()
train_s = time.time() - t0

# %% [markdown]
# The plot under the interrupted cell stops where the interrupt came; the one above is the whole run. The dotted
# lines are the interrupt and the resume. Between them the run went back to its checkpoint: the
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
    print(f"planned: {minutes[0]:.1f}-{minutes[1]:.1f} min of training at {mfu_high:.0%}-{mfu_low:.0%} MFU; "
          f"this run trained for {train_s / 60:.1f} min after the resume")
if mfus and settings.gpu:  # replan the session at the MFU this run measured, instead of the assumed range
    measured_mfu = mfus[len(mfus) // 2]
    replanned = M.session_plan(settings.gpu, mfu=measured_mfu)
    print(f"at the measured {measured_mfu:.1%} MFU, session_plan would pick {replanned.params / 1e6:.1f}M parameters "
          f"and {replanned.tokens / 1e6:.0f}M tokens for the same {replanned.minutes:.0f} minutes")

# %% [markdown]
# Tokens per second is the number to compare between settings on the same machine. MFU is the one to
# compare across machines, because it divides by each card's own peak. The lab's plan (notebooks 01 and 03)
# came from speeds probed on your card (or, without one, finegpt's speed model); the time box kept the minutes
# whatever the speed turned out to be. The last line, printed on a GPU, replans from the MFU your log measured:
# `M.session_plan(GPU, mfu=...)` with the `mfu` the log rows print. At twice the MFU the same minutes buy twice
# the tokens.

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
    lab.claim("People get very good 160M–350M models on FineWeb with these settings, often beating original GPT-2",
              "nothing: this mode's model predicts bytes of the plays", "not checked here; full mode checks it")
else:
    from finegpt.eval.compare import compare, format_table

    try:
        scored = compare(ckpt=str(paths.run), baseline="gpt2", tokens=2**20)  # [this run, GPT-2], same tokens
        print(format_table(scored))
        ours_loss, gpt2_loss = scored[0]["loss"], scored[1]["loss"]
        lab.claim("People get very good 160M–350M models on FineWeb with these settings, often beating original GPT-2",
                  f"this run's val loss {ours_loss:.3f}, GPT-2's {gpt2_loss:.3f}, on the same {scored[0]['tokens']:,} tokens",
                  "holds for this run" if ours_loss < gpt2_loss else "does not hold for this run: GPT-2 scores lower")
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
sample = generate_text(result["model"], tok, prompt, max_new_tokens=300 if meta["tokenizer"] == "bytes" else 100,
                       temperature=0.8, seed=1337)[0]
print(sample)

# %% [markdown]
# What did the run learn? Two things can be counted in the sample: the share of its words that occur in the
# training text (a made-up word does not), and the lines that are a speaker's name in capitals with a colon, the
# plays' layout.

# %%
import re

words = lab.corpus_words(lab.shard_text(data_dir))
written = sample[len(prompt):]  # the model's text, not the prompt's
real = lab.real_word_share(written, words)
names = re.findall(r"^[A-Z][A-Z ]*[A-Z]:$", written, re.M)
print(f"real words: {real:.0%} of the sample's words occur in the training text")
print(f"speaker names on their own line: {len(names)}" + (f" ({', '.join(sorted(set(names)))})" if names else ""))
display(Markdown(
    f"After {result['iter_num']:,} iterations, **{real:.0%}** of the words this model writes are real words of its "
    f"training text, and it wrote **{len(names)}** speaker name{'s' if len(names) != 1 else ''} in capitals on a "
    "line of their own. Notebook 05 puts the same two counts beside an untrained model's and an early checkpoint's, "
    "to show which comes first."))

# %% [markdown]
# ### Task 4.3 · One setting, a lower loss
#
# An open task with a number to beat. The run above evaluated its val loss after its first stretch of
# iterations. Train that stretch again from scratch with **one** setting of `task_cfg` changed (any field of
# the `TrainConfig`: the learning rate, the warmup, the batch size, ...), and end below the target. The cell
# prints the stretch and the target; the check counts the settings you changed and reads your run's val loss.

# %%
task_iters = train_cfg.eval_interval
baseline = next(r["val/loss"] for r in history if r["iter"] == task_iters and "val/loss" in r)
task_cfg = replace(train_cfg, max_iters=task_iters, eval_interval=task_iters, out_dir=str(paths.root / "task-04"))
target = baseline - 0.02
print(f"the run above: val loss {baseline:.4f} at iteration {task_iters}; the target: below {target:.4f}")

# %% [markdown]
# <details><summary>Hint: which settings move the loss at a fixed iteration</summary>
#
# At a fixed number of iterations, anything that makes each step learn more moves the loss: more tokens per
# step (`batch_size`, `gradient_accumulation_steps`) or a larger step (`learning_rate`, a shorter
# `warmup_iters`). Too large a learning rate makes it worse, not better.
#
# </details>

# %%
from finegpt.exercises.course import check_one_setting_task

my_train_cfg = None  # e.g. replace(task_cfg, warmup_iters=...): one setting changed
my_result = None if my_train_cfg is None else train(model_cfg, my_train_cfg, overwrite=True, hooks=mine.hooks)
check_one_setting_task(my_train_cfg, task_cfg, my_result, target)

# %% [markdown]
# A setting that wins over a short stretch need not win over a whole run: a high learning rate gains early and
# can lose later. The Try-it list below asks for the long run.

# %% [markdown]
# ## Try it
# - Raise `max_iters` (`train_cfg = replace(train_cfg, max_iters=...)`) and watch the loss curve.
# - Set `learning_rate` ten times higher: does the loss spike or diverge? `finegpt` stops and names the last
#   good checkpoint.
# - Change `stop_at` to interrupt before the first checkpoint: what does resume say?
# - Set `compile=True` on a GPU and compare tokens/s and MFU.
# - Train with nanoGPT's sampler (`train_cfg = replace(train_cfg, sampling="random")`) and compare the val loss
#   at the same number of tokens read.
#
# ## Recap
# - The plan from notebook 03 sets model, micro-batch, accumulation and run length for the device.
# - The epoch sampler reads every window once per epoch; random windows reading as much leave about 1/e of the
#   data unseen and read about a quarter of it twice or more. The coverage table measures both before the run.
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
