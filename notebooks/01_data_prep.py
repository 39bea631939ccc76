# %% [markdown]
# # 01 · Data prep: from FineWeb documents to token shards
#
# **What you will learn**
# - what FineWeb is: its configs, sizes, columns and licence;
# - how to stream documents instead of downloading a dataset, and what they look like;
# - how long documents are in GPT-2 tokens, and how many bytes of text a token covers;
# - how `finegpt` writes token shards, and how to check they round-trip;
# - what the popular guide's `save_to_disk` of sample-100BT costs in disk, against streaming a token budget.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/01_data_prep.ipynb)

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
# **Which mode?** One parameter decides how big everything is. `"smoke"`: tiny and offline, what the tests run
# (seconds). `"cpu"`: a laptop without a GPU, offline: each lesson for real in a few minutes, on Shakespeare's
# plays written out with FineWeb's columns. `"full"`: FineWeb itself, streamed, on a CUDA GPU. With `None` the
# notebook takes `"full"` on a CUDA GPU and `"cpu"` without one.

# %% tags=["parameters"]
MODE = None  # "smoke", "cpu" or "full"; None: "full" on a CUDA GPU, else "cpu"

# %% [markdown]
# Everything below comes from `finegpt` and the libraries it builds on. `finegpt.lab` is the part that carries the
# lab from notebook to notebook: the mode, the lab folder, this notebook's sizes and its clock.

# %%
import itertools
import json
import shutil

import numpy as np
from datasets import load_dataset
from IPython.display import Markdown, display

from finegpt import lab, plots
from finegpt import memory as M
from finegpt.data import get_tokenizer, iter_documents, load_meta, prepare, read_shard
from finegpt.data.sources import FINEWEB_COLUMNS

# %% [markdown]
# The parameters cell only records what you asked for; here it becomes a decision. `settings` holds the sizes of
# this mode (how many documents, how many tokens), `paths` the lab folder that carries the shards written here on
# to notebooks 02 and 04, and `clock` the time this notebook should take, from finegpt's own model.
#
# **The lab folder** is one folder for all five notebooks: `~/finegpt-lab` on your machine, or wherever the
# environment variable `FINEGPT_HOME` points. On Colab every notebook runs in its own runtime, and a runtime's
# `/content` disk is wiped when it ends, so the lab offers to mount your Google Drive (accept the prompt) and keeps
# its files there; decline, and it says plainly that the files will vanish with the runtime.

# %%
MODE = lab.pick_mode(MODE)
settings = lab.settings(MODE, gpu=M.detected_gpu_key(default="T4"))
paths = lab.paths(MODE)
clock = lab.start("01", settings, paths)

# %% [markdown]
# Notebook 01 is the start of the lab: it needs nothing from another notebook, and writes two sets of shards into
# the lab folder.

# %%
found = lab.check(clock)

# %% [markdown]
# ## 1. What is FineWeb?
#
# FineWeb (Penedo et al., 2024, by Hugging Face) is English web text from Common Crawl's snapshots since
# 2013, filtered and deduplicated. It is published as parquet files on the Hugging Face Hub under
# `HuggingFaceFW/fineweb`, in *configs*: one per crawl (`CC-MAIN-2024-10`, ...), the whole thing
# (`default`), and random samples of fixed size. FineWeb-Edu (`HuggingFaceFW/fineweb-edu`) is the subset
# an educational-quality classifier kept. The sizes below are the dataset card's (GPT-2 tokens, parquet
# on disk); the rest of this notebook computes with them.

# %%
FINEWEB_CONFIGS = {  # config: (GPT-2 tokens, parquet bytes or None), from the dataset card
    "sample-10BT": (10e9, 27.6e9),
    "sample-100BT": (100e9, 277e9),
    "sample-350BT": (350e9, None),
    "default (all crawls)": (15e12, None),
}
LICENCE = "ODC-By 1.0 (Open Data Commons Attribution); Common Crawl's terms of use also apply"
for name, (tokens, size) in FINEWEB_CONFIGS.items():
    print(f"{name:22s} {tokens / 1e9:>8,.0f}B tokens   " + (f"{size / 1e9:6.1f} GB parquet" if size else ""))
