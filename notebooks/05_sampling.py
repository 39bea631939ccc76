# %% [markdown]
# # 05 · Sampling: how a trained GPT writes text
#
# **What you will learn**
# - how the next token is drawn from the model's scores, and what temperature, top-k and top-p change;
# - how to generate interactively with prompt and sampling controls;
# - why a KV cache makes generation fast, and that it gives exactly the same tokens;
# - how a model's writing changes from untrained, to an early checkpoint, to the end of notebook 04's run.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/05_sampling.ipynb)

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
# **Which mode?** `"smoke"`: tiny and offline, what the tests run. `"cpu"`: a laptop without a GPU. `"full"`: a
# CUDA GPU. With `None` the notebook takes `"full"` on a CUDA GPU and `"cpu"` without one. Use the mode notebook
# 04 ran in: each mode keeps its own files in the lab folder.

# %% tags=["parameters"]
MODE = None  # "smoke", "cpu" or "full"; None: "full" on a CUDA GPU, else "cpu"

# %% [markdown]
# Everything below comes from `finegpt` and the libraries it builds on. `finegpt.lab` is the part that carries the
# lab from notebook to notebook: the mode, the lab folder, this notebook's sizes and its clock.

# %%
import re
import time

import pandas as pd
import torch
from IPython.display import Markdown, display

from finegpt import lab, plots, widgets
from finegpt import memory as M
from finegpt.config import ModelConfig
from finegpt.data import get_tokenizer
from finegpt.model import GPT, sample_next
from finegpt.sample import generate_text, load_for_sampling
from finegpt.train.checkpoint import step_checkpoints

# %% [markdown]
# The parameters cell only records what you asked for; here it becomes a decision, with the lab folder and the
# time this notebook should take.

# %%
MODE = lab.pick_mode(MODE)
settings = lab.settings(MODE, gpu=M.detected_gpu_key(default="T4"))
paths = lab.paths(MODE)
clock = lab.start("05", settings, paths)
device = settings.device

# %% [markdown]
# ## 1. Which model do we sample from?
#
# The one notebook 04 trained, from its checkpoints in the lab folder. The next cell says which checkpoint it
# found, how far it trained and on what. If there is none, it stops and says how to make one: this notebook
# never trains a model of its own, so every sample below is the model you trained.

# %%
found = lab.check(clock)["04's trained model"]

# %% [markdown]
# The path, the iteration and the tokens seen are those of your run in notebook 04: retrain there, rerun this
# notebook, and these lines change with it.

# %% [markdown]
# `load_for_sampling` rebuilds the model from the config saved inside the checkpoint, and picks the tokenizer
# that the checkpoint's data record names.

# %%
model, tok, label = load_for_sampling(paths.run, device=device)
print(f"sampling from {found.info['checkpoint']}: {model.get_num_params() / 1e6:.2f}M parameters, {tok.name} "
      f"tokenizer, block_size {model.config.block_size}")

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
# <details><summary>Hint: the recipe</summary>
#
# Aim for one threshold per row: `torch.topk(logits, k).values[:, [-1]]` is each row's k-th largest,
# (B, 1), and `masked_fill` sets everything below it to -inf. Return a new tensor; leave `logits` as it was.
#
# </details>

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

lab.hand_in("top_k", top_k_filter, check_top_k, paths)

# %% [markdown]
# ### Exercise 5.2 · Top-p (nucleus) filtering
#
# Write `top_p_filter(logits, p)`: for logits (B, V), keep in each row the smallest set of most likely
# tokens whose probabilities add up to at least p, each at its own token id, and set the rest to -inf. The
# most likely token always stays, even when its probability alone passes p.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for the by-hand count above, per row: sort descending (`torch.sort` also returns the order), take
# softmax and its cumulative sum, drop a token when the mass *before* it already exceeds p, then put the
# kept logits back at their ids (`scatter`).
#
# </details>

# %%
def top_p_filter(logits, p):  # (B, V) -> (B, V)
    raise NotImplementedError  # your code here


