# %% [markdown]
# # 02 · Model anatomy: what is inside a GPT, and how big is it really?
#
# **What you will learn**
# - how a nanoGPT-style GPT is built from one small config;
# - where its parameters live, and why the token embedding is the biggest single piece;
# - why the popular guide's parameter counts are wrong (12 layers × 768 is GPT-2 *small*);
# - what shape every tensor has on its way through one forward pass, and why the vocabulary is padded to 50304;
# - what attention computes, and what the heads of a trained model look at.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/02_model_anatomy.ipynb)

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
# **Which mode?** `"smoke"`: tiny and offline, what the tests run. `"cpu"`: a laptop without a GPU, each lesson
# for real in a few minutes. `"full"`: a CUDA GPU. With `None` the notebook takes `"full"` on a CUDA GPU and
# `"cpu"` without one. Notebook 01 explains the lab folder that carries files between the notebooks.

# %% tags=["parameters"]
MODE = None  # "smoke", "cpu" or "full"; None: "full" on a CUDA GPU, else "cpu"

# %% [markdown]
# Everything below comes from `finegpt` and the libraries it builds on. `finegpt.lab` is the part that carries the
# lab from notebook to notebook: the mode, the lab folder, this notebook's sizes and its clock.

# %%
import math
import time

import pandas as pd
import torch
from IPython.display import Markdown, display

from finegpt import lab, plots
from finegpt import memory as M
from finegpt.config import ModelConfig
from finegpt.data import get_tokenizer
from finegpt.memory.guide import BIAS, GUIDE_24GB, GUIDE_TABLE
from finegpt.model import GPT, count_params, param_breakdown
from finegpt.train import train

# %% [markdown]
# The parameters cell only records what you asked for; here it becomes a decision, with this mode's sizes, the lab
# folder and the time this notebook should take. The fixed seed makes the random weights below, and so every
# number printed from them, the same on every run.

# %%
MODE = lab.pick_mode(MODE)
settings = lab.settings(MODE, gpu=M.detected_gpu_key(default="T4"))
paths = lab.paths(MODE)
clock = lab.start("02", settings, paths)
device = settings.device
torch.manual_seed(1337)

# %% [markdown]
# Sections 1-5 need nothing but `finegpt`. Section 6 trains a small model to look inside its attention, on the
# byte shards of the plays that notebook 01 wrote into the lab folder:

# %%
found = lab.check(clock)

# %% [markdown]
# ## 1. What decides the size of a GPT?
#
# Five numbers, with the names nanoGPT uses in its config files:
# `n_layer` transformer blocks, each with `n_head` attention heads over vectors of width `n_embd`;
# a context of `block_size` tokens; and a vocabulary of `vocab_size` token ids.
# Here is GPT-2 small, the model nanoGPT's `train_gpt2.py` reproduces.

# %%
gpt2_small = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)
gpt2_small

# %% [markdown]
# Notice `vocab_size=50304`, not the tokenizer's 50257: section 6 explains why. `dropout` and `bias` are
# the config's other fields; `bias` adds a few parameters, which the Try-it list asks you to count.

# %% [markdown]
# `finegpt` counts parameters from the config alone, with no tensors at all. We can still build the
# real model without spending memory: on PyTorch's `meta` device a tensor has a shape but no storage.
# The check below builds all the layers and counts their tensors; the two counts must agree.

# %%
# NBVAL_CHECK_OUTPUT
with torch.device("meta"):
    meta_model = GPT(gpt2_small)
assert meta_model.get_num_params(non_embedding=False) == count_params(gpt2_small, non_embedding=False)
n_full, n_nanogpt = count_params(gpt2_small, non_embedding=False), count_params(gpt2_small)
print(f"all parameters:             {n_full:,}")
print(f"nanoGPT's count (no wpe):   {n_nanogpt:,}")

# %% [markdown]
# nanoGPT prints the second number: it leaves out the position embedding (`wpe`) but keeps the token
# embedding, because the token embedding is *tied* to the output layer (`lm_head`) and does real work
# there. Tied means one tensor used twice, so the output layer adds no parameters of its own:

# %%
assert meta_model.lm_head.weight is meta_model.transformer.wte.weight
print("lm_head.weight is wte.weight:", meta_model.lm_head.weight is meta_model.transformer.wte.weight)

