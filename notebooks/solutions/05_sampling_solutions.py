# %% [markdown]
# # 05 · Sampling: solutions
#
# Worked solutions to the four exercises of [05 · Sampling](../05_sampling.ipynb). Try each one there
# first: its check cell compares your code with finegpt's sampler and KV cache.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/solutions/05_sampling_solutions.ipynb)

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
from torch.nn import functional as F

# %% [markdown]
# ## Exercise 5.1 · Top-k
#
# Why it is written this way: `torch.topk` gives each row's k largest values, sorted, so the last one is
# that row's threshold; masking everything below it keeps every logit at its token id. `min(k, V)`
# lets a k larger than the vocabulary keep everything.

# %%
def top_k_filter(logits, k):  # (B, V) -> (B, V)
    kth = torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]]  # (B, 1): each row's k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


# %%
from finegpt.exercises import check_top_k

check_top_k(top_k_filter)

# %% [markdown]
# ## Exercise 5.2 · Top-p
#
# Why it is written this way: the nucleus is defined on the tokens sorted by probability, so the work
# happens in sorted order and `scatter` puts each logit back at its token id. A token is dropped when
# the mass *before* it already exceeds p, so the token that carries the sum past p stays, and the most
# likely token (nothing before it) always stays.

# %%
def top_p_filter(logits, p):  # (B, V) -> (B, V)
    sorted_logits, order = torch.sort(logits, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    drop = probs.cumsum(dim=-1) - probs > p  # the mass before each token already exceeds p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


# %%
from finegpt.exercises import check_top_p

check_top_p(top_p_filter)

# %% [markdown]
# ## Exercise 5.3 · One decoding step with a KV cache
#
# Why it is written this way: only the new token goes through `c_attn`; its key and value are appended
# after the cached ones (time is dim 2), and its one query attends over all of them. No causal mask is
# needed, since every cached token is in the past; `is_causal=True` would be wrong here, because with
# one query and several keys PyTorch aligns the mask to the top left and hides all but the first key.

# %%
def decode_step(attn, x, past_k, past_v):  # x (B, 1, C); past_k, past_v (B, H, P, hs)
    B, T, C = x.shape
    H = attn.n_head
    q, k, v = attn.c_attn(x).split(C, dim=2)  # 3 x (B, 1, C)
    q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, 1, hs)
    k = torch.cat([past_k, k], dim=2)  # (B, H, P + 1, hs)
    v = torch.cat([past_v, v], dim=2)
    y = F.scaled_dot_product_attention(q, k, v)  # (B, H, 1, hs): one query, every key
    y = y.transpose(1, 2).reshape(B, T, C)  # (B, 1, C)
    return attn.c_proj(y), k, v


# %%
from finegpt.exercises import check_kv_decode_step

check_kv_decode_step(decode_step)

# %% [markdown]
# ## Exercise 5.4 · The model's forward, after a KV cache
#
# Why it is written this way: the new tokens come after the cached ones, so their positions start at the
# cache's length, read before any block appends to it. Each block keeps its own keys and values, so block i
# gets caches[i]; inside, finegpt's attention appends the new keys and values and lets each new query see every
# cached key and the new ones up to itself. Then the final LayerNorm and the tied output layer, as in `forward`.

# %%
def cached_forward(model, idx, caches):  # idx (B, T) -> logits (B, T, V)
    past = caches[0].pos  # tokens already cached: the new ones start here
    pos = torch.arange(past, past + idx.size(1), device=idx.device)  # (T,)
    x = model.transformer.drop(model.transformer.wte(idx) + model.transformer.wpe(pos))  # (B, T, C)
    for block, cache in zip(model.transformer.h, caches):
        x = block(x, cache)  # appends this layer's keys and values
    return model.lm_head(model.transformer.ln_f(x))  # (B, T, V)


# %%
from finegpt.exercises.course import check_cached_forward

check_cached_forward(cached_forward)

# %% [markdown]
# Back to [05 · Sampling](../05_sampling.ipynb).
