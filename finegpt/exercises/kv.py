"""Notebook 05's KV-cache exercise: one decoding step of an attention layer with cached keys and values.

check_kv_decode_step(decode_step). Reference: CausalSelfAttention's forward with a KVCache, run first;
the known wrong variants (a causal mask on one query, the new key missing or in front, the heads not
merged, a softmax over the query axis) are computed on the same inputs.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.exercises.check import Hint, checker, close, differ_at, kind, match, same_shape, student, tensor
from finegpt.model import CausalSelfAttention, KVCache

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
        want_y = attn(x[:, P:], cache)  # (B, 1, C): finegpt's step, first; it writes slot P
        new = [t.view(B, 1, H, HS).transpose(1, 2) for t in attn.c_attn(x[:, P:]).split(C, dim=2)]  # q, k, v
        mistakes = _mistakes(attn, *new, past_k, past_v)
        out = student(decode_step, attn, x[:, P:], past_k, past_v)
    if isinstance(out, list) and len(out) == 3:
        out = tuple(out)
    if not (isinstance(out, tuple) and len(out) == 3):
        raise Hint(f"return (y, k, v): the output (B, 1, C) and the keys and values grown by one position; got "
                   f"{kind(out)}{f' of {len(out)}' if isinstance(out, tuple) else ''}")  # fmt: skip
    y, k, v = (tensor(name, t) for name, t in zip(("y", "k", "v"), out))
    q_new, k_new, v_new = new
    _cache_mistake(k, past_k, k_new, v_new, "k")
    _cache_mistake(v, past_v, v_new, k_new, "v")
    if y.shape == (B, H, 1, HS):
        raise Hint(f"y is still split into heads {tuple(y.shape)}: merge them to (B, 1, C) and apply attn.c_proj")
    same_shape("y", y.shape, (B, 1, C), "B, 1, C")
    if close(y, want_y):
        return "the new key and value appended at position P, one query over all P + 1 keys: equal to the module"
    match(y, mistakes)
    raise Hint(differ_at("y", y, want_y, f" (after a prompt of {P} tokens, batch {B})"))


def _mistakes(attn, q_new, k_new, v_new, past_k, past_v) -> dict:
    merge = lambda heads: attn.c_proj(heads.transpose(1, 2).reshape(B, 1, C))  # noqa: E731
    keys, values = torch.cat([past_k, k_new], 2), torch.cat([past_v, v_new], 2)  # (B, H, P + 1, hs)
    scores = q_new @ keys.transpose(-2, -1)  # (B, H, 1, P + 1)
    return {
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
        "the softmax runs over the query axis (dim=-2, size 1), so every weight is 1: softmax over the keys, "
        "dim=-1": merge((scores / math.sqrt(HS)).softmax(-2) @ values),
        f"the scores are not scaled: divide q·kᵀ by √hs = √{HS}": merge(scores.softmax(-1) @ values),
        f"you scaled by √C = √{C}, the model width: the scale is √hs, the head size, √{HS}": merge(
            (scores / math.sqrt(C)).softmax(-1) @ values
        ),
        "k and v are swapped in the attention: weights come from q·kᵀ, the output is weights @ v": merge(
            F.scaled_dot_product_attention(q_new, values, keys)
        ),
    }


def _cache_mistake(got: torch.Tensor, past: torch.Tensor, new: torch.Tensor, other: torch.Tensor, name: str) -> None:
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
    if torch.allclose(got[:, :, P:], other, atol=1e-6):
        raise Hint(f"your new {name} is the new {'v' if name == 'k' else 'k'}: c_attn's output splits as q, k, v, "
                   f"in that order")  # fmt: skip
    if not torch.allclose(got[:, :, P:], new, atol=1e-6):
        raise Hint(
            f"{name}[:, :, -1] is not the new token's {name}: split attn.c_attn(x) into q, k, v and each into "
            f"heads, (B, 1, C) -> (B, H, 1, hs)"
        )