# %% [markdown]
# Tying saves a whole V × C matrix: an untied output layer would add as many parameters again as the
# token embedding, and section 2 shows how large a share that is.

# %% [markdown]
# ## 2. Where do the parameters live?
#
# Per block: attention has 4·C² weights (q, k, v and the output projection), the MLP 8·C²
# (C → 4C → C). So the blocks hold about 12·L·C². The embedding holds V·C.

# %%
parts = param_breakdown(gpt2_small)
for name, n in parts.items():
    print(f"{name:20s} {n:>12,}  {n / n_full:6.1%}")
assert sum(parts.values()) == n_full

# %% [markdown]
# Notice that `lm_head` shows 0: its weight is the token embedding's, counted once. The layer norms'
# share rounds to nothing; the blocks' matrices and the embedding are the whole story.

# %% [markdown]
# The same as a picture:

# %%
plots.param_bars(parts, "GPT-2 small (12 layers, 768 wide)")

# %% [markdown]
# Bars compare counts; a picture to scale shows where the parameters sit. Below, every weight matrix of the
# same model is a rectangle of its own area: each block is one row of 12·C², its four matrices side by
# side, and the two embeddings are folded to the same width.

# %%
from finegpt.diagrams import param_picture

param_picture(gpt2_small, "GPT-2 small (12 layers, 768 wide)")

# %% [markdown]
# Count the rows: the token embedding alone is as big as several whole blocks, while the position
# embedding is a thin strip and the norms and biases are too thin to draw (the title gives their count).

# %% [markdown]
# The MLPs hold about twice as much as the attention layers (8·C² vs 4·C² per block). A quick rule of thumb for
# the total, checked against the exact count:

# %%
C, L, V = gpt2_small.n_embd, gpt2_small.n_layer, gpt2_small.vocab_size
by_hand = 12 * L * C**2 + V * C
display(Markdown(
    f"The rule of thumb 12·L·C² + V·C gives **{by_hand / 1e6:.1f}M**, within "
    f"{abs(by_hand - n_full) / n_full:.1%} of the exact {n_full / 1e6:.1f}M (the rest is biases, "
    f"norms and positions). The token embedding alone is **{parts['token_embedding'] / n_full:.0%}** "
    f"of the model: small GPTs spend a large share of their parameters on the vocabulary."))

# %% [markdown]
# The rule is worth remembering: with 12·L·C² + V·C you can size a config in your head before building
# anything, which is exactly what the next section does to the guide's table.

# %% [markdown]
# ### Exercise 2.1 · Count every parameter from the config
#
# Write `param_count(cfg)`: the exact number of parameters of `GPT(cfg)`, *every* one, as
# `count_params(cfg, non_embedding=False)` reports it, from the five numbers of a `ModelConfig` (`n_layer`,
# `n_embd`, `vocab_size`, `block_size`, `bias`). No tensors: arithmetic only.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for V·C + T·C + L·(12·C² + 2 LayerNorms) + ln_f, plus the biases when `cfg.bias` is True: c_attn
# (C → 3C), the attention's c_proj (C → C), c_fc (C → 4C) and the MLP's c_proj (4C → C) each have one,
# and every LayerNorm has C weights (+ C biases). `lm_head` shares `wte`'s tensor.
#
# </details>

# %%
def param_count(cfg):
    raise NotImplementedError  # your code here


# %% [markdown]
# The check tries GPT-2 small with and without biases and a tiny GPT, and from the size of your error
# tells which part is off: the tied head counted twice, the position embedding, the biases, the norms or
# the MLP's width. Worked solutions: [solutions/02_model_anatomy_solutions.ipynb](solutions/02_model_anatomy_solutions.ipynb).

# %%
from finegpt.exercises import check_param_count

check_param_count(param_count)