print("columns:", ", ".join(FINEWEB_COLUMNS))
print("licence:", LICENCE)

# %% [markdown]
# The guide calls FineWeb something else. Its claim, beside the dataset card's numbers:

# %%
lab.claim("FineWeb is the 100B-token cleaned version of Common Crawl on which LLaMA, Mistral etc. were trained",
          f"FineWeb is {FINEWEB_CONFIGS['default (all crawls)'][0] / 1e12:.0f}T tokens; sample-100BT is a random "
          f"{FINEWEB_CONFIGS['sample-100BT'][0] / 1e9:.0f}B-token sample of it. FineWeb was published in 2024, "
          "after LLaMA (February 2023) and Mistral 7B (September 2023)",
          "does not hold: 100B tokens is one sample's size, not FineWeb's, and those models predate it")

# %% [markdown]
# The name matters less than the size: section 7 computes what the guide's download of the 100B-token sample
# costs on disk.

# %% [markdown]
# For a course the samples are the configs to use: each is a random draw from all the crawls, so the
# 10B-token sample reads like the whole dataset rather than like a single year of the web.

# %% [markdown]
# Every row is one web page: its `text`, an `id`, the crawl (`dump`) and `url` it came from, a `date`,
# the source WARC `file_path`, the detected `language` with its `language_score`, and `token_count`:
# its length in GPT-2 tokens. The 10B sample alone is tens of gigabytes, so we never download it
# whole: we *stream* it, reading rows as we go and stopping at a token budget.
#
# ## 2. How do we read documents without downloading the dataset?
#
# `datasets.load_dataset(..., streaming=True)` returns an iterable that fetches parquet files lazily. In full
# mode we stream the real `sample-10BT`. In cpu and smoke mode there is no network, so we first write a parquet
# file **with FineWeb's schema** from the Shakespeare plays that ship with `finegpt` (one scene per row,
# `lab.shakespeare_as_fineweb`), and stream that through exactly the same code.

# %%
tok = get_tokenizer("gpt2")
if MODE != "full":
    local = str(lab.shakespeare_as_fineweb(paths.fineweb_source))
else:
    local = settings.local_source  # None: the Hub; set by FINEGPT_FINEWEB_FILES for an offline machine
if local:
    kind = "parquet" if local.endswith(".parquet") else "json"
    stream = load_dataset(kind, data_files=local, split="train", streaming=True)
else:
    stream = load_dataset("HuggingFaceFW/fineweb", name="sample-10BT", split="train", streaming=True)
print("documents from:", local or "HuggingFaceFW/fineweb sample-10BT (the Hub)")

# %% [markdown]
# With the source chosen, the streaming line is the same in every mode: `islice` takes the first `N_DOCS` rows.
# The assert checks that the rows really have FineWeb's columns, in FineWeb's order, so everything below runs
# unchanged on the real dataset.

# %%
N_DOCS = settings.n_docs  # documents to look at: enough for a stable median, few enough to keep in a list
docs = list(itertools.islice(stream, N_DOCS))
print(f"streamed {len(docs)} documents; columns: {list(docs[0])}")
assert list(docs[0]) == list(FINEWEB_COLUMNS)

# %% [markdown]
# Nothing beyond those rows was read: `islice` stops the iterator after `N_DOCS` rows (or earlier, when the
# source has fewer), and a streaming dataset fetches only the parquet files those rows live in. `docs` is now a
# plain list of dicts.

# %% [markdown]
# Three documents, their metadata and the start of their text:

# %%
for d in docs[:3]:
    print(f"{d['url']}  ({d['dump']}, {d['token_count']} tokens, language {d['language']} {d['language_score']:.2f})")
    print("   ", d["text"][:160].replace("\n", " "), "...\n")

# %% [markdown]
# Look at `token_count`: even three neighbouring rows differ a lot in length. Section 3 measures that
# spread over all `N_DOCS` documents.

# %% [markdown]
# ## 3. How long is a document, in tokens?
#
# We tokenize the documents with GPT-2's BPE (tiktoken). FineWeb's `token_count` column is the same
# count, so it doubles as a check of our tokenizer.

