"""Notebook 05's exercises: top-k and top-p filtering, and one decoding step with a KV cache.

check_top_k(top_k_filter), check_top_p(top_p_filter), check_kv_decode_step(decode_step).
References: finegpt.model.top_k_logits / top_p_logits (what sample_next uses) and
CausalSelfAttention's forward with a KVCache.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.exercises.check import Hint, attempt, checker, close, match, same_shape, tensor
from finegpt.model import CausalSelfAttention, KVCache, top_k_logits, top_p_logits

V = 40


def _logits() -> torch.Tensor:
    """(3, V): a confident row, a flat row and one in between, each at its own scale, no ties."""
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([[4.0], [0.3], [1.5]])
    return torch.randn(3, V, generator=g) * scale + torch.tensor([[10.0], [0.0], [-5.0]])


def _filtered(name: str, fn, logits: torch.Tensor, setting) -> torch.Tensor:
    """The student's filtered logits, after the checks every filter shares."""
    before = logits.clone()
    got = tensor("the result", attempt(fn, logits, setting))
    if not torch.equal(logits, before):
        raise Hint(
            "you changed the logits passed in (an in-place op: masked_fill_, logits[...] = ...): return a new "
            "tensor, the caller may still need the original scores"
        )
    same_shape("the result", got.shape, tuple(logits.shape), "B, V")
    kept = torch.isfinite(got)
    if (~kept & ~torch.isneginf(got)).any():
        raise Hint("the result holds NaN or +inf: a dropped token's logit is -inf, a kept one stays as it was")
    if ((got != logits) & kept).any():  # a kept entry that is not the original score
        zero = (got == 0) & (logits != 0)
        if zero.any() and torch.equal(got[~zero], logits[~zero]):
            raise Hint(
                "the dropped entries are 0, not -inf: softmax gives a logit of 0 real probability. Use float('-inf')"
            )
        if torch.equal(got[kept], logits.sort(-1, descending=True).values[kept]):
            raise Hint(f"the kept logits moved: each must stay at its token id. Mask ({name}), do not sort")
        raise Hint("the kept entries must be the original logits (not probabilities, not rescaled)")
    return got


@checker("top-k filter")
def check_top_k(top_k_filter):
    logits = _logits()
    for k in (5, 1, V + 10):
        try:
            got = _filtered("top-k", top_k_filter, logits, k)
        except RuntimeError as e:
            if k > V:
                raise Hint(f"top_k={k} is more than the {V} tokens: keep them all (topk with min(k, V))") from e
            raise
        want = top_k_logits(logits, k)
        if torch.equal(got, want):
            continue
        counts, need = torch.isfinite(got).sum(-1).tolist(), min(k, V)
        if all(c == need - 1 for c in counts):
            raise Hint(
                f"each row keeps {need - 1} tokens, one too few: keep the k-th largest too (drop only logits < it)"
            )
        if all(c == need + 1 for c in counts):
            raise Hint(f"each row keeps {need + 1} tokens, one too many: keep exactly the k largest")
        if sum(counts) == 3 * need or 0 in counts:
            raise Hint(
                f"rows keep {counts} tokens: the cut-off is shared by the whole batch. Take each row's own top "
                f"k (torch.topk over dim=-1)"
            )
        raise Hint(f"with k={k} each row keeps its {need} largest logits; yours kept {counts}")
    return "the k largest logits of each row stay where they are, the rest are -inf; k past V keeps all"


@checker("top-p filter")
def check_top_p(top_p_filter):
    logits = _logits()
    for p in (0.9, 0.5, 1e-4):
        got, want = _filtered("top-p", top_p_filter, logits, p), top_p_logits(logits, p)
        if torch.equal(got, want):
            continue
        kept, need = torch.isfinite(got), torch.isfinite(want)
        probs = logits.softmax(-1)  # (B, V)
        if (~kept).all(-1).any():
            row = int((~kept).all(-1).nonzero()[0])
            raise Hint(f"row {row} lost every token: the most likely token always stays, even when it alone passes p")
        if torch.equal(kept, probs.cumsum(-1) - probs <= p):
            raise Hint("you added up the probabilities in token-id order: sort them (descending) first, then cut")
        for row in range(logits.size(0)):
            if torch.equal(kept[row], need[row]):
                continue
            n, m = int(kept[row].sum()), int(need[row].sum())
            if n == m - 1 and (kept[row] <= need[row]).all():
                raise Hint(
                    f"top-p={p} keeps one token too few (row {row}: {n}, not {m}): keep the token that takes the "
                    f"sum past p. Drop a token only when the mass before it already exceeds p (cumsum - prob > p)"
                )
            if n == m + 1 and (need[row] <= kept[row]).all():
                raise Hint(f"top-p={p} keeps one token too many (row {row}: {n}, not {m}): stop once the sum reaches p")
            if kept[row, probs[row].argmin()]:
                raise Hint("you kept the least likely tokens: sort the probabilities in descending order")
            raise Hint(
                f"row {row} keeps {n} tokens, not the {m} most likely whose probability first reaches {p}: sort "
                f"by probability (descending), add up, and cut there"
            )
    return "the smallest set of most likely tokens whose probability reaches p, at least one, in place"