# %% [markdown]
# ## 3. How many parameters does the guide's model really have?
#
# The guide we check in this course gives a table of configurations with a "model size" for each.
# `finegpt.memory.guide.GUIDE_TABLE` quotes its rows; the counted columns are computed (with `bias=False`,
# nanoGPT's default, as the guide's configs do not set it).

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'row':9s} {'claimed':>10s} {'L/H/C':>11s} {'nanoGPT count':>14s} {'all':>8s} {'embedding share':>16s}")
counted = {}
for row, _, (lo, hi), n_layer, n_head, n_embd, *_ in GUIDE_TABLE:
    cfg = ModelConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=1024, vocab_size=50304, bias=BIAS)
    counted[row] = count_params(cfg)
    share = param_breakdown(cfg)["token_embedding"] / count_params(cfg, non_embedding=False)
    claim = f"~{lo / 1e6:.0f}M" + (f"-{hi / 1e6:.0f}M" if hi != lo else "")
    print(f"{row:9s} {claim:>10s} {f'{n_layer}/{n_head}/{n_embd}':>11s} {counted[row] / 1e6:13.1f}M "
          f"{count_params(cfg, non_embedding=False) / 1e6:7.1f}M {share:16.0%}")
assert all(count_params(ModelConfig(n_layer=L, n_head=H, n_embd=C, bias=BIAS), non_embedding=False) < lo
           for _, _, (lo, _), L, H, C, *_ in GUIDE_TABLE)  # every claimed size is too big

# %% [markdown]
# Every row is off, and always in the same direction: too big. The 80 GB row claims GPT-2 *medium*
# (350M) but 12 layers × 768 is GPT-2 *small*:

# %%
claimed_80 = GUIDE_TABLE[0][2][0]
display(Markdown(
    f"- 12/12/768 has **{counted['80 GB'] / 1e6:.0f}M** parameters, not ~{claimed_80 / 1e6:.0f}M "
    f"({claimed_80 / counted['80 GB']:.1f}× too many claimed). GPT-2 medium is 24 layers × 1024.\n"
    f"- the guide's \"best config for a 24 GB GPU\", 10/10/640, has **{counted['24 GB'] / 1e6:.0f}M**, "
    f"not ~160M: about half.\n"
    f"- the embedding's share grows as models shrink, so scaling `n_layer` and `n_embd` down shrinks the "
    f"model less than 12·L·C² suggests."))
medium = ModelConfig(n_layer=24, n_head=16, n_embd=1024, block_size=1024, vocab_size=50304, bias=BIAS)
assert 340e6 < count_params(medium) < 360e6  # GPT-2 medium really is ~350M
assert 120e6 < counted["80 GB"] < 130e6

# %% [markdown]
# The guide's own words for these models, each beside the count and a verdict:

# %%
guide_24gb = ModelConfig(**GUIDE_24GB)
lab.claim("80 GB (A100/H100): ~350M parameters, 12 layers, 12 heads, 768 wide, \"close to original GPT-2 medium\"",
          f"{counted['80 GB'] / 1e6:.1f}M (nanoGPT's count), "
          f"{count_params(gpt2_small, non_embedding=False) / 1e6:.1f}M with every parameter",
          "does not hold: 12 x 768 is GPT-2 small; GPT-2 medium is 24 layers x 1024 "
          f"({count_params(medium) / 1e6:.0f}M)")
lab.claim("best config for a 24 GB GPU, 10 layers x 640: \"~160M parameters\"",
          f"{count_params(guide_24gb) / 1e6:.1f}M (nanoGPT's count)",
          f"does not hold: {160e6 / count_params(guide_24gb):.1f}x too many claimed")

# %% [markdown]
# Both verdicts rest on the counts above, which the meta-device model confirmed tensor by tensor. Notebook 03
# checks the guide's memory claims the same way.

# %% [markdown]
# Why it matters: weights, gradients and optimizer state all scale with the parameter count, and notebook
# 03 computes them from it. A size that is wrong makes every memory term built on it wrong too.

# %% [markdown]
# ## 4. What shape does each tensor have in one forward pass?
#
# We push a batch of B = 2 sequences of T = 8 tokens through the model and record the output shape of
# every module with forward hooks. The model is GPT-2 small with random weights: the shapes are the same as
# for a trained one.

# %%
tok = get_tokenizer("gpt2")
texts = ["The quick brown fox jumps over the lazy dog.", "To be, or not to be, that is the question:"]
idx = torch.tensor([tok.encode(t)[:8] for t in texts], device=device)  # (B, T)
model = GPT(gpt2_small).to(device).eval()
print("input ids", tuple(idx.shape))

# %% [markdown]
# Each row is one text cut to its first 8 tokens. The model never sees characters, only these ids.

