# %% [markdown]
# # 05 · Sampling: how a trained GPT writes text
#
# **What you will learn**
# - how the next token is drawn from the model's scores, and what temperature, top-k and top-p change;
# - how to generate interactively with prompt and sampling controls;
# - why a KV cache makes generation fast, and that it gives exactly the same tokens;
# - how samples improve from an early to a late checkpoint of the same run.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/05_sampling.ipynb)

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
import os
import time
from pathlib import Path

import torch

from finegpt import plots, widgets
from finegpt.config import ModelConfig, TrainConfig
from finegpt.data import get_tokenizer, prepare
from finegpt.model import GPT, sample_next
from finegpt.sample import generate_text, load_for_sampling
from finegpt.train import train
from finegpt.train.checkpoint import step_checkpoints

# %% [markdown]
# The parameters cell only records what you asked for; here `None` becomes a decision, and `device`
# follows it: smoke mode samples on the CPU even when a GPU is present.

# %%
if SMOKE is None:
    SMOKE = os.environ.get("FINEGPT_SMOKE") == "1" or not torch.cuda.is_available()
device = "cuda" if torch.cuda.is_available() and not SMOKE else "cpu"
print(f"SMOKE={SMOKE}, device={device}")

# %% [markdown]
# ## 1. Which model do we sample from?
#
# Notebook 04's run, from its checkpoint directory. If it has not been run here, we train a tiny
# byte-level Shakespeare model for a few seconds so this notebook also works on its own.

# %%
out_dir = Path("out-04-smoke" if SMOKE else "out-04")
if not (out_dir / "ckpt.pt").exists():
    print(f"no checkpoint in {out_dir}: training a tiny one")
    out_dir = Path("out-05-tiny")
    data_dir = Path("data/shakespeare-bytes")
    if not (data_dir / "meta.json").exists():
        prepare("shakespeare", out=data_dir, tokenizer="bytes", progress=False)
    train(ModelConfig(n_layer=2, n_head=4, n_embd=64, block_size=64),
          TrainConfig(out_dir=str(out_dir), data_dir=str(data_dir), batch_size=32, gradient_accumulation_steps=1,
                      max_iters=80, eval_interval=40, eval_iters=5, log_interval=40, learning_rate=3e-3, min_lr=3e-4,
                      warmup_iters=10, lr_decay_iters=80, device="cpu", dtype="float32", keep_checkpoints=20),
          overwrite=True)

# %% [markdown]
# Either way `out_dir` now holds a checkpoint. `load_for_sampling` rebuilds the model from the config saved
# inside it, and picks the tokenizer that the checkpoint's data record names.

# %%
model, tok, label = load_for_sampling(out_dir, device=device)
print(f"{label}: {model.get_num_params() / 1e6:.2f}M parameters, {tok.name} tokenizer, block_size {model.config.block_size}")

# %% [markdown]
# Notice `block_size`: the model never looks further back than that many tokens, however long the text it
# writes.

# %% [markdown]
# ## 2. How does the model pick the next token?
#
# The model turns a context into one score (logit) per vocabulary entry. Softmax turns scores into
# probabilities, and we draw one token. Three knobs reshape the distribution first:
# - **temperature** divides the logits: below 1 sharpens the distribution, above 1 flattens it, 0 means
#   always take the most likely token (greedy);
# - **top-k** keeps only the k most likely tokens;
# - **top-p** (nucleus) keeps the smallest set of most likely tokens whose probability adds up to p.
#
# Here are the model's top candidates after a prompt, at three temperatures:

# %%
prompt = "ROMEO:\nWhat" if tok.name == "bytes" else "The capital of France is"
ids = torch.tensor([tok.encode(prompt)], device=device)  # (1, T)
with torch.no_grad():
    logits = model(ids, last_only=True)[0][0, -1].float()  # (V,): scores for the next token

# %% [markdown]
# `last_only=True` asks for the scores at the last position only: that is all sampling needs, and it
# skips the wide output layer for every earlier position. Now the eight best candidates at three
# temperatures:

# %%
top = torch.topk(logits, 8).indices
labels = [tok.decode([i]) for i in top.tolist()]
probs = {f"T={t}": torch.softmax(logits / t, dim=-1)[top].tolist() for t in (0.5, 1.0, 2.0)}
plots.token_probs(labels, probs, f"Next token after {prompt!r}")

# %% [markdown]
# Temperature reorders nothing: the same tokens stay in the same order, and only the gaps between their
# probabilities shrink (T > 1) or grow (T < 1).

# %% [markdown]
# Top-p by hand: sort the probabilities, add them up, and keep tokens until the sum reaches p.
# With top-k = 5, `finegpt`'s sampler must only ever return one of the 5 most likely tokens; we check by
# drawing 200 times.

# %%
p = torch.softmax(logits, dim=-1)
sorted_p = p.sort(descending=True).values
nucleus = int((sorted_p.cumsum(0) - sorted_p < 0.9).sum())  # tokens needed to cover 90 % of the mass
print(f"top-p=0.9 keeps {nucleus} of {len(p)} tokens; top-1 has probability {sorted_p[0].item():.2f}")

# %% [markdown]
# The nucleus is small when the model is confident and large when it is not: top-p adapts its cut to the
# distribution, while top-k always keeps k. Now the sampler's own checks:

# %%
g = torch.Generator(device=device).manual_seed(0)
draws = {int(sample_next(logits[None], 1.0, top_k=5, generator=g)) for _ in range(200)}
assert draws <= set(torch.topk(logits, 5).indices.tolist())
assert int(sample_next(logits[None], 0.0)) == int(logits.argmax())  # temperature 0 is greedy
print(f"200 draws with top_k=5 used {len(draws)} distinct tokens, all among the top 5")

# %% [markdown]
# These are the sampler's contract: top-k never returns a token outside the k best, and temperature 0 is
# exactly greedy decoding (the argmax).

# %% [markdown]
# ### Exercise 5.1 · Top-k filtering
#
# Write `top_k_filter(logits, k)`: for logits of shape (B, V), a new (B, V) tensor where each row keeps
# its k largest logits, each at its own token id, and every other entry is `-inf`, so softmax gives it
# probability 0. A k larger than V keeps everything.

# %% [markdown]
# Aim for one threshold per row: `torch.topk(logits, k).values[:, [-1]]` is each row's k-th largest,
# (B, 1), and `masked_fill` sets everything below it to -inf. Return a new tensor; leave `logits` as it was.

# %%
def top_k_filter(logits, k):  # (B, V) -> (B, V)
    raise NotImplementedError  # your code here


# %% [markdown]
# The check compares with `finegpt.model.top_k_logits`, the filter `sample_next` uses, on rows of very
# different scales. It names one token too few or too many, 0 where -inf belongs, one threshold shared by
# the whole batch, sorted output, the input changed in place, and k past the vocabulary. Worked solutions:
# [solutions/05_sampling_solutions.ipynb](solutions/05_sampling_solutions.ipynb).

# %%
from finegpt.exercises import check_top_k

check_top_k(top_k_filter)

# %% [markdown]
# ### Exercise 5.2 · Top-p (nucleus) filtering
#
# Write `top_p_filter(logits, p)`: for logits (B, V), keep in each row the smallest set of most likely
# tokens whose probabilities add up to at least p, each at its own token id, and set the rest to -inf. The
# most likely token always stays, even when its probability alone passes p.

# %% [markdown]
# Aim for the by-hand count above, per row: sort descending (`torch.sort` also returns the order), take
# softmax and its cumulative sum, drop a token when the mass *before* it already exceeds p, then put the
# kept logits back at their ids (`scatter`).

# %%
def top_p_filter(logits, p):  # (B, V) -> (B, V)
    raise NotImplementedError  # your code here


# %% [markdown]
# The check compares with `finegpt.model.top_p_logits` for p = 0.9, 0.5 and 0.0001, and names top-p
# keeping one token too few (the token that crosses p dropped) or too many, an ascending sort, a sum taken
# in token-id order, a row left empty, and sorted output.

# %%
from finegpt.exercises import check_top_p

check_top_p(top_p_filter)

# %% [markdown]
# ## 3. What does the model write? Try the controls
#
# Each click calls `finegpt.widgets.sample_view`, a thin wrapper over `finegpt.sample.generate_text`.
# The same seed and settings always give the same text. (A static copy of the notebook shows no widgets.)

