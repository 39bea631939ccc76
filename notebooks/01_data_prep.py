# %% [markdown]
# # 01 · Data prep: from FineWeb documents to token shards
#
# **What you will learn**
# - what FineWeb is: its configs, sizes, columns and licence;
# - how to stream documents instead of downloading a dataset, and what they look like;
# - how long documents are in GPT-2 tokens, and how many bytes of text a token covers;
# - how `finegpt` writes token shards (with a progress bar) and how to check they round-trip;
# - what the popular guide's `save_to_disk` of sample-100BT costs in disk, against streaming a token budget.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/01_data_prep.ipynb)

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
import itertools
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import load_dataset
from IPython.display import Markdown, display

from finegpt import memory as M
from finegpt import plots
from finegpt.data import get_tokenizer, iter_documents, load_meta, prepare, read_shard
from finegpt.data.sources import FINEWEB_COLUMNS

# %% [markdown]
# The parameters cell only records what you asked for; here `None` becomes a decision. `N_DOCS` is how
# many documents sections 2–4 look at: enough for a stable median, few enough to keep in memory as a list.

# %%
if SMOKE is None:
    SMOKE = os.environ.get("FINEGPT_SMOKE") == "1" or not torch.cuda.is_available()
N_DOCS = 300 if SMOKE else 2000  # documents to look at and measure
print(f"SMOKE={SMOKE}: {'a local FineWeb-schema file made from Shakespeare, offline' if SMOKE else 'FineWeb sample-10BT, streamed'}")

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
# `datasets.load_dataset(..., streaming=True)` returns an iterable that fetches parquet files lazily.
# In smoke mode there is no network, so we first write a small parquet file **with FineWeb's schema**
# from the Shakespeare plays that ship with `finegpt` (one scene per row), and stream that through
# exactly the same code. On a GPU machine we stream the real `sample-10BT`.

# %%
tok = get_tokenizer("gpt2")
DATA = Path("data")


def shakespeare_as_fineweb(path: Path) -> Path:
    """Every scene of the 38 plays as one row with FineWeb's columns, written as parquet."""
    rows = []
    for play in iter_documents("shakespeare"):
        title = play.splitlines()[0]
        for i, scene in enumerate(re.split(r"\n(?=SCENE )", play)):
            url = f"https://shakespeare.example/{title.replace(' ', '_')}/{i}"
            rows.append({"text": scene.strip(), "id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>",
                         "dump": "shakespeare-first-folio", "url": url, "date": "1623-11-08",
                         "file_path": "local", "language": "en", "language_score": 1.0,
                         "token_count": len(tok.encode(scene.strip()))})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# %% [markdown]
# With the fixture written, the streaming line is the same in both modes: `load_dataset(..., streaming=True)`,
# then `islice` to take the first `N_DOCS` rows. The assert checks that the fixture really has FineWeb's
# columns, in FineWeb's order, so everything below runs unchanged on the real dataset.

# %%
if SMOKE:
    fixture = shakespeare_as_fineweb(DATA / "fineweb-smoke" / "shakespeare.parquet")
    stream = load_dataset("parquet", data_files=str(fixture), split="train", streaming=True)
else:
    stream = load_dataset("HuggingFaceFW/fineweb", name="sample-10BT", split="train", streaming=True)
docs = list(itertools.islice(stream, N_DOCS))
print(f"streamed {len(docs)} documents; columns: {list(docs[0])}")
assert list(docs[0]) == list(FINEWEB_COLUMNS)

# %% [markdown]
# Nothing beyond those rows was read: `islice` stops the iterator after `N_DOCS` rows, and a streaming
# dataset fetches only the parquet files those rows live in. `docs` is now a plain list of dicts.

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
assert lengths == [d["token_count"] for d in docs]  # our GPT-2 tokens agree with FineWeb's column
print(f"{len(lengths)} documents: median {np.median(lengths):,.0f} tokens, mean {np.mean(lengths):,.0f}, "
      f"max {max(lengths):,}")

# %% [markdown]
# Compare the mean with the median: when the mean is the larger, a few long documents pull it up. That is
# a long tail, and the histogram shows it better than three numbers do.

# %% [markdown]
# Most documents are a few hundred to a few thousand tokens; a few are very long. The dashed line is the median.