# %% [markdown]
# The check compares with `finegpt.model.top_p_logits` for p = 0.9, 0.5 and 0.0001, and names top-p
# keeping one token too few (the token that crosses p dropped) or too many, an ascending sort, a sum taken
# in token-id order, a row left empty, and sorted output.

# %%
from finegpt.exercises import check_top_p

lab.hand_in("top_p", top_p_filter, check_top_p, paths)

# %% [markdown]
# Which filters draw the samples below? Each one that passed its check is yours; the samples of sections 3 and
# 5 go through `mine.sampler`, which applies them (`generate(..., sampler=mine.sampler)`).

# %%
mine = lab.handed_in(paths, MODE, only=["top_k", "top_p"])
print(mine)

# %% [markdown]
# The widget's Generate button in section 3 draws with finegpt's sampler; the table under it, and every sample
# of section 5, with `mine.sampler`.

# %% [markdown]
# ## 3. What does the model write? Try the controls
#
# Each click calls `finegpt.widgets.sample_view`, a thin wrapper over `finegpt.sample.generate_text`.
# The same seed and settings always give the same text. (A static copy of the notebook shows no widgets.)

# %%
n_new = 200 if tok.name == "bytes" else 100  # about the same length of text either way
ui = widgets.sample_ui(model, tok, prompt=prompt, max_new_tokens=n_new)
ui

# %% [markdown]
# A copy of the notebook that is not running (GitHub) cannot show the widget. The widget's callback is
# `widgets.sample_view`, so here is that same function's answer at its default settings, and at two other
# temperatures, as a table:

# %%
samples = pd.DataFrame({f"temperature {t}": [widgets.sample_view(model, tok, prompt, temperature=t, max_new_tokens=n_new,
                                                                 sampler=mine.sampler)]
                        for t in (0.5, 0.8, 1.2)}).T.rename(columns={0: "sample (seed 1337)"})
with pd.option_context("display.max_colwidth", None):
    display(samples.style.set_properties(**{"white-space": "pre-wrap", "text-align": "left", "font-family": "monospace"}))

# %% [markdown]
# Lower temperatures keep the model to its likeliest choices; higher ones let rarer tokens through. Run the cell
# again and the text is identical: sampling is random, but a fixed seed fixes the random generator, so a sample
# can be reproduced and compared.

# %% [markdown]
# ## 4. Why is the KV cache faster, and is it exact?
#
# Without a cache, every new token runs the whole context through the model again: the n-th token costs
# n positions of work, so n tokens cost about n²/2. With a cache, each layer keeps the keys and values
# of earlier tokens and only the new token is computed. Greedy decoding must give identical tokens
# either way; we time both for a few lengths. Speed does not depend on the weights, so on a CPU we time an
# untrained model with a longer context (256 tokens) than the trained one, where the difference shows.

# %%
timed = model if device == "cuda" else GPT(ModelConfig(n_layer=4, n_head=4, n_embd=128, block_size=256, vocab_size=320)).eval()


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
# <details><summary>Hint: the recipe</summary>
#
# Aim for the module's own forward, for one token: q, k, v = attn.c_attn(x).split(C, dim=2), each viewed as
# (B, 1, H, hs) and transposed to (B, H, 1, hs); the new k and v appended after the cache along time
# (dim 2); `torch.nn.functional.scaled_dot_product_attention(q, k, v)` with no causal mask; heads merged
# back to (B, 1, C); then `attn.c_proj`. `attn.n_head` is H.
#
# </details>

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
# ### Exercise 5.4 · The model's forward, after a KV cache
#
# Exercise 5.3 was one layer; `generate` runs the whole model on the new tokens only, once the cache holds the
# earlier ones. Write `cached_forward(model, idx, caches)`: the logits (B, T, V) of the T new tokens `idx`
# (B, T), given `caches`, one `KVCache` per block, already holding the `caches[0].pos` tokens before them. Build
# it from the model's parts, as the by-hand forward pass of notebook 02: `model.transformer.wte`, `wpe`, `drop`,
# the blocks `model.transformer.h` (each block takes `(x, cache)` and appends its keys and values), `ln_f` and
# `model.lm_head`. The check hides `model(...)` itself.