# %%
lengths = [len(ids) for ids in tok.encode_batch([d["text"] for d in docs])]
assert lengths == [d["token_count"] for d in docs]  # our GPT-2 tokens agree with the token_count column
print(f"{len(lengths)} documents: median {np.median(lengths):,.0f} tokens, mean {np.mean(lengths):,.0f}, "
      f"max {max(lengths):,}")

# %% [markdown]
# Compare the mean with the median: when the mean is the larger, a few long documents pull it up. That is
# a long tail, and the histogram shows it better than three numbers do.

# %% [markdown]
# The dashed line is the median; the axis is logarithmic, so each bar covers the same *ratio* of lengths.

# %%
plots.length_histogram(lengths, title="Document lengths, GPT-2 tokens")

# %% [markdown]
# Why the lengths matter for training: `finegpt` concatenates documents into one token stream, so a long
# document spans many training windows of `block_size` tokens, and short ones share a window with their
# neighbours, separated by EOT.

# %% [markdown]
# ## 4. How many bytes of text does a token cover?
#
# The ratio tells you how much raw text a token budget means, and how big the text is on disk. It belongs to
# the text it was measured on: Shakespeare in cpu and smoke mode, FineWeb in full mode.

# %%
text_bytes = sum(len(d["text"].encode("utf-8")) for d in docs)
bytes_per_token = text_bytes / sum(lengths)
measured_on = "FineWeb" if MODE == "full" and not local else "Shakespeare's scenes, not FineWeb" if MODE != "full" else "the local files, not the Hub's FineWeb"
display(Markdown(
    f"These {len(docs)} documents hold {text_bytes / 1e6:.2f} MB of UTF-8 text in {sum(lengths):,} GPT-2 tokens: "
    f"**{bytes_per_token:.2f} bytes per token**, measured on {measured_on}."))

# %% [markdown]
# Section 7 uses this ratio only when it was measured on FineWeb itself.

# %% [markdown]
# ### Exercise 1.1 · Bytes per token, for any tokenizer
#
# Write `text_bytes_per_token(texts, tokenizer)`: the UTF-8 bytes of a list of documents divided by the
# number of tokens the tokenizer makes of them, one float for the whole list. `tokenizer` is one of
# finegpt's (`get_tokenizer("gpt2")` or `get_tokenizer("bytes")`), with `encode(text)` and
# `encode_batch(texts)`.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# Aim for Σ len(text.encode("utf-8")) / Σ len(tokenizer.encode(text)): a ratio of two totals, with bytes,
# not characters. The byte tokenizer makes one token per byte, so for it the answer is exactly 1.0.
#
# </details>

# %%
def text_bytes_per_token(texts, tokenizer):
    raise NotImplementedError  # your code here


# %% [markdown]
# Run the check. `check_bytes_per_token` compares your number with what `finegpt prepare` reports for a few
# documents in several scripts (é, 東, 🙂), and names the usual slips: characters counted instead of
# bytes, an average of per-document ratios, an EOT counted per document. While the gap is open it says so,
# and the notebook goes on with the ratio computed above. Worked solutions:
# [solutions/01_data_prep_solutions.ipynb](solutions/01_data_prep_solutions.ipynb).

# %%
from finegpt.exercises import check_bytes_per_token

check_bytes_per_token(text_bytes_per_token)

# %% [markdown]
# ## 5. How do we turn documents into training shards?
#
# Training reads tokens, not text. `finegpt.data.prepare` streams the documents, tokenizes them in
# worker processes, puts an end-of-text token (EOT, id 50256) before every document, and writes fixed-size
# *shards*: a 1 KiB header (llm.c's layout) followed by the tokens as `uint16`. The first tokens of the
# stream become the validation split. It stops exactly at the token budget (or where the source ends), and
# a rerun after a crash resumes where it stopped. These are the shards notebook 04 trains on in full mode.
# Here are the arguments this mode uses; `out` is inside the lab folder.

# %%
fineweb_args = lab.prepare_args(settings, paths, "fineweb")
fineweb_args