# %% [markdown]
# Forward hooks let us watch a module without changing it: each one records its module's output shape.

# %%
watched = ["transformer.wte", "transformer.wpe", "transformer.h.0.ln_1", "transformer.h.0.attn",
           "transformer.h.0.mlp", "transformer.h.0", f"transformer.h.{gpt2_small.n_layer - 1}",
           "transformer.ln_f", "lm_head"]
shapes = []  # (module, output shape) in the order the forward pass runs them
modules = dict(model.named_modules())
hooks = [modules[name].register_forward_hook(lambda m, i, o, name=name: shapes.append((name, tuple(o.shape))))
         for name in watched]

# %% [markdown]
# Registering does nothing yet. The hooks fire during the forward pass below; removing them afterwards
# lets later cells run the model unwatched.

# %%
with torch.no_grad():
    logits, _ = model(idx)
for h in hooks:
    h.remove()
for name, shape in shapes:
    print(f"{name:24s} {shape}")

# %% [markdown]
# Read it top to bottom: ids (B, T) become vectors (B, T, C) in `wte`; `wpe` adds one vector per
# position (T, C); each block keeps the shape (B, T, C); only `lm_head` changes it, to (B, T, V):
# one score per vocabulary entry for the *next* token at every position.
#
# To see that nothing is hidden, here is the same forward pass written out by hand, block by block.
# It must give the model's logits exactly.

# %%
with torch.no_grad():
    pos = torch.arange(idx.size(1), device=device)  # (T,)
    x = model.transformer.wte(idx) + model.transformer.wpe(pos)  # (B, T, C)
    for block in model.transformer.h:
        x = x + block.attn(block.ln_1(x))  # (B, T, C): tokens exchange information
        x = x + block.mlp(block.ln_2(x))  # (B, T, C): each token thinks on its own
    by_hand_logits = model.lm_head(model.transformer.ln_f(x))  # (B, T, V)
assert torch.allclose(by_hand_logits, logits, atol=1e-5)
print("logits", tuple(by_hand_logits.shape), "match the model's")

# %% [markdown]
# Two lines per block are the whole transformer: attention mixes information across positions, the MLP
# transforms each position on its own, and each *adds* its result to the residual stream `x` instead of
# replacing it.

# %% [markdown]
# The same block as a diagram, drawn from the real module: a `Block` of `gpt2_small` runs on the meta
# device (shapes, no memory) with B = 2 and T = 8, and every arrow carries the shape its hook recorded.

# %%
from finegpt.diagrams import block_diagram

block_diagram(gpt2_small, batch_size=2, tokens=8)

# %% [markdown]
# Only two boxes change the width: `c_attn` makes q, k and v at once (3C), and the MLP's `c_fc` widens to
# 4C before `c_proj` brings it back. Everything that reaches a `+` is (B, T, C) again.

# %% [markdown]
# ### Exercise 2.2 · Build the MLP
#
# Write `MyMLP(config)`: `c_fc`, a Linear from C to 4C, then GELU, then `c_proj`, a Linear from 4C back
# to C, both with `bias=config.bias`. Input (B, T, C), output (B, T, C). Use these names: they are
# nanoGPT's, so GPT-2's weights load into your module.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for y = c_proj(gelu(c_fc(x))): (B, T, C) → (B, T, 4C) → (B, T, 4C) → (B, T, C). Leave dropout out;
# the check uses `dropout=0`.
#
# </details>

# %%
import torch.nn as nn


class MyMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        raise NotImplementedError  # your code here: self.c_fc, self.gelu, self.c_proj

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        raise NotImplementedError  # your code here


# %% [markdown]
# The check loads finegpt's `MLP` weights into yours and compares outputs. It names a wrong layer width or
# name, biases made when `bias=False`, ReLU instead of GELU, no activation at all, and a residual added
# inside the MLP. `lab.hand_in` runs the check and, when it passes, keeps your class in the lab folder:
# notebook 04 then trains a model built with it (in cpu and smoke mode).

# %%
from finegpt.exercises import check_mlp

lab.hand_in("mlp", MyMLP, check_mlp, paths)