# %%
ui = widgets.sample_ui(model, tok, prompt=prompt, max_new_tokens=200 if SMOKE else 100)
ui

# %% [markdown]
# The widget's callback is the same `sample_view` that the next cell calls, so the printed text is what
# the widget shows at its default settings.

# %% [markdown]
# The default sample, as plain text:

# %%
print(widgets.sample_view(model, tok, prompt, max_new_tokens=200 if SMOKE else 100))

# %% [markdown]
# Run the cell again and the text is identical: sampling is random, but a fixed seed fixes the random
# generator, so a sample can be reproduced and compared.

# %% [markdown]
# ## 4. Why is the KV cache faster, and is it exact?
#
# Without a cache, every new token runs the whole context through the model again: the n-th token costs
# n positions of work, so n tokens cost about n²/2. With a cache, each layer keeps the keys and values
# of earlier tokens and only the new token is computed. Greedy decoding must give identical tokens
# either way; we time both for a few lengths. Speed does not depend on the weights, so in smoke mode we
# time an untrained model with a longer context (256 tokens) than the tiny trained one.

# %%
timed = model if not SMOKE else GPT(ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=320)).eval()


def time_generate(n_new: int, use_cache: bool) -> tuple[float, list[int]]:
    start = torch.tensor([tok.encode(prompt)], device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = timed.generate(start, n_new, temperature=0.0, use_cache=use_cache)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out[0].tolist()


# %% [markdown]
# `time_generate` decodes greedily (temperature 0), so both paths must produce the same tokens, and the
# loop asserts it. The lengths stay inside one context window, where the cache never has to be cropped.

# %%
room = timed.config.block_size - len(tok.encode(prompt))  # stay inside one context window
lengths = [room // 4, room // 2, room]
cached, uncached = [], []
for n in lengths:
    (t_cache, ids_cache), (t_full, ids_full) = time_generate(n, True), time_generate(n, False)
    assert ids_cache == ids_full  # the cache changes the speed, never the tokens
    cached.append(t_cache)
    uncached.append(t_full)
print(f"{lengths[-1]} new tokens: {uncached[-1] * 1e3:.0f} ms without the cache, {cached[-1] * 1e3:.0f} ms with it "
      f"({uncached[-1] / cached[-1]:.1f}x)")

# %% [markdown]
# The ratio is printed for the longest length, where the cache saves the most: the work it avoids grows
# with every token already written.

# %% [markdown]
# Plotted: without a cache the work grows with the square of the length, with it in proportion to the length.
# On a small CPU model fixed per-token costs blur this; on a GPU with a long context the gap is wide.

# %%
plots.timing_lines(lengths, {"KV cache": cached, "no cache": uncached}, "new tokens",
                   title=f"Greedy generation on {device}, same tokens both ways")

# %% [markdown]
# Read the shapes, not single points: with a long enough context the uncached line bends upward while
# the cached one stays close to straight.

# %% [markdown]
# Where does the cache sit? One decoding step of this model, after the prompt, drawn from the model's own
# config and a real `KVCache`: only the new token runs through the layers, its key and value are written
# into the next slot of each layer's cache, and its query reads every filled slot.

# %%
from finegpt.diagrams import kv_cache_diagram

kv_cache_diagram(model.config, pos=len(tok.encode(prompt)))

# %% [markdown]
# The cache is allocated once, for `block_size` positions in every layer; each step fills one more slot.
# That is why a long context costs memory even when generating a single token.

# %% [markdown]
# ### Exercise 5.3 · One decoding step with a KV cache
#
# Write `decode_step(attn, x, past_k, past_v)` for one `CausalSelfAttention` layer `attn`: x is the new
# token, (B, 1, C); past_k and past_v are the cached keys and values, (B, H, P, hs). Return
# `(y, k, v)`: the layer's output (B, 1, C), and the keys and values grown to (B, H, P + 1, hs).

# %% [markdown]
# Aim for the module's own forward, for one token: q, k, v = attn.c_attn(x).split(C, dim=2), each viewed as
# (B, 1, H, hs) and transposed to (B, H, 1, hs); the new k and v appended after the cache along time
# (dim 2); `torch.nn.functional.scaled_dot_product_attention(q, k, v)` with no causal mask; heads merged
# back to (B, 1, C); then `attn.c_proj`. `attn.n_head` is H.

# %%
def decode_step(attn, x, past_k, past_v):
    raise NotImplementedError  # your code here


# %% [markdown]
# The check fills a cache with a 5-token prompt through the module itself, then compares your step with the
# module's cached step. It names the new key or value not appended or put in front, `is_causal=True` with a
# single query (it would see only the first key), a query that sees only itself, and the heads not merged
# or not projected.

# %%
from finegpt.exercises import check_kv_decode_step

check_kv_decode_step(decode_step)

# %% [markdown]
# ## 5. How do samples change as training goes on?
#
# The run kept a checkpoint at every evaluation. Same prompt, same seed, same settings: the earliest
# checkpoint against the last one.

# %%
steps = step_checkpoints(out_dir)  # newest first
early, late = steps[-1], steps[0]
for path in (early, late):
    m, _, _ = load_for_sampling(path, device=device)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    print(f"--- iter {ckpt['iter_num']} (val loss {ckpt['best_val_loss']:.3f}) ---")
    print(generate_text(m, tok, prompt, max_new_tokens=150 if SMOKE else 80, temperature=0.8, seed=1337)[0], "\n")

# %% [markdown]
# Same prompt, same seed, same settings: every difference between the two samples is what training added
# between those iterations, and the lower val loss measures the same progress as a number.

# %% [markdown]
# ## 6. Can the same `generate` drive OpenAI's GPT-2?
#
# `finegpt.eval.load_gpt2` copies Hugging Face's GPT-2 weights into finegpt's `GPT`: it transposes the
# Conv1D matrices, keeps the head tied to the embedding and pads the vocabulary from 50257 to 50304. After
# that, everything in this notebook works on GPT-2 too. On a GPU (online) we load the real `gpt2`; in
# smoke mode, offline, a tiny randomly initialised GPT-2 saved to disk goes through the same loader, and
# we check that finegpt's logits equal Hugging Face's.

# %%
from finegpt.eval import load_gpt2

if SMOKE:
    import transformers

    transformers.logging.disable_progress_bar()
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=128)).eval()
    hf.save_pretrained("out-05-tiny-gpt2")
    gpt2 = load_gpt2("out-05-tiny-gpt2", device=device)
    ids = torch.tensor([get_tokenizer("gpt2").encode("Hello world, this is GPT-2")])
    with torch.no_grad():
        gap = (gpt2(ids)[0][..., :50257] - hf(ids).logits).abs().max().item()
    print(f"largest logit difference, finegpt vs Hugging Face: {gap:.1e}")
    assert gap < 1e-4