# %% [markdown]
# Now `prepare` does the work. A finished earlier run in the same folder (its `stats.json`) is reused in full
# mode, so that rerunning the notebook does not stream the data again, and a progress bar shows how far it has
# come; cpu and smoke mode start over, and take seconds.

# %%
out = paths.fineweb
if MODE == "full" and (out / "stats.json").exists() and (out / "meta.json").exists():
    stats = json.loads((out / "stats.json").read_text())
    print("reusing the shards an earlier run of this notebook finished")
else:
    stats = prepare(**fineweb_args, overwrite=MODE != "full", progress=MODE == "full")  # a live bar for the long one
print(f"{stats['tokens']:,} tokens from {stats['documents']:,} documents in {len(stats['shards'])} shards, "
      f"{stats['tokens_per_s']:,} tokens/s")

# %% [markdown]
# The tokens/s figure is this machine's tokenizing speed. Dividing a budget by it gives a lower bound on how long
# preparing takes here; streaming from the Hub can make it slower.

# %% [markdown]
# The directory now holds the shards and a `meta.json` that names the tokenizer and lists every shard:

# %%
meta = load_meta(out)
for s in meta["shards"]:
    print(f"{s['file']}  {s['split']:5s} {s['tokens']:>11,} tokens")
print("tokenizer:", meta["tokenizer"], "| vocab:", meta["vocab_size"], "| EOT:", meta["eot"], "| dtype:", meta["dtype"])
assert sum(s["tokens"] for s in meta["shards"]) == stats["tokens"]
if fineweb_args["tokens"]:
    assert stats["tokens"] == fineweb_args["tokens"]  # exactly the budget, not a shard more

# %% [markdown]
# Notice that the validation shard comes first, and that the last train shard is shorter than the others:
# `prepare` stops exactly at the budget, or where the source ends, instead of rounding up to a full shard.

# %% [markdown]
# ## 6. Does a shard give back exactly what went in?
#
# Read the first validation shard's header by hand, as 256 int32 numbers, and compare it with
# `read_shard`. Then cut the tokens at each EOT and decode the first documents: they must equal the
# stream's first documents, character for character, with their token counts.

# %%
first = out / meta["shards"][0]["file"]
header = np.fromfile(first, dtype=np.int32, count=256)
info, tokens = read_shard(first)
print("magic", header[0], "| version", header[1], "| tokens", header[2], "| vocab", header[3], "| EOT", header[4])
assert (header[0], header[1], header[2]) == (20240520, 1, info["num_tokens"]) and info["tokenizer"] == "gpt2"
assert first.stat().st_size == 256 * 4 + 2 * info["num_tokens"]  # header + 2 bytes per token

# %% [markdown]
# The header checks out. Now the tokens themselves: EOT marks where each document starts.

# %%
eots = np.flatnonzero(tokens == tok.eot)
assert eots[0] == 0  # every document starts with EOT
checked = 0
for start, end, doc in zip(eots[:-1], eots[1:], docs):
    assert tok.decode(tokens[start + 1:end]) == doc["text"]
    assert end - start - 1 == doc["token_count"]
    checked += 1
    if checked == 5:
        break
print(f"round trip ok: the first {checked} documents decode to the stream's text")

# %% [markdown]
# This is the check worth making before a long run: if decoding differed by a single character, the model
# would be trained on text you never meant to give it.

# %% [markdown]
# ### Exercise 1.2 · Write a shard's header
#
# Write `shard_header(num_tokens, tokenizer)`: the 256 int32 numbers (1024 bytes) that `write_shard` puts
# in front of the tokens. llm.c's first three, then finegpt's: int 0 the magic 20240520; int 1 the version,
# 1 when every id fits uint16 (vocab_size ≤ 65,536), else 2 (uint32 tokens); int 2 the token count; int 3
# the vocab size; int 4 the EOT id; int 5 the length of the tokenizer's name in bytes; ints 8..23 the name
# itself, UTF-8 (at most 64 bytes); every other int 0.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# `np.zeros(256, dtype=np.int32)` gives the zeros. `header.view(np.uint8)` sees the same memory as 1024
# bytes, so ints 8..23 are bytes 32..95. `tokenizer` has `name`, `vocab_size` and `eot`; the check also
# passes one with 100,277 tokens (OpenAI's cl100k), whose ids do not fit uint16.
#
# </details>