# %% [markdown]
# ### Exercise 2.3 · Wire a Block
#
# The parts are given: finegpt's `LayerNorm`, `CausalSelfAttention` and `MLP`, under nanoGPT's names. Write
# `forward`: the two lines of the by-hand forward pass above, for one block, input and output (B, T, C).

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for pre-LN, as GPT-2: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)). Each sublayer reads a
# normalised copy and adds its result to x itself.
#
# </details>

# %%
from finegpt.model import MLP, CausalSelfAttention, LayerNorm


class MyBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        raise NotImplementedError  # your code here


# %% [markdown]
# The check gives the two norms different weights and compares with finegpt's `Block`. It recognises
# post-LN, missing residuals, a residual added to the normalised x, `ln_1` used twice, attention and MLP
# side by side, the MLP first, and the MLP left out. Passed, your Block builds notebook 04's model.

# %%
from finegpt.exercises import check_block

lab.hand_in("block", MyBlock, check_block, paths)

# %% [markdown]
# ## 5. What does attention look at?
#
# Inside a block, every token makes a query q, a key k and a value v. Token i reads from token j with
# weight softmax(q_i · k_j / √d) over j ≤ i: the causal mask hides the future. PyTorch's
# `scaled_dot_product_attention` never builds that T × T matrix (that is what makes it "flash"), so we
# compute the matrix ourselves (first q, k and v below; exercise 2.4 then asks you for the rest), and check
# that multiplying it with the values gives what the fused kernel gives.

# %%
text = "The cat sat on the mat because it was tired and warm."
ids = torch.tensor([tok.encode(text)], device=device)  # (1, T)
attn = model.transformer.h[0].attn
H, hs = attn.n_head, attn.n_embd // attn.n_head
with torch.no_grad():
    h0 = model.transformer.wte(ids) + model.transformer.wpe(torch.arange(ids.size(1), device=device))
    q, k, v = attn.c_attn(model.transformer.h[0].ln_1(h0)).split(attn.n_embd, dim=2)  # 3 x (1, T, C)
    q, k, v = (t.view(1, -1, H, hs).transpose(1, 2) for t in (q, k, v))  # (1, H, T, hs)
print("q, k, v:", tuple(q.shape), "each: (batch, heads, tokens, head size)")

# %% [markdown]
# ### Exercise 2.4 · Causal self-attention from q, k, v
#
# Before reading on, write it yourself. `causal_self_attention(q, k, v)` takes three tensors of shape
# (B, H, T, hs) and returns y, (B, H, T, hs): for every head, each position's output is a weighted mean of
# the values of the positions up to and including itself.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for y = softmax(q·kᵀ / √hs + M)·v, where M[i, j] = -inf for j > i (the future) and 0 elsewhere, and
# the softmax runs over the keys (the last dimension). `masked_fill`, `torch.ones(T, T).triu(1)` and
# `k.size(-1) ** 0.5` (that is √hs) help.
#
# No worked answer follows: the cells after the check compute the weights with `lab.attention_weights`, and
# the solutions notebook has one.
#
# </details>

# %%
def causal_self_attention(q, k, v):  # (B, H, T, hs) each -> (B, H, T, hs)
    raise NotImplementedError  # your code here


# %% [markdown]
# The check compares with `F.scaled_dot_product_attention(q, k, v, is_causal=True)`, what finegpt's model
# calls, and moves one future value at a time to catch a position that sees its future. It also names a
# missing or wrong 1/√hs scale, the mask applied after the softmax, a softmax over the wrong axis, a mask
# that hides the diagonal, and a transposed output.

# %%
from finegpt.exercises import check_causal_attention

check_causal_attention(causal_self_attention)

# %% [markdown]
# ### Exercise 2.5 · Your attention inside nanoGPT's module
#
# A model calls attention through a module: `MyCausalSelfAttention(config)` has `c_attn`, a Linear from C to
# 3C that makes q, k and v at once, and `c_proj`, a Linear from C to C, both with `bias=config.bias`. Its
# `forward(x)` takes (B, T, C), splits q, k, v into `config.n_head` heads, calls **your**
# `causal_self_attention`, merges the heads and applies `c_proj`. Passed, it is the attention of notebook 04's
# model, so 04 trains on your code.

