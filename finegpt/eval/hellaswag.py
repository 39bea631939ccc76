"""HellaSwag, completion style (as build-nanogpt and llm.c score it): which of 4 endings does the model
find most likely after the context?

Entry point: hellaswag(model, tokenizer, path="val", ...) -> {'acc', 'acc_norm', 'examples', ...}.
acc picks the ending with the highest summed log-likelihood; acc_norm the highest per-token mean.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import torch
from torch.nn import functional as F

from finegpt.errors import bad
from finegpt.eval.loss import autocast_for
from finegpt.progress import progress

URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_{split}.jsonl"


def cache_dir() -> Path:
    return Path(os.environ.get("FINEGPT_CACHE", Path.home() / ".cache" / "finegpt")) / "hellaswag"


def resolve(path: str | Path) -> Path:
    """'val' / 'train' / 'test': the official file, downloaded once into the cache. Anything else: a local path."""
    if str(path) in ("train", "val", "test"):
        local = cache_dir() / f"hellaswag_{path}.jsonl"
        if not local.is_file():
            url = URL.format(split=path)
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".tmp")
            try:
                urllib.request.urlretrieve(url, tmp)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise bad(
                    "hellaswag",
                    str(path),
                    f"could not download {url} ({e})",
                    "Download it when online and pass the file's path",
                ) from e
            os.replace(tmp, local)
        return local
    local = Path(path)
    if not local.is_file():
        raise bad(
            "hellaswag",
            str(path),
            "no such file",
            f"Pass the path of a HellaSwag jsonl (e.g. {URL.format(split='val')}), or 'val' to download it",
        )
    return local


def load_examples(path: Path, limit: int | None = None) -> list[dict]:
    examples = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
                examples.append({"ctx": ex["ctx"], "endings": list(ex["endings"]), "label": int(ex["label"])})
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise bad(
                    "hellaswag",
                    f"{path}:{n}",
                    "is not a HellaSwag example (needs ctx, endings, label)",
                    "Use the official jsonl format",
                ) from e
            if limit is not None and len(examples) == limit:
                break
    return examples


def render(example: dict, tokenizer, block_size: int) -> list[tuple[list[int], int]]:
    """Per ending: (context + ' ' + ending tokens, number of ending tokens). Too long: cut from the left."""
    ctx = tokenizer.encode(example["ctx"])
    rows = []
    for ending in example["endings"]:
        end = tokenizer.encode(" " + ending)  # GPT-2 BPE folds the space into the ending's first token
        rows.append(((ctx + end)[-block_size:], min(len(end), block_size - 1)))
    return rows


@torch.no_grad()
def score_rows(model, rows: list[tuple[list[int], int]], vocab_size: int) -> list[tuple[float, int]]:
    """(summed log-likelihood of the ending, its token count) for each row, in one padded batch."""
    device = next(model.parameters()).device
    T = max(len(ids) for ids, _ in rows)
    idx = torch.zeros(len(rows), T, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)  # True where a target is an ending token
    for r, (ids, n_end) in enumerate(rows):
        idx[r, : len(ids)] = torch.tensor(ids)
        mask[r, len(ids) - n_end : len(ids)] = True  # right padding: causal attention never sees it
    idx, mask = idx.to(device), mask.to(device)
    with autocast_for(device):
        logits, _ = model(idx)  # (R, T, V)
    logp = F.log_softmax(logits[:, :-1, :vocab_size].float(), dim=-1)  # (R, T-1, V): predicts idx[:, 1:]
    target_logp = logp.gather(-1, idx[:, 1:, None]).squeeze(-1)  # (R, T-1)
    m = mask[:, 1:]
    sums = (target_logp * m).sum(dim=1)
    return [(s, int(n)) for s, n in zip(sums.tolist(), m.sum(dim=1).tolist())]


def hellaswag(
    model, tokenizer, path: str | Path = "val", limit: int | None = None, batch_size: int = 8, details: bool = False
) -> dict:
    """Accuracy over the examples of `path` (first `limit` only if given), batch_size examples
    (4 x batch_size rows) per forward pass. details=True adds per-example scores and picks."""
    examples = load_examples(resolve(path), limit)
    if not examples:
        raise bad("hellaswag", str(path), "holds no examples", "Use the official HellaSwag jsonl")
    was_training = model.training
    model.eval()
    out, correct, correct_norm = [], 0, 0
    bar = progress(len(examples), "hellaswag", "ex")
    try:
        for first in range(0, len(examples), batch_size):
            chunk = examples[first : first + batch_size]
            rows = [row for ex in chunk for row in render(ex, tokenizer, model.config.block_size)]
            scores = score_rows(model, rows, tokenizer.vocab_size)
            at = 0
            for ex in chunk:
                mine, at = scores[at : at + len(ex["endings"])], at + len(ex["endings"])
                sums = [s for s, _ in mine]
                means = [s / n for s, n in mine]
                pred, pred_norm = sums.index(max(sums)), means.index(max(means))
                correct += pred == ex["label"]
                correct_norm += pred_norm == ex["label"]
                out.append(
                    {
                        "label": ex["label"],
                        "sum_logprob": sums,
                        "mean_logprob": means,
                        "pred": pred,
                        "pred_norm": pred_norm,
                    }
                )
            bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
    result = {
        "examples": len(examples),
        "acc": correct / len(examples),
        "acc_norm": correct_norm / len(examples),
        "correct": correct,
        "correct_norm": correct_norm,
    }
    if details:
        result["details"] = out
    return result