# %%
def shard_header(num_tokens, tokenizer):
    raise NotImplementedError  # your code here: return a np.int32 array of 256


# %% [markdown]
# The check compares your header int by int with `finegpt.data.shards.make_header` for three tokenizers,
# and recognises a wrong dtype or size, the version kept at 1 for a big vocabulary, two fields in each
# other's slots, and the name at the wrong offset.

# %%
from finegpt.exercises import check_shard_header

check_shard_header(shard_header)

# %% [markdown]
# ### Exercise 1.3 · Read a shard's tokens back
#
# Write `read_tokens(path)`: the tokens of one shard file as a 1-D NumPy array, without the header. Read
# the header first (`np.fromfile(path, dtype=np.int32, count=256)`): its version says whether the tokens
# are uint16 (1) or uint32 (2), and int 2 how many there are.

# %% [markdown]
# <details><summary>Hint: the recipe</summary>
#
# The tokens start at byte 1024, so `np.fromfile(..., offset=1024)` or `np.memmap(..., offset=1024)`
# reads them. The result must equal the ids that went in, for a version-1 and a version-2 shard.
#
# </details>

# %%
def read_tokens(path):
    raise NotImplementedError  # your code here


# %% [markdown]
# The check writes two shards with `write_shard` and compares your tokens with `read_shard`'s. It
# recognises the header read as tokens, the wrong token width, the version ignored, and signed integers
# (GPT-2's ids pass 32,767, so int16 turns them negative).

# %%
from finegpt.exercises import check_shard_reader

check_shard_reader(read_tokens)

# %% [markdown]
# ### The second set of shards: the plays, one byte per token
#
# GPT-2's 50k-token vocabulary needs a GPU to learn in reasonable time. A byte-level tokenizer (256 byte values
# plus EOT, like nanoGPT's `shakespeare_char`) lets a tiny model learn to write in minutes on a CPU. Notebook 02
# trains such a model to look inside its attention, and notebook 04 trains on these shards in cpu and smoke
# mode. The source is the plays themselves, every mode, no network.

# %%
bytes_stats = prepare(**lab.prepare_args(settings, paths, "shakespeare"), overwrite=True, progress=False)
print(f"{bytes_stats['tokens']:,} byte tokens from {bytes_stats['documents']} plays: "
      f"{bytes_stats['tokens_by_split']['train']:,} train, {bytes_stats['tokens_by_split']['val']:,} val")

# %% [markdown]
# One token per byte: how many more tokens is that than GPT-2 makes of the same plays? The cell counts both.

# %%
plays = list(iter_documents("shakespeare"))
play_bytes = sum(len(p.encode("utf-8")) for p in plays)
play_gpt2_tokens = sum(map(len, tok.encode_batch(plays)))
lab.show("byte_tokens_per_gpt2_token", play_bytes / play_gpt2_tokens, "{:.2f}")
display(Markdown(
    f"The plays' {play_bytes:,} bytes are {play_bytes:,} byte tokens (plus one EOT per play) but only "
    f"{play_gpt2_tokens:,} GPT-2 tokens: **{play_bytes / play_gpt2_tokens:.2f} times as many tokens** for the same "
    f"text, each one far easier to predict."))
assert bytes_stats["tokens"] <= play_bytes + len(plays)  # every byte once, one EOT per play, at most

# %% [markdown]
# ## 7. Should I `save_to_disk` sample-100BT, as the guide says, or stream?
#
# The guide's recipe is `load_dataset('HuggingFaceFW/fineweb', name='sample-100BT', split='train')`, then
# `ds.save_to_disk(...)`. Without `streaming=True`, `load_dataset` first downloads every parquet file into
# the Hugging Face cache, then converts them into an uncompressed Arrow copy in the same cache, and
# `save_to_disk` writes a third copy. Tokenizing it all for training adds 2 bytes per token.
#
# The Arrow copies hold the text uncompressed plus the other columns. Their size follows from FineWeb's bytes
# per token, which only full mode measures (section 4). Without it the honest figure is a lower bound: the
# uncompressed copy is at least as big as the compressed parquet it was made from.