# %% [markdown]
# <details><summary>Hint: the shapes, step by step</summary>
#
# `self.c_attn(x).split(C, dim=2)` gives q, k, v, each (B, T, C). `t.view(B, T, H, C // H).transpose(1, 2)` makes
# (B, H, T, hs). After your function, `y.transpose(1, 2).contiguous().view(B, T, C)` merges the heads back. Keep
# `n_head` from the config; store no other weights (a mask buffer needs `persistent=False`), so the model's
# weights keep nanoGPT's names.
#
# </details>

# %%
class MyCausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        raise NotImplementedError  # your code here: self.c_attn, self.c_proj, self.n_head

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        raise NotImplementedError  # your code here: call causal_self_attention(q, k, v)


# %% [markdown]
# The check loads finegpt's `CausalSelfAttention` weights into yours and compares outputs. It names c_proj
# left out, q, k, v taken in the wrong order, heads not moved in front of time, heads merged without moving
# time back, and one wide head. `hand_in` keeps the class together with your `causal_self_attention`.

# %%
from finegpt.exercises.course import check_attention_module

lab.hand_in("attention", MyCausalSelfAttention, check_attention_module, paths, needs=[causal_self_attention])

# %% [markdown]
# Which model will notebook 04 train? Yours where a part passed its check, finegpt's elsewhere:

# %%
print(lab.handed_in(paths, MODE, config=gpt2_small, only=["attention", "mlp", "block"]))

# %% [markdown]
# These lines are decided again whenever a check cell runs: fix an exercise, rerun its check, and notebook 04
# picks up your class; a check that fails withdraws it, and 04 falls back to finegpt's part.

# %% [markdown]
# Now the attention weights themselves. `lab.attention_weights` computes what exercise 2.4 asks for, the
# causal softmax of the scaled scores, for every block and head; the last line asks PyTorch's fused kernel
# for the same product of weights and values.

# %%
T = ids.size(1)
weights = torch.from_numpy(lab.attention_weights(model, ids)[:1]).to(device)  # (1, H, T, T): block 0's heads
with torch.no_grad():
    scores = q @ k.transpose(-2, -1) / hs**0.5  # (1, H, T, T): the scaled scores, before mask and softmax
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
assert torch.allclose(weights @ v, fused, atol=1e-5)
print(f"T={T} tokens, {H} heads; by-hand attention matches scaled_dot_product_attention")

# %% [markdown]
# The match is within 1e-5, not exact: the fused kernel adds in a different order, and floating-point
# sums depend on the order.

# %% [markdown]
# The weights of head 0 as a heatmap, one row per token:

# %%
labels = [tok.decode([t]) for t in ids[0].tolist()]
plots.attention_heatmap(weights[0, 0].cpu().numpy(), labels, "Block 0, head 0 (untrained weights)")

# %% [markdown]
# How to read it: row i is where token i looks. Its coloured cells are the i + 1 tokens it may see, and
# they sum to 1.

# %% [markdown]
# Above the diagonal everything is zero: the future is masked. With untrained weights the scores
# q · k / √d are small and random, so token i spreads its attention roughly evenly over the i + 1
# tokens it can see (1/(i + 1) each), with some noise. Training turns this into sharp patterns:
# attend to the previous token, to the same word earlier, to the start of the sentence.
# How even is it now? Compare with exactly uniform rows:

# %%
uniform = torch.tril(torch.ones(T, T, device=device)) / torch.arange(1, T + 1, device=device)[:, None]
visible = torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))
gap = (weights[0, 0] - uniform).abs()[visible]
print(f"score spread (std of q·k/√d): {scores[0, 0][visible].std().item():.2f}")
print(f"mean |weight - 1/(i+1)|: {gap.mean().item():.3f}, largest: {gap.max().item():.3f}")
assert torch.allclose(weights.sum(-1), torch.ones(1, H, T, device=device))  # every row is a distribution

# %% [markdown]
# A small score spread means near-uniform weights: the softmax of nearly equal numbers is nearly flat.
# The last line checks that every row really is a probability distribution.

# %% [markdown]
# ## 6. What does a *trained* model's attention look at?
#
# Random weights attend to everything a little. To see what training makes of attention we need trained weights,
# and this notebook trains its own: a small byte-level model (each token is one character) on 01's shards of the
# plays, with the settings of `finegpt quickstart`. It is not notebook 04's model; after 04 you can redraw these
# maps for that one (see *Try it*). Characters make the maps easy to read: every row and column is one letter.