# ---- 5.3 one decoding step with a KV cache --------------------------------------------------------

CFG = ModelConfig(n_layer=1, n_head=4, n_embd=32, block_size=16, vocab_size=64, bias=True)
B, P = 2, 5  # batch, tokens already in the cache
H, HS, C = 4, 8, 32


@checker("KV-cache decoding step")
def check_kv_decode_step(decode_step):
    torch.manual_seed(0)
    attn = CausalSelfAttention(CFG).eval()
    x = torch.randn(B, P + 1, C, generator=torch.Generator().manual_seed(1))  # (B, P+1, C)
    cache = KVCache(B, H, CFG.block_size, HS, "cpu", torch.float32)
    with torch.no_grad():
        attn(x[:, :P], cache)  # the prompt fills slots 0..P-1
        past_k, past_v = cache.k[:, :, :P].clone(), cache.v[:, :, :P].clone()  # (B, H, P, hs)
        want_y = attn(x[:, P:], cache)  # (B, 1, C): the reference step writes slot P
        out = attempt(decode_step, attn, x[:, P:].clone(), past_k.clone(), past_v.clone())
        if not (isinstance(out, tuple) and len(out) == 3):
            raise Hint("return (y, k, v): the output (B, 1, C) and the keys and values grown by one position")
        y, k, v = (tensor(name, t) for name, t in zip(("y", "k", "v"), out))
        q_new, k_new, v_new = (t.view(B, 1, H, HS).transpose(1, 2) for t in attn.c_attn(x[:, P:]).split(C, dim=2))
        _cache_mistake(k, past_k, k_new, "k")
        _cache_mistake(v, past_v, v_new, "v")
        if y.shape == (B, H, 1, HS):
            raise Hint(f"y is still split into heads {tuple(y.shape)}: merge them to (B, 1, C) and apply attn.c_proj")
        same_shape("y", y.shape, (B, 1, C), "B, 1, C")
        if close(y, want_y):
            return "the new key and value appended at position P, one query over all P + 1 keys: equal to the module"
        merge = lambda heads: attn.c_proj(heads.transpose(1, 2).reshape(B, 1, C))  # noqa: E731
        keys, values = torch.cat([past_k, k_new], 2), torch.cat([past_v, v_new], 2)
        match(
            y,
            {
                "is_causal=True with a single query lets it see only the first key (the mask is aligned to the "
                "top left): the new token may see every cached key, so use is_causal=False": merge(
                    F.scaled_dot_product_attention(q_new, keys, values, is_causal=True)
                ),
                "the query only attends to its own key: attend over all P + 1 keys (the cache plus the new one)": merge(
                    F.scaled_dot_product_attention(q_new, k_new, v_new)
                ),
                "the query attends to the cached keys but not its own: attend over k and v after appending": merge(
                    F.scaled_dot_product_attention(q_new, past_k, past_v)
                ),
                "the heads' output still needs attn.c_proj": F.scaled_dot_product_attention(q_new, keys, values)
                .transpose(1, 2)
                .reshape(B, 1, C),
            },
        )
        raise Hint(f"y differs from the module's own cached step by up to {(y - want_y).abs().max():.3g}")


def _cache_mistake(got: torch.Tensor, past: torch.Tensor, new: torch.Tensor, name: str) -> None:
    if got.shape == past.shape:
        raise Hint(
            f"{name} has {P} positions, the cache's old length: append the new token's {name} along time, "
            f"torch.cat([past_{name}, {name}_new], dim=2)"
        )
    same_shape(name, got.shape, (B, H, P + 1, HS), "B, H, T, hs")
    if torch.allclose(got[:, :, :1], new, atol=1e-6) and torch.allclose(got[:, :, 1:], past, atol=1e-6):
        raise Hint(f"the new {name} went in front; it belongs at the end, position {P}: cat([past, new], dim=2)")
    if not torch.allclose(got[:, :, :P], past, atol=1e-6):
        raise Hint(f"the cached {name} changed: positions 0..{P - 1} must stay as they were")
    if not torch.allclose(got[:, :, P:], new, atol=1e-6):
        raise Hint(
            f"{name}[:, :, -1] is not the new token's {name}: split attn.c_attn(x) into q, k, v and each into "
            f"heads, (B, 1, C) -> (B, H, 1, hs)"
        )
