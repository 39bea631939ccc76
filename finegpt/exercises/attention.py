"""Notebook 02's last exercise: causal self-attention from q, k, v.

check_causal_attention(fn). Reference: the F.scaled_dot_product_attention(is_causal=True) call that
finegpt.model's CausalSelfAttention makes. The known wrong variants (a scale by the √ of the wrong size,
a softmax over the wrong axis, the mask misplaced) are computed on the same q, k, v first.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from finegpt.exercises.check import Hint, checker, close, differ_at, match, same_shape, student, tensor

B, H, TA, HS = 2, 3, 7, 16  # batch, heads, tokens, head size: all different, so a wrong axis shows
C = H * HS  # the model width, 48


@checker("causal self-attention")
def check_causal_attention(attention):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, TA, HS, generator=g) for _ in range(3))  # (B, H, T, hs)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # finegpt's, first
    mistakes = _mistakes(q, k, v)
    y = tensor("y", student(attention, q, k, v))
    if y.shape == (B, H, TA, TA):
        raise Hint("you returned the attention weights (B, H, T, T): the output is weights @ v, (B, H, T, hs)")
    same_shape("y", y.shape, (B, H, TA, HS), "B, H, T, hs")
    if close(y, want):
        return "matches F.scaled_dot_product_attention(is_causal=True), and no position sees its future"
    match(y, mistakes)
    if torch.isnan(y).any():
        t = int(torch.isnan(y).any(-1).nonzero()[0, 2])
        raise Hint(
            f"position {t}'s output is NaN: it may see no key at all. The mask hides only the future "
            f"(key j > query i); a token always sees itself"
        )
    _future_leak(attention, q, k, v, y)
    raise Hint(differ_at("y", y, want, " (y = softmax(q·kᵀ/√hs, future masked)·v, for q, k, v of shape (2, 3, 7, 16))"))


def _mistakes(q, k, v) -> list[tuple[str, torch.Tensor]]:
    s = q @ k.transpose(-2, -1)  # (B, H, T, T) raw scores
    future = torch.ones(TA, TA, dtype=torch.bool).triu(1)  # key j > query i
    past = torch.ones(TA, TA, dtype=torch.bool).tril(-1)
    diagonal_too = torch.ones(TA, TA, dtype=torch.bool).triu(0)

    def att(scores, mask=future, dim=-1, fill=float("-inf"), values=v):
        return scores.masked_fill(mask, fill).softmax(dim) @ values

    rt = math.sqrt(HS)
    mistakes = {
        "no causal mask: position 0 attends to positions 1..6, its future. Set the scores above the diagonal "
        "to -inf before the softmax (or is_causal=True)": (s / rt).softmax(-1) @ v,
        f"the scores are not scaled: divide q·kᵀ by √hs = {rt:g} before the softmax, or it saturates as hs grows": att(
            s
        ),
        f"you divided by hs = {HS}; the scale is 1/√hs = 1/{rt:g}": att(s / HS),
        f"you multiplied by √hs; divide by it: q·kᵀ / {rt:g}": att(s * rt),
        f"you scaled by √T = √{TA}, the number of tokens: the scale is √hs, the head size k.size(-1) = {HS}": att(
            s / math.sqrt(TA)
        ),
        f"you scaled by √n_head = √{H}: the scale is √hs, the head size k.size(-1) = {HS}": att(s / math.sqrt(H)),
        f"you scaled by √B = √{B}, the batch size: the scale is √hs, the head size k.size(-1) = {HS}": att(
            s / math.sqrt(B)
        ),
        f"you scaled by √C = √{C}, the model width (n_head · hs): the scale is √hs, the head size k.size(-1) = "
        f"{HS}": att(s / math.sqrt(C)),
        "the mask is applied after the softmax: each row then sums to less than 1. Set the future scores to -inf "
        "first, then take the softmax": (s / rt).softmax(-1).masked_fill(future, 0) @ v,
        "the future scores are set to 0, not -inf: a score of 0 still gets weight e⁰ = 1 in the softmax. Fill "
        "with float('-inf')": att(s / rt, fill=0.0),
        "the softmax runs over the queries (dim=-2): each query's weights over the keys must sum to 1, "
        "softmax(dim=-1)": att(s / rt, dim=-2),
        "the mask hides the past and shows the future: the future is key j > query i, torch.ones(T, T).triu(1)": att(
            s / rt, mask=past
        ),
        "the mask also hides the diagonal, so position 0 sees nothing: a token sees itself, triu(1), not triu(0)": (
            att(s / rt, mask=diagonal_too)
        ),
        "the scores are k·qᵀ, transposed: q @ k.transpose(-2, -1) puts each query on a row": att(
            (k @ q.transpose(-2, -1)) / rt
        ),
        "you multiplied the weights by k: the output is weights @ v": att(s / rt, values=k),
        "there is no softmax: the weights are softmax(scores, dim=-1), with the future at -inf before it": (
            (s / rt).masked_fill(future, 0.0) @ v
        ),
    }
    pairs = list(mistakes.items())
    for dim, axis in ((1, f"heads (dim=1, size {H})"), (0, f"batch (dim=0, size {B})")):
        hint = f"the softmax runs over the {axis}: the weights must sum to 1 over the keys, softmax(dim=-1)"
        pairs += [(hint, att(s / rt, dim=dim, fill=fill)) for fill in (float("-inf"), -1e9, -1e4)]
    return pairs


def _future_leak(attention, q, k, v, y) -> None:
    """Change the value at position j: no output before j may move. (Only the value: a softmax taken
    before masking also reads future keys, through its denominator, and has a hint of its own.)"""
    for j in range(1, TA):
        v2 = v.clone()
        v2[:, :, j] += 1.0
        y2 = tensor("y", student(attention, q, k, v2))
        same_shape("y", y2.shape, (B, H, TA, HS), "B, H, T, hs")
        moved = (y2[:, :, :j] - y[:, :, :j]).abs().amax(dim=(0, 1, 3)) > 1e-6  # (j,)
        if moved.any():
            i = int(moved.nonzero()[0])
            raise Hint(
                f"position {i} attends to position {j}: a token must not see the future. Set the scores "
                f"above the diagonal to -inf before the softmax (or is_causal=True)"
            )