# %%
probe_cfg, probe_train = lab.probe_configs(settings, paths)
t0 = time.time()
result = train(probe_cfg, probe_train, overwrite=True)
probe = result["model"].eval()
print(f"{probe_train.max_iters} steps in {time.time() - t0:.0f} s: val loss {result['final_val_loss']:.2f} nats per "
      f"character (a uniform guess over the 257 byte tokens scores {math.log(257):.2f})")

# %% [markdown]
# Now a line in the plays' own format: a speaker's name in capitals, a colon, a line break, the speech.
# `lab.attention_weights` computes softmax(q · k / √d) for every block and head, exactly as section 5 did by hand
# for one head.

# %%
btok = get_tokenizer("bytes")
line = "ROMEO:\nWhat light through yonder window breaks?\nJULIET:\nAy me!"
ids = torch.tensor([btok.encode(line)], device=device)  # (1, T)
maps = lab.attention_weights(probe, ids)  # (L, H, T, T)
chars = [btok.decode([t]) for t in ids[0].tolist()]
L_probe, H_probe = maps.shape[:2]
print(f"{L_probe} layers x {H_probe} heads, each a {maps.shape[2]} x {maps.shape[3]} map over {len(chars)} characters")

# %% [markdown]
# Which heads do something? Two habits can be measured: reading the previous character (the cell just left of
# the diagonal), and reading the line breaks. For every head, the mean attention a character puts on each, next to
# what a head that spreads its attention evenly over what it can see would put there:

# %%
scores = lab.head_scores(maps, [c == "\n" for c in chars])
heads = pd.MultiIndex.from_product([range(L_probe), range(H_probe)], names=["layer", "head"])
table = pd.DataFrame({"previous character": scores["previous token"].ravel(),
                      "line breaks": scores["marked tokens"].ravel()}, index=heads)
print(f"an even spread scores {scores['chance: previous token']:.2f} on the previous character "
      f"and {scores['chance: marked tokens']:.2f} on the line breaks")
table.round(2).T

# %% [markdown]
# Heads specialise: some score several times the even spread on one habit and little on the other. Here are the
# two most specialised. Line breaks are drawn as ⏎ and spaces as ␣.

# %%
shown = [c.replace("\n", "⏎").replace(" ", "␣") for c in chars]
best_prev = divmod(int(scores["previous token"].argmax()), H_probe)
plots.attention_heatmap(maps[best_prev], shown, f"Trained: layer {best_prev[0]}, head {best_prev[1]} "
                        f"({scores['previous token'][best_prev]:.2f} on the previous character)")

# %% [markdown]
# **What to look for:** a bright line just below the diagonal. Each character reads the one before it, which is
# how the model knows which letters came just before: the raw material of spelling. Compare the flat map of
# section 5, where nothing stood out.

# %%
best_nl = divmod(int(scores["marked tokens"].argmax()), H_probe)
plots.attention_heatmap(maps[best_nl], shown, f"Trained: layer {best_nl[0]}, head {best_nl[1]} "
                        f"({scores['marked tokens'][best_nl]:.2f} on the line breaks)")

# %% [markdown]
# **What to look for:** bright columns under the ⏎ characters: the characters after a line break keep reading it,
# however far back it is. In the plays a line break ends every speaker's name and every verse line, so a head like
# this one keeps track of where the current speech and line began: the layout a trained model reproduces in
# notebook 05.
#
# How far above an even spread are the best heads?

# %%
lift_prev = scores["previous token"].max() / scores["chance: previous token"]
lift_nl = scores["marked tokens"].max() / scores["chance: marked tokens"]
print(f"best heads: {lift_prev:.1f}x an even spread on the previous character, {lift_nl:.1f}x on the line breaks")
if MODE != "smoke":  # a few dozen steps (smoke) are too few to specialise
    assert lift_prev > 2 and lift_nl > 2

# %% [markdown]
# The assert keeps that promise in the tests: in cpu and full mode the best heads must beat an even spread at
# least twice over, on both habits.

