# %% [markdown]
# # 02 · Model anatomy: solutions
#
# Worked solutions to the five exercises of [02 · Model anatomy](../02_model_anatomy.ipynb). Try each one
# there first: its check cell runs your code against finegpt's own model and names the mistake it finds.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/solutions/02_model_anatomy_solutions.ipynb)

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
import torch.nn as nn
from torch.nn import functional as F

from finegpt.model import MLP, CausalSelfAttention, LayerNorm

# %% [markdown]
# ## Exercise 2.1 · The parameter count
#
# Why it is written this way: one line per kind of tensor, so each term can be read against the model.
# The token embedding is counted once, because `lm_head` is the same tensor; every block holds 12·C²
# weights (attention 4·C², MLP 8·C²) plus two LayerNorms, and `bias` adds 9·C per block to the
# Linear layers and C to every LayerNorm.

# %%
def param_count(cfg):
    C, L, b = cfg.n_embd, cfg.n_layer, int(cfg.bias)
    embeddings = cfg.vocab_size * C + cfg.block_size * C  # wte (= lm_head) and wpe
    attention = 4 * C * C + 4 * C * b  # c_attn C -> 3C, c_proj C -> C
    mlp = 8 * C * C + 5 * C * b  # c_fc C -> 4C, c_proj 4C -> C
    norms = 2 * (C + C * b)  # ln_1, ln_2
    return embeddings + L * (attention + mlp + norms) + (C + C * b)  # + ln_f


# %%
from finegpt.exercises import check_param_count

check_param_count(param_count)

# %% [markdown]
# ## Exercise 2.2 · The MLP
#
# Why it is written this way: nanoGPT's names (`c_fc`, `c_proj`) so that GPT-2's weights load into it,
# `bias=config.bias` so one config decides, and the nonlinearity between the two layers: without it
# they would multiply out to a single C × C matrix.

# %%
class MyMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):  # (B, T, C) -> (B, T, 4C) -> (B, T, C)
        return self.c_proj(self.gelu(self.c_fc(x)))


# %%
from finegpt.exercises import check_mlp

check_mlp(MyMLP)

# %% [markdown]
# ## Exercise 2.3 · A Block
#
# Why it is written this way: pre-LN, as GPT-2. Each sublayer reads a normalised copy of x and adds its
# result back to x itself, so the residual stream carries the input unchanged through every block and
# gradients reach the first layers directly.

# %%
class MyBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        x = x + self.attn(self.ln_1(x))  # tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # each token on its own
        return x


# %%
from finegpt.exercises import check_block

check_block(MyBlock)

# %% [markdown]
# ## Exercise 2.4 · Causal self-attention from q, k, v
#
# Why it is written this way: the explicit form shows every step. Scores q·kᵀ are divided by √hs so
# their spread stays near 1 whatever the head size; the future is set to -inf *before* the softmax, so
# each row still sums to 1 over the keys a token may see. `F.scaled_dot_product_attention(q, k, v,
# is_causal=True)`, which finegpt's model calls, computes the same without storing the T × T matrix.

# %%
def causal_self_attention(q, k, v):  # (B, H, T, hs) each -> (B, H, T, hs)
    T = q.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, H, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)  # key j > query i
    weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)  # each row sums to 1
    return weights @ v


# %%
from finegpt.exercises import check_causal_attention

check_causal_attention(causal_self_attention)

# %% [markdown]
# The fused kernel passes the same check:

# %%
check_causal_attention(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))

# %% [markdown]
# ## Exercise 2.5 · Your attention inside nanoGPT's module
#
# Why it is written this way: one Linear makes q, k and v at once (C → 3C), `split` cuts them apart, and
# `view` + `transpose` put the heads in front of time, so the attention function works on each head's (T, hs)
# matrix. The merge reverses it; `contiguous` is needed because `transpose` only changes strides. The names
# `c_attn` and `c_proj` are nanoGPT's, so the weights load into finegpt's model (notebook 05 samples with it).

# %%
class MyCausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head = config.n_head

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hs)
        y = causal_self_attention(q, k, v)  # (B, H, T, hs)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


# %%
from finegpt.exercises.course import check_attention_module

check_attention_module(MyCausalSelfAttention)

# %% [markdown]
# Back to [02 · Model anatomy](../02_model_anatomy.ipynb), or on to the
# [03 solutions](03_memory_math_solutions.ipynb).