# %%
plots.length_histogram(lengths, title="Document lengths, GPT-2 tokens")

# %% [markdown]
# Why the lengths matter for training: `finegpt` concatenates documents into one token stream, so a long
# document spans many training windows of `block_size` tokens, and short ones share a window with their
# neighbours, separated by EOT.

# %% [markdown]
# ## 4. How many bytes of text does a token cover?
#
# The ratio tells you how much raw text a token budget means, and how big the text is on disk.

# %%
text_bytes = sum(len(d["text"].encode("utf-8")) for d in docs)
bytes_per_token = text_bytes / sum(lengths)
display(Markdown(
    f"These {len(docs)} documents hold {text_bytes / 1e6:.2f} MB of UTF-8 text in {sum(lengths):,} tokens: "
    f"**{bytes_per_token:.2f} bytes per token**. "
    + ("Shakespeare's verse, with its short lines and old spellings, packs less text per token than modern web "
       "prose does." if SMOKE else "That is typical of English web text.")))

# %% [markdown]
# Keep this ratio in mind: section 7 uses it to turn token counts into gigabytes of text.

# %% [markdown]
# ### Exercise 1.1 · Bytes per token, for any tokenizer
#
# Write `text_bytes_per_token(texts, tokenizer)`: the UTF-8 bytes of a list of documents divided by the
# number of tokens the tokenizer makes of them, one float for the whole list. `tokenizer` is one of
# finegpt's (`get_tokenizer("gpt2")` or `get_tokenizer("bytes")`), with `encode(text)` and
# `encode_batch(texts)`.

# %% [markdown]
# Aim for Σ len(text.encode("utf-8")) / Σ len(tokenizer.encode(text)): a ratio of two totals, with bytes,
# not characters. The byte tokenizer makes one token per byte, so for it the answer is exactly 1.0.

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
# stream become the validation split. It stops exactly at the token budget, and a rerun after a crash
# resumes where it stopped. On a GPU the budget is what notebook 04's plan will train on.

# %%
if SMOKE:
    source, out, budget, shard_tokens = dict(source="fineweb", data_files=str(fixture)), DATA / "fineweb-smoke" / "shards", 300_000, 100_000
else:
    GPU = M.detected_gpu_key(default="T4")  # this card's preset; the lab's T4 if it has none
    session = M.session_plan(GPU)  # the model and token budget notebook 04 trains
    source, out, budget, shard_tokens = dict(source="fineweb", name="sample-10BT"), DATA / "fineweb-10BT", session.tokens + 5_000_000, 100_000_000

# %% [markdown]
# Now `prepare` does the work. In smoke mode it runs in this process (`workers=0`) and overwrites the
# previous run; in full mode it uses every core, and a finished earlier run (its `stats.json`) is reused so
# that rerunning the notebook does not stream the data again.

# %%
if not SMOKE and (out / "stats.json").exists():  # prepared by an earlier run of this notebook
    stats = json.loads((out / "stats.json").read_text())
