"""Notebook 05's checkers: each typical mistake, written as a student would, gets a hint naming it,
gather where scatter belongs included."""

import math

import pytest
import torch
from torch.nn import functional as F

from finegpt import exercises as ex
from tests.exercise_support import assert_hint, ids

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

NEG = -math.inf

# ---- 5.1 top-k ------------------------------------------------------------------------------------


def _kth(logits, k):
    return torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]]  # (B, 1)


def _top_k_whole_batch(logits, k):
    kth = torch.topk(logits.flatten(), min(k, logits.size(-1)) * logits.size(0)).values[-1]
    return logits.masked_fill(logits < kth, NEG)


def _top_k_sorted(logits, k):
    values = logits.sort(-1, descending=True).values
    values[:, min(k, logits.size(-1)) :] = NEG
    return values


TOP_K = [
    (lambda logits, k: logits.masked_fill(logits <= _kth(logits, k), NEG), "one too few: keep the k-th largest too"),
    (lambda logits, k: logits.masked_fill(logits < _kth(logits, k), 0.0), "the dropped entries are 0, not -inf"),
    (lambda logits, k: logits.masked_fill(logits < _kth(logits, k), -1e9), "the dropped entries are -1e+09"),
    (_top_k_whole_batch, "the cut-off is shared by the whole batch"),
    (lambda logits, k: logits.masked_fill(logits < logits.topk(min(k, 3), dim=0).values[[-1]], NEG), "dim=0"),
    (_top_k_sorted, "the kept logits moved"),
    (lambda logits, k: logits.masked_fill(logits < torch.topk(logits, k).values[:, [-1]], NEG), "is more than the 40"),
    (lambda logits, k: torch.topk(logits, min(k, logits.size(-1))).values, "you returned torch.topk's 2 values"),
    (lambda logits, k: logits.masked_fill(logits >= _kth(logits, k), NEG), "you dropped the k largest"),
    (lambda logits, k: logits.masked_fill(logits < _kth(logits, k), NEG).softmax(-1), "you returned probabilities"),
    (lambda logits, k: logits.masked_fill(logits < _kth(logits, k)[-1], NEG), "every row uses row 2's k-th largest"),
    (
        lambda logits, k: logits.masked_fill(
            logits > torch.topk(logits, min(k, 40), largest=False).values[:, [-1]], NEG
        ),
        "you kept the k smallest logits",
    ),
]


@pytest.mark.parametrize("answer,hint", TOP_K, ids=ids(TOP_K))
def test_top_k_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_top_k, answer, hint)


# ---- 5.2 top-p ------------------------------------------------------------------------------------


def _top_p(cut="right", descending=True, back="scatter", probs_out=False, on="probs"):
    def top_p_filter(logits, p):
        s, order = torch.sort(logits, descending=descending)
        probs = s.softmax(-1) if on == "probs" else s
        drop = probs.cumsum(-1) > p if cut == "crossing dropped" else probs.cumsum(-1) - probs > p
        if back in ("none", "gather mask"):
            return logits.masked_fill(drop.gather(-1, order) if back == "gather mask" else drop, NEG)
        kept = (s.softmax(-1) if probs_out else s).masked_fill(drop, NEG)
        if back == "gather":
            return kept.gather(-1, order)
        return torch.full_like(logits, NEG).scatter(-1, order, kept)

    return top_p_filter


def _top_p_token_order(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs > p, NEG)


TOP_P = [
    (_top_p(cut="crossing dropped"), "keeps one token too few"),
    (_top_p(descending=False), "you kept the least likely tokens"),
    (_top_p_token_order, "you added up the probabilities in token-id order"),
    (_top_p(back="gather"), "you put the sorted logits back with gather; undoing a sort is a scatter"),
    (_top_p(back="gather mask"), "you put the mask back with gather; undoing a sort is a scatter"),
    (_top_p(back="none"), "your mask is in sorted order but you applied it to the unsorted logits"),
    (_top_p(on="logits"), "you added up the logits, not probabilities"),
    (_top_p(probs_out=True), "you returned probabilities"),
]


@pytest.mark.parametrize("answer,hint", TOP_P, ids=ids(TOP_P))
def test_top_p_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_top_p, answer, hint)


# ---- 5.3 one decoding step with a KV cache --------------------------------------------------------


def _decode(causal=False, append=True, front=False, merge=True, order="qkv", attend="all", swap=False, scale=None):
    def decode_step(attn, x, past_k, past_v):
        B, _, C = x.shape
        parts = dict(zip(order, attn.c_attn(x).split(C, dim=2)))
        q, k_new, v_new = (parts[n].view(B, 1, attn.n_head, -1).transpose(1, 2) for n in "qkv")
        if append:
            k, v = (
                torch.cat((new, past), 2) if front else torch.cat((past, new), 2)
                for past, new in ((past_k, k_new), (past_v, v_new))
            )
        else:
            k, v = past_k, past_v
        keys, values = {"all": (k, v), "own": (k_new, v_new)}[attend]
        if swap:
            keys, values = values, keys
        if scale is None:
            y = F.scaled_dot_product_attention(q, keys, values, is_causal=causal)
        else:
            y = (q @ keys.transpose(-2, -1) / scale).softmax(-1) @ values
        return (attn.c_proj(y.transpose(1, 2).reshape(B, 1, C)) if merge else y), k, v

    return decode_step


KV = [
    (_decode(causal=True), "is_causal=True with a single query lets it see only the first key"),
    (_decode(append=False), "k has 5 positions, the cache's old length"),
    (_decode(front=True), "the new k went in front"),
    (_decode(merge=False), "y is still split into heads"),
    (_decode(order="qvk"), "your new k is the new v: c_attn's output splits as q, k, v"),
    (_decode(attend="own"), "the query only attends to its own key"),
    (_decode(swap=True), "k and v are swapped in the attention"),
    (_decode(scale=1.0), "the scores are not scaled"),
    (_decode(scale=math.sqrt(32)), "you scaled by √C = √32"),
]


@pytest.mark.parametrize("answer,hint", KV, ids=ids(KV))
def test_kv_decode_step_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_kv_decode_step, answer, hint)