# %% [markdown]
# ## 7. Why is the vocabulary 50304 and not 50257?
#
# GPT-2's tokenizer has 50257 tokens. GPUs multiply matrices in tiles, and a dimension that is a
# multiple of 64 fills them exactly; 50257 is odd (it is 29 × 1733), so the last tile of the output
# layer is mostly padding and some kernels fall back to slower paths. nanoGPT rounds up to the next
# multiple of 64. The extra rows are tokens the tokenizer never produces; training pushes their
# logits down and they cost almost nothing.

# %%
gpt2_vocab = tok.vocab_size
padded = -(-gpt2_vocab // 64) * 64
extra = (padded - gpt2_vocab) * gpt2_small.n_embd
assert padded == gpt2_small.vocab_size == 50304 and 29 * 1733 == gpt2_vocab  # 50257 has no factor of 2
print(f"{gpt2_vocab} -> {padded}: {padded - gpt2_vocab} unused rows, {extra:,} extra parameters "
      f"({extra / n_full:.3%} of the model)")

# %% [markdown]
# So padding costs a negligible share of the parameters (printed above). The only question is whether it
# buys speed.

# %% [markdown]
# How much does it matter for speed? Time the output layer's matmul, (B·T, C) × (C, V), for both sizes on this
# device. One timing on a busy machine can differ from the next by a third, so the cell times both sizes
# alternately, several times, and reports the spread of the ratio, not one number. A lesson needs a spread
# that stays on one side of 1.

# %%
def time_matmul(vocab: int, rows: int) -> float:
    a = torch.randn(rows, gpt2_small.n_embd, device=device)
    w = torch.randn(gpt2_small.n_embd, vocab, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    a @ w
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


rows = {"full": 8 * 1024, "cpu": 256, "smoke": 32}[MODE]  # B·T
REPEATS = 9
time_matmul(gpt2_vocab, rows), time_matmul(padded, rows)  # warm up: first calls pay for allocation
ratios = sorted(time_matmul(padded, rows) / time_matmul(gpt2_vocab, rows) for _ in range(REPEATS))
median, low, high = ratios[REPEATS // 2], ratios[0], ratios[-1]
print(f"padded / unpadded time on {device}, {REPEATS} alternating repeats: median {median:.2f}, "
      f"range {low:.2f}-{high:.2f}")

# %% [markdown]
# What the spread says, in words:

# %%
verdict = ("the padded layer was faster in every repeat: the hardware rewards the alignment" if high < 1 else
           "the padded layer was slower in every repeat: it does more work, and this device gains nothing from "
           "the alignment" if low > 1 else
           "the range straddles 1: on this device the difference is smaller than the noise, and no lesson can "
           "be drawn from it")
display(Markdown(f"Padded / unpadded ranged from {low:.2f} to {high:.2f} over {REPEATS} repeats: {verdict}. "
                 "nanoGPT pads for a GPU's tiled kernels: rerun this cell on one to see whether they reward it."))

# %% [markdown]
# ## Try it
# - Change `gpt2_small` to GPT-2 medium (24 layers, 16 heads, 1024 wide) and rerun sections 1–2:
#   does the embedding's share go up or down?
# - Set `bias=False` in the config. How many parameters does that save?
# - After notebook 04, load its model (`probe, _ = finegpt.train.load_model(paths.run)`), encode `line` with the
#   checkpoint's tokenizer and rerun section 6's cells: do the same habits show up?
# - Change `line` to a speech of your own, and look for a head that reads the speaker's name.
# - Pick a vocabulary size that is a multiple of 128 and time it again on a GPU.
#
# ## Recap
# - A GPT's size is about 12·L·C² for the blocks plus V·C for the tied embedding.
# - For small models the embedding is a large share, so the guide's sizes are all too big:
#   12 layers × 768 is GPT-2 small, not GPT-2 medium.
# - Every block keeps the shape (B, T, C); only the output layer turns it into (B, T, V) scores.
# - Attention weights are a causal softmax over q · k; the fused kernel computes the same thing
#   without storing the T × T matrix.
# - Untrained heads spread their attention evenly; trained heads specialise, for example on the previous
#   character or on line breaks.

# %% [markdown]
# How long did it take? The last cell prints this notebook's time beside the estimate printed at the top, and
# writes both into the lab folder's `timings.json`.

# %%
clock.done()

# %% [markdown]
# **Next:** [03 · Memory math](03_memory_math.ipynb): how much GPU memory does training this model need?
