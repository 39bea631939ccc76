"""Measurements that show a lesson happened: the plays as FineWeb-schema rows (01), every head's
attention and what it looks at (02), and how many of a sample's words are real words (05). Which training
tokens a run reads, and how often (04), is finegpt.data's measure_coverage / coverage_table.

Entry points: shakespeare_as_fineweb, attention_weights, head_scores, shard_text, corpus_words, real_word_share.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np

WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")


# ---- 01: the embedded plays with FineWeb's columns ---------------------------------------------


def shakespeare_as_fineweb(path: str | Path) -> Path:
    """Every scene of the 38 plays as one row with FineWeb's nine columns, written as parquet.
    token_count is the scene's GPT-2 token count, as FineWeb's column is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finegpt.data import get_tokenizer, iter_documents

    tok = get_tokenizer("gpt2")
    rows = []
    for play in iter_documents("shakespeare"):
        title = play.splitlines()[0]
        scenes = [s.strip() for s in re.split(r"\n(?=SCENE )", play)]
        for i, (scene, n) in enumerate(zip(scenes, map(len, tok.encode_batch(scenes)))):
            url = f"https://shakespeare.example/{title.replace(' ', '_')}/{i}"
            rows.append(
                {
                    "text": scene,
                    "id": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>",
                    "dump": "shakespeare-first-folio",
                    "url": url,
                    "date": "1623-11-08",
                    "file_path": "local",
                    "language": "en",
                    "language_score": 1.0,
                    "token_count": n,
                }
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)
    return path


# ---- 02: attention, every layer and head -------------------------------------------------------


def attention_weights(model, idx):
    """softmax(q k^T / sqrt(d)) with the causal mask for every block and head: (L, H, T, T) on the CPU.
    Computed by hand from each block's input, as notebook 02 does for one head."""
    import torch

    inputs = []
    hooks = [b.ln_1.register_forward_hook(lambda m, i, o: inputs.append(o)) for b in model.transformer.h]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for h in hooks:
            h.remove()
    T = idx.size(1)
    future = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
    maps = []
    with torch.no_grad():
        for block, x in zip(model.transformer.h, inputs):  # x: (1, T, C), the block's normed input
            a = block.attn
            hs = a.n_embd // a.n_head
            q, k, _ = a.c_attn(x).split(a.n_embd, dim=2)  # (1, T, C) each
            q, k = (t.view(1, T, a.n_head, hs).transpose(1, 2) for t in (q, k))  # (1, H, T, hs)
            scores = (q @ k.transpose(-2, -1) / hs**0.5).masked_fill(future, float("-inf"))  # (1, H, T, T)
            maps.append(scores.softmax(-1)[0].float().cpu())
    return torch.stack(maps).numpy()  # (L, H, T, T)


def head_scores(weights: np.ndarray, is_marked: list[bool]) -> dict[str, np.ndarray]:
    """What each head looks at, as the mean attention over query positions 1..T-1, and what a head
    that spreads evenly over what it can see would score (chance):
    'previous token': weight on position i-1; 'marked tokens': total weight on the marked positions
    (e.g. newlines). weights: (L, H, T, T); returns arrays (L, H) and the two chance levels."""
    T = weights.shape[-1]
    rows = np.arange(1, T)
    marked = np.asarray(is_marked, dtype=bool)
    prev = weights[..., rows, rows - 1].mean(-1)
    on_marked = (weights[..., rows, :] * marked).sum(-1).mean(-1)
    visible = np.tril(np.ones((T, T)))[rows] / (rows + 1)[:, None]  # uniform over the i + 1 visible tokens
    return {
        "previous token": prev,
        "marked tokens": on_marked,
        "chance: previous token": float(visible[np.arange(T - 1), rows - 1].mean()),
        "chance: marked tokens": float((visible * marked).sum(-1).mean()),
    }


# ---- 05: real words ----------------------------------------------------------------------------


def shard_text(data_dir: str | Path, split: str = "train", max_tokens: int = 5_000_000) -> str:
    """The first max_tokens tokens of a split of prepared shards, decoded to text (EOTs become line breaks)."""
    from finegpt.data import get_tokenizer, load_meta, read_shard

    meta = load_meta(data_dir)
    parts = [read_shard(Path(data_dir) / s["file"])[1] for s in meta["shards"] if s["split"] == split]
    ids = np.concatenate(parts)[:max_tokens]
    if meta["tokenizer"] == "bytes":  # one byte per token: decode all at once instead of token by token
        return bytes(np.where(ids == meta["eot"], 10, ids).astype(np.uint8)).decode("utf-8", errors="replace")
    tok = get_tokenizer(meta["tokenizer"])
    return tok.decode(np.where(ids == meta["eot"], tok.encode("\n")[0], ids).tolist())


def corpus_words(text: str) -> set[str]:
    """The lower-cased words of a text: the word list a sample is checked against."""
    return {w.lower() for w in WORD.findall(text)}


def real_word_share(sample: str, words: set[str], min_letters: int = 2) -> float:
    """The share of a sample's words (letters, inner apostrophes) that are in `words`; 0 for none.
    Words shorter than min_letters are not counted: random characters make 'a', 'I' and 'O' by chance."""
    found = [w.lower() for w in WORD.findall(sample) if len(w) >= min_letters]
    return sum(w in words for w in found) / len(found) if found else 0.0
