"""Notebook 05's filtering exercises: top-k and top-p (the KV-cache step is in kv.py).

check_top_k(top_k_filter), check_top_p(top_p_filter).
References: finegpt.model.top_k_logits / top_p_logits (what sample_next uses). The reference and the
known wrong variants are computed first, on the checker's own logits; the student's code gets a copy.
"""

from __future__ import annotations

import torch

from finegpt.exercises.check import Hint, StudentRaised, checker, match, same_shape, student, tensor
from finegpt.model import top_k_logits, top_p_logits

V = 40
NEG = float("-inf")


def _logits() -> torch.Tensor:
    """(3, V): a confident row, a flat row and one in between, each at its own scale, no ties."""
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([[4.0], [0.3], [1.5]])
    return torch.randn(3, V, generator=g) * scale + torch.tensor([[10.0], [0.0], [-5.0]])


def _common(name: str, logits: torch.Tensor, want: torch.Tensor) -> list:
    """Mistakes any filter can make, as (hint, output) pairs."""
    kept = torch.isfinite(want)
    pairs = [(f"nothing was dropped: {name} keeps some tokens and sets every other logit to -inf", logits)]
    pairs += [
        (f"the dropped entries are {fill:g}, not -inf: use float('-inf'), so that they can never be sampled and "
         f"every later step sees them as gone", want.masked_fill(~kept, fill))
        for fill in (0.0, -1e9, -1e10, -1e4, -100.0)
    ]  # fmt: skip
    probs = logits.softmax(-1)
    pairs += [
        ("you returned probabilities: return the filtered logits (the sampler takes the softmax later)", p)
        for p in (want.softmax(-1), probs.masked_fill(~kept, 0.0), probs.masked_fill(~kept, NEG))
    ]
    pairs.append((f"the kept logits moved: each must stay at its token id. Mask ({name}), do not sort",
                  want.sort(-1, descending=True).values))  # fmt: skip
    return pairs


def _shared_checks(name: str, got: torch.Tensor, logits: torch.Tensor) -> None:
    """What every filter's output must be, when no known mistake matched."""
    kept = torch.isfinite(got)
    if (~kept & ~torch.isneginf(got)).any():
        raise Hint("the result holds NaN or +inf: a dropped token's logit is -inf, a kept one stays as it was")
    if ((got != logits) & kept).any():  # a kept entry that is not the original score
        r, i = (int(j) for j in ((got != logits) & kept).nonzero()[0])
        raise Hint(
            f"the kept entries must be the original logits (not probabilities, not rescaled): row {r}, token {i} "
            f"is {got[r, i].item():.5g}, its logit is {logits[r, i].item():.5g}"
        )


def _run(fn, logits: torch.Tensor, setting, name: str) -> torch.Tensor:
    got = tensor("the result", student(fn, logits, setting))
    if name == "top-k" and setting < V and got.shape == (logits.size(0), setting):
        raise Hint(
            f"you returned torch.topk's {setting} values per row, shape (B, k): return all V logits, (B, V), "
            f"with -inf where a token is dropped"
        )
    same_shape("the result", got.shape, tuple(logits.shape), "B, V")
    return got


# ---- 5.1 top-k ------------------------------------------------------------------------------------


@checker("top-k filter")
def check_top_k(top_k_filter):
    logits = _logits()
    for k in (2, 5, 1, V + 10):  # k = 2 first: below the batch of 3, so a top-k over the batch axis shows
        want, mistakes = top_k_logits(logits, k), _top_k_mistakes(logits, k)  # finegpt's, first
        try:
            got = _run(top_k_filter, logits, k, "top-k")
        except StudentRaised as e:
            if k > V:
                raise Hint(f"top_k={k} is more than the {V} tokens: keep them all (topk with min(k, V)); {e}") from e
            raise
        if torch.equal(got, want):
            continue
        match(got, mistakes)
        _shared_checks("top-k", got, logits)
        counts, need = torch.isfinite(got).sum(-1).tolist(), min(k, V)
        r, i = (int(j) for j in (got != want).nonzero()[0])
        raise Hint(
            f"with k={k} each row keeps its {need} largest logits at their places; yours kept {counts}. Row {r}, "
            f"token {i}: expected {want[r, i].item():.5g}, got {got[r, i].item():.5g}"
        )
    return "the k largest logits of each row stay where they are, the rest are -inf; k past V keeps all"