# %% [markdown]
# <details><summary>Hint: where the new tokens sit</summary>
#
# The new tokens are not at positions 0..T-1: they come after the cached ones. Read the offset
# `past = caches[0].pos` *before* the blocks run (each block's cache moves it on), and embed positions
# `torch.arange(past, past + T)`. Each block gets its own cache: `x = block(x, caches[i])`.
#
# </details>

# %%
def cached_forward(model, idx, caches):  # idx (B, T) -> logits (B, T, V)
    raise NotImplementedError  # your code here


# %% [markdown]
# The check fills the caches with a 5-token prompt, then compares your logits for a chunk of 3 new tokens and
# for a single one with a full recompute of the whole text. It names the classic bug, a position embedding
# without the cache's offset, and also positions one too far, the offset read after it moved, every block
# given the first block's cache, blocks run without their caches, and the final LayerNorm left out.

# %%
from finegpt.exercises.course import check_cached_forward

check_cached_forward(cached_forward)

# %% [markdown]
# ## 5. How do samples change as training goes on?
#
# Three models, one prompt, one seed, one setting: the run's starting point (untrained: the same config built with
# the run's seed, exactly as `train` builds it before the first step), its oldest checkpoint still on disk (the
# first evaluation's in cpu and smoke mode; full mode keeps only the last two, to spare your Drive), and its last.
# Every difference between the samples is what training added.
#
# To put a number on "reads like the plays", we count the share of a sample's words that occur in the text the
# model trained on (the train split of its shards), and the lines that are a speaker's name in capitals with a
# colon, the plays' layout.

# %%
words = lab.corpus_words(lab.shard_text(found.info["data_dir"]))
torch.manual_seed(found.info["seed"])
untrained = GPT(model.config).to(device).eval()
steps = step_checkpoints(paths.run)  # newest first
early = steps[-1]
models = {"untrained (iter 0)": (untrained, None)}
for name, path in (("early", early), ("trained", paths.run / "ckpt.pt")):
    ck = torch.load(path, map_location="cpu", weights_only=True)
    models[f"{name} (iter {ck['iter_num']:,})"] = (load_for_sampling(path, device=device)[0], ck["best_val_loss"])
print(f"word list: {len(words):,} distinct words from the training text")

# %% [markdown]
# A word counts as real when it occurs somewhere in the training text; an invented word does not, however
# plausible it looks. Punctuation, numbers and line breaks are not words, and one-letter words are not counted
# either: random characters make "a", "I" and "O" by chance.

# %% [markdown]
# Now the three samples, each with its share of real words:

# %%
rows = []
for name, (m, val) in models.items():
    text = generate_text(m, tok, prompt, max_new_tokens=n_new + 100, temperature=0.8, seed=1337, sampler=mine.sampler)[0]
    share = lab.real_word_share(text[len(prompt):], words)  # the model's words, not the prompt's
    names = len(re.findall(r"^[A-Z][A-Z ]*[A-Z]:$", text[len(prompt):], re.M))
    rows.append({"model": name, "val loss": val, "real words": share, "speaker names": names})
    print(f"=== {name}: {share:.0%} real words ===\n{text}\n")
progress = pd.DataFrame(rows).set_index("model")
progress

# %% [markdown]
# In words, with these numbers:

# %%
shares, vals, names = progress["real words"], progress["val loss"], progress["speaker names"]
layout_first = names.iloc[1] > names.iloc[0] and shares.iloc[1] - shares.iloc[0] < shares.iloc[2] - shares.iloc[1]
display(Markdown(
    f"The share of real words goes from {shares.iloc[0]:.0%} (untrained) to {shares.iloc[1]:.0%} (early) and "
    f"{shares.iloc[2]:.0%} (trained), as the validation loss falls from {vals.iloc[1]:.2f} to {vals.iloc[2]:.2f}. "
    f"Speaker names in capitals on a line of their own: {names.iloc[0]}, {names.iloc[1]} and {names.iloc[2]}. "
    + ("The early checkpoint already writes the layout while most of its gain in real words is still to come: the "
       "shape of the text comes first." if layout_first else
       "In these samples the layout does not come before the words: the counts rise together, or the early "
       "checkpoint writes no speaker name yet.")))