# %%
T100, parquet_100 = FINEWEB_CONFIGS["sample-100BT"]
if MODE == "full" and not local:  # measured on FineWeb's own documents in sections 3-4
    meta_bytes_per_doc = np.mean([sum(len(str(d[c]).encode()) for c in FINEWEB_COLUMNS if c != "text") for d in docs])
    arrow_bytes = T100 * (bytes_per_token + meta_bytes_per_doc / np.mean(lengths))
    basis = f"estimated from {len(docs)} FineWeb documents measured above"
else:
    arrow_bytes = parquet_100
    basis = "a lower bound: FineWeb's bytes per token were not measured here"
guide_disk = {
    "parquet download (HF cache)": parquet_100,
    "Arrow conversion (HF cache)": arrow_bytes,
    "save_to_disk copy": arrow_bytes,
    "uint16 token shards": T100 * 2,
}
for k, v in guide_disk.items():
    print(f"{k:30s} {v / 1e9:8,.0f} GB")
print(f"{'total':30s} {sum(guide_disk.values()) / 1e9:8,.0f} GB   (Arrow copies: {basis})")

# %% [markdown]
# Neither Arrow copy is what training reads: only the token shards are. The guide's recipe, quoted, with what it
# costs:

# %%
lab.claim("load_dataset('HuggingFaceFW/fineweb', name='sample-100BT', split='train') then "
          "ds.save_to_disk('data/fineweb100B')",
          f"{'about' if MODE == 'full' and not local else 'at least'} {sum(guide_disk.values()) / 1e12:.1f} TB of "
          f"disk before training starts, of which {T100 * 2 / 1e9:,.0f} GB are the token shards training reads",
          "works, but only with terabytes free: stream the token budget you train on instead (next cell)")

# %% [markdown]
# Against that, streaming keeps nothing but the shards of the token budget you actually train on.

# %%
budget_t4 = lab.settings("full", "T4", env={}).fineweb["tokens"]  # what 01 prepares for a T4 session (04)
free_bytes = shutil.disk_usage(paths.root).free
display(Markdown(
    f"The guide's way needs {'about' if MODE == 'full' and not local else 'at least'} "
    f"**{sum(guide_disk.values()) / 1e12:.1f} TB** of disk before training starts; the lab folder's disk has "
    f"{free_bytes / 1e9:,.0f} GB free. Streaming stores only the shards: the {budget_t4 / 1e6:,.0f}M tokens 01 "
    f"prepares for a T4 session take **{2 * budget_t4 / 1e9:.2f} GB**, and even all 100B tokens would take "
    f"{2 * T100 / 1e9:,.0f} GB."))

# %% [markdown]
# ## Try it
# - Change `N_DOCS` and watch the histogram's tail: web documents have a long one.
# - Prepare the same documents with `tokenizer="bytes"`: how many more tokens, and how big are the shards?
# - Interrupt the `prepare` cell halfway (in full mode) and rerun it: it resumes from `manifest.json`.
# - In full mode, try `name="sample-10BT"` on `HuggingFaceFW/fineweb-edu` and compare bytes per token.
#
# ## Recap
# - FineWeb is filtered, deduplicated Common Crawl text, ODC-By licensed, in configs from one crawl to
#   15T tokens; stream it instead of downloading it.
# - A GPT-2 token covers a few bytes of text; the exact ratio depends on the text, so measure it on the data
#   you will train on.
# - Shards are a 256-int header plus `uint16` tokens, one EOT before each document; they round-trip exactly.
# - `save_to_disk` of sample-100BT needs terabytes; a streamed token budget needs 2 bytes per token.
# - The lab folder now holds both sets of shards for notebooks 02 and 04.

# %% [markdown]
# How long did it take? The last cell prints this notebook's time beside the estimate printed at the top, and
# writes both into the lab folder's `timings.json`.

# %%
clock.done()

# %% [markdown]
# **Next:** [02 · Model anatomy](02_model_anatomy.ipynb): what is inside the model that will read these tokens?