def _top_k_mistakes(logits: torch.Tensor, k: int) -> list:
    n = min(k, V)
    ranked = logits.sort(-1, descending=True).values  # (B, V)
    kth = ranked[:, [n - 1]]  # (B, 1) each row's k-th largest
    want = logits.masked_fill(logits < kth, NEG)
    pairs = []
    if n > 1:
        pairs.append((f"each row keeps {n - 1} tokens, one too few: keep the k-th largest too (drop only logits "
                      f"< it, not <=)", logits.masked_fill(logits <= kth, NEG)))  # fmt: skip
    if n < V:
        pairs.append((f"each row keeps {n + 1} tokens, one too many: keep exactly the k largest",
                      logits.masked_fill(logits < ranked[:, [n]], NEG)))  # fmt: skip
        pairs.append(("you dropped the k largest and kept the rest: drop the logits below the k-th largest",
                      logits.masked_fill(logits >= kth, NEG)))  # fmt: skip
        pairs.append(("you kept the k smallest logits: torch.topk returns the largest by default (largest=True)",
                      logits.masked_fill(logits > logits.sort(-1).values[:, [n - 1]], NEG)))  # fmt: skip
    if n < logits.size(0):
        pairs.append(("torch.topk ran over the batch axis (dim=0): take each row's top k over the vocabulary, dim=-1",
                      logits.masked_fill(logits < logits.topk(n, dim=0).values[[-1]], NEG)))  # fmt: skip
    whole = logits.flatten().sort(descending=True).values[n * logits.size(0) - 1]
    pairs.append(("the cut-off is shared by the whole batch: take each row's own top k (torch.topk over dim=-1)",
                  logits.masked_fill(logits < whole, NEG)))  # fmt: skip
    for r in range(logits.size(0)):
        pairs.append((f"every row uses row {r}'s k-th largest as its cut-off: take each row's own, "
                      f"torch.topk(logits, k).values[:, [-1]]", logits.masked_fill(logits < kth[r], NEG)))  # fmt: skip
    return _common("top-k", logits, want) + pairs


# ---- 5.2 top-p ------------------------------------------------------------------------------------


@checker("top-p filter")
def check_top_p(top_p_filter):
    logits = _logits()
    for p in (0.9, 0.5, 1e-4):
        want, mistakes = top_p_logits(logits, p), _top_p_mistakes(logits, p)  # finegpt's, first
        got = _run(top_p_filter, logits, p, "top-p")
        if torch.equal(got, want):
            continue
        match(got, mistakes)
        kept, need = torch.isfinite(got), torch.isfinite(want)
        if (~kept).all(-1).any():
            row = int((~kept).all(-1).nonzero()[0])
            raise Hint(f"row {row} lost every token: the most likely token always stays, even when it alone passes p")
        _shared_checks("top-p", got, logits)
        row, i = (int(j) for j in (kept != need).nonzero()[0])
        n, m = int(kept[row].sum()), int(need[row].sum())
        raise Hint(
            f"with p={p}, row {row} keeps {n} tokens, not the {m} most likely whose probability first reaches p "
            f"(token {i}: expected {want[row, i].item():.5g}, got {got[row, i].item():.5g}): sort by probability "
            f"(descending), add up, and cut there"
        )
    return "the smallest set of most likely tokens whose probability reaches p, at least one, in place"


def _top_p_mistakes(logits: torch.Tensor, p: float) -> list:
    s, order = torch.sort(logits, descending=True)  # (B, V)
    probs = s.softmax(-1)
    drop = probs.cumsum(-1) - probs > p  # the right cut, in sorted order

    def back(sorted_values):  # to token order, as the reference does
        return torch.full_like(logits, NEG).scatter(-1, order, sorted_values)

    want = back(s.masked_fill(drop, NEG))
    more = torch.cat([drop[:, :1], drop[:, :-1]], -1) & drop  # keeps one token past the cut
    up, up_order = torch.sort(logits)
    up_probs = up.softmax(-1)
    ascending = torch.full_like(logits, NEG).scatter(
        -1, up_order, up.masked_fill(up_probs.cumsum(-1) - up_probs > p, NEG)
    )
    token_probs = logits.softmax(-1)
    pairs = [
        ("top-p keeps one token too few: keep the token that takes the sum past p. Drop a token only when the "
         "mass before it already exceeds p (cumsum - prob > p)", back(s.masked_fill(probs.cumsum(-1) > p, NEG))),
        ("top-p keeps one token too many: stop once the sum reaches p", back(s.masked_fill(more, NEG))),
        ("you kept the least likely tokens: sort the probabilities in descending order", ascending),
        ("you added up the probabilities in token-id order: sort them (descending) first, then cut",
         logits.masked_fill(token_probs.cumsum(-1) - token_probs > p, NEG)),
        ("you put the sorted logits back with gather; undoing a sort is a scatter: "
         "torch.full_like(logits, -inf).scatter(-1, order, sorted_logits)",
         s.masked_fill(drop, NEG).gather(-1, order)),
        ("you put the mask back with gather; undoing a sort is a scatter: drop.scatter(-1, order, drop)",
         logits.masked_fill(drop.gather(-1, order), NEG)),
        ("your mask is in sorted order but you applied it to the unsorted logits: scatter the mask (or the "
         "masked sorted logits) back to token order first", logits.masked_fill(drop, NEG)),
        ("you added up the logits, not probabilities: take the softmax of the sorted logits, then cumsum",
         back(s.masked_fill(s.cumsum(-1) - s > p, NEG))),
    ]  # fmt: skip
    return _common("top-p", logits, want) + pairs