else:
    gpt2 = load_gpt2("gpt2", device=device)
print(generate_text(gpt2, get_tokenizer("gpt2"), "The meaning of life is", max_new_tokens=40, temperature=0.8,
                    seed=1337)[0])

# %% [markdown]
# In smoke mode this GPT-2 has random weights, so it strings together random whole tokens from GPT-2's
# vocabulary, where our byte model's noise was letters. In full mode the same line prints real GPT-2 text.

# %% [markdown]
# ## Try it
# - Set temperature to 0 and click Generate twice: greedy decoding always repeats itself.
# - Raise the temperature to 1.5 with top-k off, then bring top-p down to 0.5: where does the text stop
#   making sense?
# - Lengthen `max_new_tokens` past `block_size`: the model only ever sees its last `block_size` tokens.
# - On a GPU, time the cache at `block_size` 1024: the gap grows with the context.
#
# ## Recap
# - Sampling draws from softmax(logits / temperature), optionally cut to the top-k tokens or the top-p mass.
# - The KV cache stores each layer's keys and values, so a new token costs one position instead of the
#   whole context, and gives exactly the same tokens.
# - The same prompt and seed show what training added between an early and a late checkpoint.
#
# **Where next:** back to [01 · Data prep](01_data_prep.ipynb) with more tokens, or to
# [03 · Memory math](03_memory_math.ipynb) to plan a bigger model for your GPU.