# %% [markdown]
# The check: the trained model's share of real words must beat the untrained one's by at least 30 points (not in
# smoke mode, whose model trains for a few dozen steps).

# %%
if MODE != "smoke":  # a few dozen smoke steps barely leave the untrained model behind
    assert progress["real words"].iloc[-1] > progress["real words"].iloc[0] + 0.3

# %% [markdown]
# ### Task 5.5 · More real words, one setting
#
# An open task with a number to beat: change **one** sampling setting (temperature, top_k or top_p) so that the
# trained model's sample, same prompt, same seed, has at least 5 points more real words than at the defaults
# used above. The check generates both and counts. Greedy decoding (temperature 0) does not count: it is not
# sampling.

# %% [markdown]
# <details><summary>Hint: what each knob trades</summary>
#
# Every knob trades variety for safety: a lower temperature sharpens the distribution, a smaller top_k or top_p
# cuts its tail, where the misspelt words come from. Go too far and the text repeats itself.
#
# </details>

# %%
my_sampling = None  # e.g. dict(temperature=...): one setting changed

# %%
from finegpt.exercises.course import check_sampling_task

trained_model = models[progress.index[-1]][0]
check_sampling_task(my_sampling, trained_model, tok, prompt, lambda text: lab.real_word_share(text, words), n_new + 100,
                    defaults=dict(temperature=0.8, top_k=200, top_p=None), sampler=mine.sampler)

# %% [markdown]
# ## 6. Can the same `generate` drive OpenAI's GPT-2?
#
# `finegpt.eval.load_gpt2` copies Hugging Face's GPT-2 weights into finegpt's `GPT`: it transposes the
# Conv1D matrices, keeps the head tied to the embedding and pads the vocabulary from 50257 to 50304. After
# that, everything in this notebook works on GPT-2 too. In full mode we load the real `gpt2` (a 500 MB download);
# in cpu and smoke mode, offline, a tiny randomly initialised GPT-2 saved to disk goes through the same loader,
# and we check that finegpt's logits equal Hugging Face's.

# %%
from finegpt.eval import load_gpt2

gpt2 = hf = None
if MODE == "full":
    try:
        gpt2 = load_gpt2("gpt2", device=device)
    except Exception as e:  # offline: the weights cannot be downloaded
        print(f"skipped: GPT-2's weights could not be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
else:
    try:
        import transformers

        transformers.logging.disable_progress_bar()
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=128))
    except ImportError:  # an optional dependency
        print("skipped: Hugging Face transformers is not installed (pip install -e '.[extras]')")
if hf is not None:  # a tiny random GPT-2 through finegpt's loader, checked logit for logit
    hf.eval().save_pretrained(paths.root / "tiny-gpt2")
    gpt2 = load_gpt2(str(paths.root / "tiny-gpt2"), device=device)
    ids = torch.tensor([get_tokenizer("gpt2").encode("Hello world, this is GPT-2")], device=device)
    with torch.no_grad():
        gap = (gpt2(ids)[0][..., :50257] - hf.to(device)(ids).logits).abs().max().item()
    print(f"largest logit difference, finegpt vs Hugging Face: {gap:.1e}")
    assert gap < 1e-4
if gpt2 is not None:
    print(generate_text(gpt2, get_tokenizer("gpt2"), "The meaning of life is", max_new_tokens=40, temperature=0.8,
                        seed=1337)[0])

# %% [markdown]
# In cpu and smoke mode this GPT-2 has random weights, so it strings together random whole tokens from GPT-2's
# vocabulary, where an untrained byte model's noise was single characters. In full mode the same line prints real
# GPT-2 text.

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
# - The same prompt and seed show what training added: untrained, early and trained, with the share of real
#   words as a number.

# %% [markdown]
# How long did it take? The last cell prints this notebook's time beside the estimate printed at the top, and
# writes both into the lab folder's `timings.json`.

# %%
clock.done()

# %% [markdown]
# **Where next:** back to [01 · Data prep](01_data_prep.ipynb) with more tokens, or to
# [03 · Memory math](03_memory_math.ipynb) to plan a bigger model for your GPU.
