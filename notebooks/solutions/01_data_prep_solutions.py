# %% [markdown]
# # 01 · Data prep: solutions
#
# Worked solutions to the three exercises of [01 · Data prep](../01_data_prep.ipynb). Try each one there
# first: its check cell runs your function against finegpt's own code and names the mistake it finds.
# Each solution below is followed by the same check, which prints ✓.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/solutions/01_data_prep_solutions.ipynb)

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
import numpy as np

from finegpt.data.shards import MAGIC

# %% [markdown]
# ## Exercise 1.1 · Bytes per token
#
# Why it is written this way: the ratio of two totals, so a long document counts in proportion to its
# length (an average of per-document ratios would let a three-token line weigh as much as a whole
# page), and bytes are UTF-8 bytes, `len(text.encode("utf-8"))`, because that is what the text costs
# on disk; `len(text)` counts characters, and é, 東 or 🙂 are several bytes each.

# %%
def text_bytes_per_token(texts, tokenizer):
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    tokens = sum(len(ids) for ids in tokenizer.encode_batch(texts))
    return text_bytes / tokens


# %%
from finegpt.exercises import check_bytes_per_token

check_bytes_per_token(text_bytes_per_token)

# %% [markdown]
# ## Exercise 1.2 · A shard's header
#
# Why it is written this way: a zeroed int32 array of 256 is exactly llm.c's 1024-byte header, so the
# unused ints are already 0. The version follows from the largest id: a vocabulary of at most 65,536
# tokens fits uint16 (version 1), a bigger one needs uint32 (version 2). The name goes in as raw UTF-8
# bytes through a uint8 view of the same memory, starting at int 8 (byte 32).

# %%
def shard_header(num_tokens, tokenizer):
    header = np.zeros(256, dtype=np.int32)
    header[0] = MAGIC  # 20240520, llm.c's
    header[1] = 1 if tokenizer.vocab_size <= 2**16 else 2  # 1: uint16 tokens, 2: uint32
    header[2] = num_tokens
    header[3] = tokenizer.vocab_size
    header[4] = tokenizer.eot
    name = tokenizer.name.encode("utf-8")[:64]
    header[5] = len(name)
    header.view(np.uint8)[32 : 32 + len(name)] = np.frombuffer(name, dtype=np.uint8)  # ints 8..23
    return header


# %%
from finegpt.exercises import check_shard_header

check_shard_header(shard_header)

# %% [markdown]
# ## Exercise 1.3 · Reading a shard's tokens
#
# Why it is written this way: the header says how to read the rest, so it is read first (256 int32),
# and its version picks the token dtype; `offset=1024` skips it. `np.memmap` would do the same without
# reading the file into memory, which is what finegpt's loader does for multi-gigabyte shards.

# %%
def read_tokens(path):
    header = np.fromfile(path, dtype=np.int32, count=256)
    dtype = np.uint16 if header[1] == 1 else np.uint32
    return np.fromfile(path, dtype=dtype, count=header[2], offset=1024)


# %%
from finegpt.exercises import check_shard_reader

check_shard_reader(read_tokens)

# %% [markdown]
# Back to [01 · Data prep](../01_data_prep.ipynb), or on to the
# [02 solutions](02_model_anatomy_solutions.ipynb).
