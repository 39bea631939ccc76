"""Notebook 02's exercises: the parameter count, the MLP, a Block, causal self-attention from q, k, v.

check_param_count(fn), check_mlp(MLPClass), check_block(BlockClass), check_causal_attention(fn).
References: finegpt.model (count_params, MLP, Block, and the F.scaled_dot_product_attention call that
CausalSelfAttention makes).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.exercises.check import Hint, attempt, checker, close, match, same_shape, tensor
from finegpt.model import MLP, Block, count_params, param_breakdown

# small, with every size different, so a transposed shape can be named letter by letter
CFG = ModelConfig(n_layer=1, n_head=4, n_embd=32, block_size=16, vocab_size=64, dropout=0.0, bias=True)
B, T = 2, 5

# ---- 2.1 the parameter count ----------------------------------------------------------------------


@checker("parameter count")
def check_param_count(param_count):
    configs = [
        ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=True),
        ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False),
        ModelConfig(n_layer=3, n_head=4, n_embd=48, block_size=16, vocab_size=100, bias=True),
    ]
    got = [attempt(param_count, cfg) for cfg in configs]
    want = [count_params(cfg, non_embedding=False) for cfg in configs]
    if got == want:
        return "every parameter of GPT-2 small (with and without biases) and of a tiny GPT, exactly"
    for hint, delta in _param_mistakes().items():
        if all(g - w == delta(cfg) for g, w, cfg in zip(got, want, configs)):
            raise Hint(hint)
    g, w, cfg = next((g, w, cfg) for g, w, cfg in zip(got, want, configs) if g != w)
    raise Hint(
        f"for n_layer={cfg.n_layer}, n_embd={cfg.n_embd}, vocab_size={cfg.vocab_size}, block_size={cfg.block_size}, "
        f"bias={cfg.bias}: expected {w:,}, got {g:,} ({g - w:+,}). param_breakdown(cfg) lists the parts"
    )


def _param_mistakes() -> dict:
    """Each typical mistake as the difference it makes to the count, per config."""
    C = lambda c: c.n_embd  # noqa: E731
    linear_biases = lambda c: c.n_layer * 9 * c.n_embd  # c_attn 3C, attn.c_proj C, c_fc 4C, mlp.c_proj C  # noqa: E731
    return {
        "lm_head counted as a second V × C matrix: it is tied to wte (one tensor used twice), so it adds "
        "nothing": lambda c: c.vocab_size * C(c),
        "the position embedding (T × C) is missing: nanoGPT prints the count without it, but this asks for "
        "every parameter": lambda c: -c.block_size * C(c),
        "the token embedding (V × C) is missing: it is the output layer too, and the biggest single matrix": lambda c: (
            -c.vocab_size * C(c)
        ),
        "the Linear layers' biases are missing: with bias=True c_attn has 3C, attn.c_proj C, c_fc 4C and "
        "mlp.c_proj C per block": lambda c: -linear_biases(c) * c.bias,
        "bias=False means no Linear biases: count them only when config.bias is True": lambda c: (
            linear_biases(c) * (not c.bias)
        ),
        "the LayerNorms are missing: ln_1 and ln_2 in every block, and ln_f, each C weights (+ C biases with "
        "bias=True)": lambda c: -param_breakdown(c)["layernorm"],
        "the final LayerNorm ln_f is missing (C weights, + C biases with bias=True)": lambda c: -C(c) * (1 + c.bias),
        "attention has two matrices per block: c_attn (C → 3C: q, k and v at once) and c_proj (C → C)": lambda c: (
            -c.n_layer * (C(c) ** 2 + C(c) * c.bias)
        ),
        "the MLP widens to 4C, not 2C: c_fc is C × 4C and c_proj 4C × C, 8·C² per block": lambda c: (
            -c.n_layer * (4 * C(c) ** 2 + 2 * C(c) * c.bias)
        ),
    }


# ---- 2.2 the MLP ----------------------------------------------------------------------------------


def _same_parameters(mine, ref, cfg: ModelConfig) -> None:
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    if extra and all(k.endswith("bias") for k in extra) and not missing:
        raise Hint(f"config.bias={cfg.bias} but you made {extra}: pass bias=config.bias to every nn.Linear")
    if missing or extra:
        raise Hint(
            f"parameters {missing} are missing (you have {extra or 'nothing else'}): use nanoGPT's names, so "
            f"GPT-2's weights load into your module"
        )
    for k in want:
        if got[k] != want[k]:
            raise Hint(
                f"{k} has shape {got[k]}, expected {want[k]}: with C={cfg.n_embd}, c_fc maps C → 4C "
                f"(nn.Linear(C, 4 * C), weight (4C, C)) and c_proj maps 4C → C"
            )


@checker("MLP")
def check_mlp(MLPClass):
    g = torch.Generator().manual_seed(0)
    for bias in (True, False):
        cfg = replace(CFG, bias=bias)
        torch.manual_seed(0)
        ref, mine = MLP(cfg).eval(), attempt(MLPClass, cfg)
        _same_parameters(mine, ref, cfg)
        mine.load_state_dict(ref.state_dict())
        mine.eval()
        x = torch.randn(B, T, cfg.n_embd, generator=g)  # (B, T, C)
        with torch.no_grad():
            y = tensor("the output", attempt(mine, x))
            same_shape("the output", y.shape, (B, T, cfg.n_embd), "B, T, C")
            want, h = ref(x), ref.c_fc(x)  # h: (B, T, 4C)
            if close(y, want) or close(y, ref.c_proj(F.gelu(h, approximate="tanh"))):
                continue  # the tanh approximation is GPT-2's original GELU: fine
            match(
                y,
                {
                    "no nonlinearity between c_fc and c_proj: two Linear layers in a row are one Linear layer. "
                    "Apply GELU to c_fc's output": ref.c_proj(h),
                    "ReLU where GPT-2 has GELU: use nn.GELU()": ref.c_proj(F.relu(h)),
                    "the MLP adds its input back: the residual belongs to the Block, so return c_proj(gelu(c_fc(x)))": x
                    + want,
                    "GELU after c_proj too: the activation sits between the two layers only": F.gelu(want),
                },
            )
            raise Hint(f"the output differs from c_proj(gelu(c_fc(x))) by up to {(y - want).abs().max():.3g}")
    return "C → 4C → GELU → C, with nanoGPT's names, with and without biases"


# ---- 2.3 the Block --------------------------------------------------------------------------------


@checker("transformer block")
def check_block(BlockClass):
    torch.manual_seed(0)
    ref, mine = Block(CFG).eval(), attempt(BlockClass, CFG)
    with torch.no_grad():  # different norms, so that using one in the other's place shows
        for ln in (ref.ln_1, ref.ln_2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.normal_(0.0, 0.5)
    _same_parameters(mine, ref, CFG)
    mine.load_state_dict(ref.state_dict())
    mine.eval()
    x = torch.randn(B, T, CFG.n_embd, generator=torch.Generator().manual_seed(1))  # (B, T, C)
    with torch.no_grad():
        y = tensor("the output", attempt(mine, x))
        same_shape("the output", y.shape, (B, T, CFG.n_embd), "B, T, C")
        if close(y, ref(x)):
            return "x + attn(ln_1(x)), then x + mlp(ln_2(x)): pre-LN, as GPT-2"
        a, m, ln_1, ln_2 = ref.attn, ref.mlp, ref.ln_1, ref.ln_2
        h = x + a(ln_1(x))  # the right first half
        post = ln_1(x + a(x))
        n1 = ln_1(x)
        n2 = ln_2(n1 + a(n1))
        mlp_first = x + m(ln_2(x))
        match(
            y,
            {
                "post-LN: you normalise the sum; GPT-2 normalises each sublayer's input, x + attn(ln_1(x))": ln_2(
                    post + m(post)
                ),
                "no residual connections: add each sublayer's output to x (x = x + ...)": m(ln_2(a(ln_1(x)))),
                "the residual adds to the normalised x; add to x itself: x = x + attn(ln_1(x))": n2 + m(n2),
                "the MLP reads ln_1: each sublayer has its own norm, x + mlp(ln_2(x))": h + m(ln_1(h)),
                "attention and MLP both read the block's input (in parallel); the MLP must read x after the "
                "attention's residual": h + m(ln_2(x)),
                "the MLP runs before the attention: attention first, then the MLP": mlp_first + a(ln_1(mlp_first)),
                "the MLP is missing: after the attention, x = x + mlp(ln_2(x))": h,
            },
        )
        raise Hint(f"the output differs from finegpt's Block by up to {(y - ref(x)).abs().max():.3g}")


# ---- 2.4 causal self-attention from q, k, v -------------------------------------------------------

H, HS, TA = 3, 16, 7  # heads, head size, tokens: all different from B and from each other


@checker("causal self-attention")
def check_causal_attention(attention):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, TA, HS, generator=g) for _ in range(3))  # (B, H, T, hs)
    with torch.no_grad():
        y = tensor("y", attempt(attention, q.clone(), k.clone(), v.clone()))
        same_shape("y", y.shape, (B, H, TA, HS), "B, H, T, hs")
        if torch.isnan(y).any():
            t = int(torch.isnan(y).any(-1).nonzero()[0, 2])
            raise Hint(
                f"position {t}'s output is NaN: it may see no key at all. The mask hides only the future "
                f"(key j > query i); a token always sees itself"
            )
        _future_leak(attention, q, k, v, y)
        want = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # what finegpt.model calls
        if close(y, want):
            return "matches F.scaled_dot_product_attention(is_causal=True), and no position sees its future"
        s = q @ k.transpose(-2, -1)  # (B, H, T, T) raw scores
        future = torch.ones(TA, TA, dtype=torch.bool).triu(1)
        masked = lambda scores: scores.masked_fill(future, float("-inf"))  # noqa: E731
        match(
            y,
            {
                f"the scores are not scaled: divide q·kᵀ by √hs = {math.sqrt(HS):g} before the softmax, or it "
                f"saturates as hs grows": masked(s).softmax(-1) @ v,
                f"you divided by hs = {HS}; the scale is 1/√hs = 1/{math.sqrt(HS):g}": masked(s / HS).softmax(-1) @ v,
                f"you multiplied by √hs; divide by it: q·kᵀ / {math.sqrt(HS):g}": masked(s * math.sqrt(HS)).softmax(-1)
                @ v,
                "the mask is applied after the softmax: each row then sums to less than 1. Set the future scores "
                "to -inf first, then take the softmax": (s / math.sqrt(HS)).softmax(-1).masked_fill(future, 0) @ v,
                "the softmax runs over the queries (dim=-2): each query's weights over the keys must sum to 1, "
                "softmax(dim=-1)": masked(s / math.sqrt(HS)).softmax(-2) @ v,
            },
        )
        worst = (y - want).abs().amax(dim=(0, 1, 3))  # per position
        raise Hint(
            f"y differs from softmax(q·kᵀ/√hs, future masked)·v by up to {worst.max():.3g}, first at "
            f"position {int((worst > 1e-4).nonzero()[0])}"
        )


def _future_leak(attention, q, k, v, y) -> None:
    """Change the value at position j: no output before j may move. (Only the value: a softmax taken
    before masking also reads future keys, through its denominator, and has a hint of its own.)"""
    for j in range(1, TA):
        v2 = v.clone()
        v2[:, :, j] += 1.0
        y2 = attention(q.clone(), k.clone(), v2)
        moved = (y2[:, :, :j] - y[:, :, :j]).abs().amax(dim=(0, 1, 3)) > 1e-6  # (j,)
        if moved.any():
            i = int(moved.nonzero()[0])
            raise Hint(
                f"position {i} attends to position {j}: a token must not see the future. Set the scores "
                f"above the diagonal to -inf before the softmax (or is_causal=True)"
            )