else:
    stats = prepare(**source, out=out, tokenizer="gpt2", tokens=budget, shard_tokens=shard_tokens,
                    val_tokens=budget // 10 if SMOKE else 5_000_000, workers=0 if SMOKE else None, overwrite=SMOKE)
print(f"{stats['tokens']:,} tokens from {stats['documents']:,} documents in {len(stats['shards'])} shards, "
      f"{stats['tokens_per_s']:,} tokens/s")

# %% [markdown]
# The tokens/s figure is this machine's tokenizing speed. Dividing a full-mode budget by it gives a lower
# bound on how long preparing takes here; streaming from the Hub can make it slower.

# %% [markdown]
# The directory now holds the shards and a `meta.json` that names the tokenizer and lists every shard:

# %%
# NBVAL_CHECK_OUTPUT
meta = load_meta(out)
for s in meta["shards"]:
    print(f"{s['file']}  {s['split']:5s} {s['tokens']:>11,} tokens")
print("tokenizer:", meta["tokenizer"], "| vocab:", meta["vocab_size"], "| EOT:", meta["eot"], "| dtype:", meta["dtype"])
assert sum(s["tokens"] for s in meta["shards"]) == budget

# %% [markdown]
# Notice that the validation shard comes first, and that the last train shard is shorter than the others:
# `prepare` stops exactly at the budget instead of rounding up to a full shard.

# %% [markdown]
# ## 6. Does a shard give back exactly what went in?
#
# Read the first validation shard's header by hand, as 256 int32 numbers, and compare it with
# `read_shard`. Then cut the tokens at each EOT and decode the first documents: they must equal the
# stream's first documents, character for character, with FineWeb's token counts.

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
stream_docs = iter_documents(**source) if SMOKE else (d["text"] for d in docs)
checked = 0
for start, end, original in zip(eots[:-1], eots[1:], stream_docs):
    assert tok.decode(tokens[start + 1:end]) == original
    assert end - start - 1 == docs[checked]["token_count"]
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
# `np.zeros(256, dtype=np.int32)` gives the zeros. `header.view(np.uint8)` sees the same memory as 1024
# bytes, so ints 8..23 are bytes 32..95. `tokenizer` has `name`, `vocab_size` and `eot`; the check also
# passes one with 100,277 tokens (OpenAI's cl100k), whose ids do not fit uint16.

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
# The tokens start at byte 1024, so `np.fromfile(..., offset=1024)` or `np.memmap(..., offset=1024)`
# reads them. The result must equal the ids that went in, for a version-1 and a version-2 shard.

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
# ## 7. Should I `save_to_disk` sample-100BT, as the guide says, or stream?
#
# The guide's recipe is `load_dataset('HuggingFaceFW/fineweb', name='sample-100BT', split='train')`, then
# `ds.save_to_disk(...)`. Without `streaming=True`, `load_dataset` first downloads every parquet file into
# the Hugging Face cache, then converts them into an uncompressed Arrow copy in the same cache, and
# `save_to_disk` writes a third copy. Tokenizing it all for training adds 2 bytes per token. With the
# text size per token measured above, and the other columns measured on our documents:

# %%
meta_bytes_per_doc = np.mean([sum(len(str(d[c]).encode()) for c in FINEWEB_COLUMNS if c != "text") for d in docs])
tokens_per_doc = np.mean(lengths)
arrow_bytes_per_token = bytes_per_token + meta_bytes_per_doc / tokens_per_doc
T100, parquet_100 = FINEWEB_CONFIGS["sample-100BT"]
guide_disk = {
    "parquet download (HF cache)": parquet_100,
    "Arrow conversion (HF cache)": T100 * arrow_bytes_per_token,
    "save_to_disk copy": T100 * arrow_bytes_per_token,
    "uint16 token shards": T100 * 2,
}
for k, v in guide_disk.items():
    print(f"{k:30s} {v / 1e9:8,.0f} GB")
print(f"{'total':30s} {sum(guide_disk.values()) / 1e9:8,.0f} GB")

# %% [markdown]
# The two Arrow copies are bigger than the parquet download because Arrow stores the text uncompressed,
# and neither is what training reads: only the token shards are.

# %% [markdown]
# Against that, streaming keeps nothing but the shards of the token budget you actually train on.

# %%
budget_full = M.session_plan("T4").tokens  # what a T4 session trains on (notebook 03)
free_bytes = shutil.disk_usage(".").free
display(Markdown(
    f"The guide's way needs about **{sum(guide_disk.values()) / 1e12:.1f} TB** of disk before training "
    f"starts; this machine has {free_bytes / 1e9:,.0f} GB free. Streaming stores only the shards: the "
    f"{budget_full / 1e6:,.0f}M tokens a T4 session trains on take **{2 * budget_full / 1e9:.1f} GB**, and even "
    f"all 100B tokens would take {2 * T100 / 1e9:,.0f} GB. At {bytes_per_token:.2f} bytes per token, "
    f"measured here, that session reads about {budget_full * bytes_per_token / 1e9:.1f} GB of text."))

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
# - A GPT-2 token covers a few bytes of English; the exact ratio sets how much text a token budget reads.
# - Shards are a 256-int header plus `uint16` tokens, one EOT before each document; they round-trip exactly.
# - `save_to_disk` of sample-100BT needs terabytes; a streamed token budget needs 2 bytes per token.
#
# **Next:** [02 · Model anatomy](02_model_anatomy.ipynb): what is inside the model that will read these tokens?
