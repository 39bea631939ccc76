"""Notebook 02's exercises: the parameter count, the MLP and a Block (attention is in attention.py).

check_param_count(fn), check_mlp(MLPClass), check_block(BlockClass).
References: finegpt.model (count_params, MLP, Block). Each checker computes finegpt's answer first, then
the known wrong variants on the same inputs, and names the one the student's output equals.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn
from torch.nn import functional as F

from finegpt.config import ModelConfig
from finegpt.exercises.check import Hint, checker, close, differ_at, integer, match, same_shape, student, tensor
from finegpt.model import MLP, Block, count_params, param_breakdown

# small, with every size different, so a transposed shape can be named letter by letter
CFG = ModelConfig(n_layer=1, n_head=4, n_embd=32, block_size=16, vocab_size=64, dropout=0.0, bias=True)
B, T = 2, 5
P_DROP = 0.3  # the dropout the checks also run with, in training mode

# ---- 2.1 the parameter count ----------------------------------------------------------------------


@checker("parameter count")
def check_param_count(param_count):
    configs = [
        ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=True),
        ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False),
        ModelConfig(n_layer=3, n_head=4, n_embd=48, block_size=16, vocab_size=100, bias=True),
    ]
    want = [count_params(cfg, non_embedding=False) for cfg in configs]
    got = [integer("the count", student(param_count, cfg)) for cfg in configs]
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
    block = lambda c: (
        (param_breakdown(c)["attention"] + param_breakdown(c)["mlp"]) // c.n_layer
        + 2
        * C(c)
        * (  # noqa: E731
            1 + c.bias
        )
    )
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
        "bias=False removes the LayerNorms' biases too: each LayerNorm then has C weights only": lambda c: (
            (2 * c.n_layer + 1) * C(c) * (not c.bias)
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
        "you counted one block: there are n_layer of them, multiply the block's parameters by n_layer": lambda c: (
            -(c.n_layer - 1) * block(c)
        ),
        "that is the rule of thumb 12·n_layer·C² (the blocks' weight matrices only): count every tensor, the "
        "embeddings, biases and LayerNorms too": lambda c: 12 * c.n_layer * C(c) ** 2 - count_params(c, False),
        "you padded vocab_size to a multiple of 64: the config's vocab_size is already the model's (GPT-2's "
        "50304 is padded in the config), count it as given": lambda c: (
            (math.ceil(c.vocab_size / 64) * 64 - c.vocab_size) * C(c)
        ),
    }


# ---- shared by the module exercises ---------------------------------------------------------------


def _module(got, what: str) -> nn.Module:
    if not isinstance(got, nn.Module):
        raise Hint(f"{what}(config) should make an nn.Module, got a {type(got).__name__}")
    return got


def _same_parameters(mine, ref, cfg: ModelConfig) -> None:
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in student(mine.state_dict).items()}
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


def _load(mine, ref) -> None:
    student(mine.load_state_dict, ref.state_dict())


def _forward(module, x: torch.Tensor, training: bool, seed: int, own: bool) -> torch.Tensor:
    """One forward in the given mode, from a fixed RNG state, so that dropout draws the same mask."""
    (student(module.train, training) if own else module.train(training))
    torch.manual_seed(seed)
    with torch.no_grad():  # both ways: with autograd on, dropout may draw its mask differently
        y = tensor("the output", student(module, x)) if own else module(x)
    same_shape("the output", y.shape, tuple(x.shape), "B, T, C")
    return y


def _dropped(seed: int, fn, p: float):
    """fn(drop) from a fixed RNG state, drop = F.dropout at p (in training mode)."""
    torch.manual_seed(seed)
    return fn(lambda t: F.dropout(t, p, training=True))


def _dropout_mistakes(seed: int, fn, p_config: float, where: str) -> dict:
    hints = {}
    for p in (0.1, 0.2, 0.5, 0.3):
        if p != p_config:
            hints[
                f"dropout is hard-coded at p={p}: it must follow config.dropout (the check runs with dropout=0 "
                f"and {P_DROP}), or be left out. Use nn.Dropout(config.dropout) {where}"
            ] = _dropped(seed, fn, p)
    return hints


# ---- 2.2 the MLP ----------------------------------------------------------------------------------


@checker("MLP")
def check_mlp(MLPClass):
    g = torch.Generator().manual_seed(0)
    for bias, p, training in ((True, 0.0, False), (False, 0.0, False), (True, 0.0, True), (True, P_DROP, True),
                              (True, P_DROP, False)):  # fmt: skip
        cfg = replace(CFG, bias=bias, dropout=p)
        torch.manual_seed(0)
        ref = MLP(cfg)
        mine = _module(student(MLPClass, cfg), "MyMLP")
        _same_parameters(mine, ref, cfg)
        _load(mine, ref)
        x = torch.randn(B, T, cfg.n_embd, generator=g)  # (B, T, C)
        want = _forward(ref, x, training, seed=7, own=False)  # finegpt's, first
        y = _forward(mine, x, training, seed=7, own=True)
        with torch.no_grad():
            h = ref.c_fc(x)  # (B, T, 4C)
            if close(y, want) or close(y, ref.c_proj(F.gelu(h, approximate="tanh"))) or close(y, ref.c_proj(F.gelu(h))):
                continue  # the tanh approximation is GPT-2's original GELU; dropout left out, as asked: fine
            match(y, _mlp_mistakes(ref, x, p, training))
        mode = "training" if training else "eval"
        raise Hint(differ_at("the output", y, want, f" (bias={bias}, dropout={p}, {mode} mode)"))
    return "C → 4C → GELU → C, with nanoGPT's names, with and without biases"


def _mlp_mistakes(ref, x: torch.Tensor, p: float, training: bool) -> dict:
    h = ref.c_fc(x)  # (B, T, 4C)
    plain = ref.c_proj(F.gelu(h))  # no dropout
    out = lambda d: d(plain)  # noqa: E731 - dropout where nanoGPT has it
    hidden = lambda d: ref.c_proj(d(F.gelu(h)))  # noqa: E731
    mistakes = {
        "no nonlinearity between c_fc and c_proj: two Linear layers in a row are one Linear layer. "
        "Apply GELU to c_fc's output": ref.c_proj(h),
        "ReLU where GPT-2 has GELU: use nn.GELU()": ref.c_proj(F.relu(h)),
        "SiLU (swish) where GPT-2 has GELU: use nn.GELU()": ref.c_proj(F.silu(h)),
        "tanh where GPT-2 has GELU: use nn.GELU()": ref.c_proj(torch.tanh(h)),
        "sigmoid where GPT-2 has GELU: use nn.GELU()": ref.c_proj(torch.sigmoid(h)),
        "LeakyReLU where GPT-2 has GELU: use nn.GELU()": ref.c_proj(F.leaky_relu(h)),
        "GELU after c_proj instead of between the layers: c_proj(gelu(c_fc(x)))": F.gelu(ref.c_proj(h)),
        "GELU before c_fc: the activation sits between the two layers, c_proj(gelu(c_fc(x)))": ref.c_proj(
            ref.c_fc(F.gelu(x))
        ),
        "the MLP adds its input back: the residual belongs to the Block, so return c_proj(gelu(c_fc(x)))": x + plain,
        "GELU after c_proj too: the activation sits between the two layers only": F.gelu(plain),
    }
    if training:
        mistakes |= _dropout_mistakes(7, out, p, "after c_proj")
        mistakes |= _dropout_mistakes(7, hidden, p, "after c_proj, not on the hidden layer")
        if p:
            mistakes["dropout on the 4C hidden layer: nanoGPT's MLP drops c_proj's output, "
                     "dropout(c_proj(gelu(c_fc(x))))"] = _dropped(7, hidden, p)  # fmt: skip
    else:  # F.dropout(x, p) without training=self.training drops in eval mode too
        eval_too = (
            "also drops in eval mode: F.dropout(x, p) has training=True by default. Use nn.Dropout(config.dropout)"
        )
        for q in (p, 0.1, 0.2, 0.5, 0.3):
            if q:
                what = "your dropout" if q == p else f"your dropout is hard-coded at p={q} and"
                mistakes[f"{what} {eval_too}(config.dropout)"] = _dropped(7, out, q)
                mistakes[f"{what} {eval_too}(config.dropout), after c_proj"] = _dropped(7, hidden, q)
    return mistakes


# ---- 2.3 the Block --------------------------------------------------------------------------------


@checker("transformer block")
def check_block(BlockClass):
    x = torch.randn(B, T, CFG.n_embd, generator=torch.Generator().manual_seed(1))  # (B, T, C)
    for training in (False, True):
        torch.manual_seed(0)
        ref = Block(CFG)
        with torch.no_grad():  # different norms, so that using one in the other's place shows
            for ln in (ref.ln_1, ref.ln_2):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.normal_(0.0, 0.5)
        mine = _module(student(BlockClass, CFG), "MyBlock")
        _same_parameters(mine, ref, CFG)
        _load(mine, ref)
        want = _forward(ref, x, training, seed=3, own=False)  # finegpt's, first
        y = _forward(mine, x, training, seed=3, own=True)
        if close(y, want):
            continue
        ref.eval()
        with torch.no_grad():
            match(y, _block_mistakes(ref, x))
        raise Hint(differ_at("the output", y, want, f" ({'training' if training else 'eval'} mode)"))
    return "x + attn(ln_1(x)), then x + mlp(ln_2(x)): pre-LN, as GPT-2"


def _block_mistakes(ref, x: torch.Tensor) -> dict:
    a, m, ln_1, ln_2 = ref.attn, ref.mlp, ref.ln_1, ref.ln_2
    h = x + a(ln_1(x))  # the right first half
    post = ln_1(x + a(x))
    n1 = ln_1(x)
    n2 = ln_2(n1 + a(n1))
    mlp_first = x + m(ln_2(x))
    raw = x + a(x)
    only_attn = a(ln_1(x))
    mistakes = {
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
        "the attention is missing: first x = x + attn(ln_1(x)), then the MLP": mlp_first,
        "the attention reads x itself: it must read the normalised copy, x + attn(ln_1(x))": raw + m(ln_2(raw)),
        "the MLP reads x itself: it must read the normalised copy, x + mlp(ln_2(x))": h + m(h),
        "the attention's output replaces x: add it to x, x = x + attn(ln_1(x))": only_attn + m(ln_2(only_attn)),
        "the MLP's output replaces x: add it to x, x = x + mlp(ln_2(x))": m(ln_2(h)),
        "the Block's output is normalised: return x + mlp(ln_2(x)) as it is (the model's ln_f comes after the "
        "last block)": ln_2(h + m(ln_2(h))),
    }
    # dropout of one's own, in either mode (F.dropout(x, p) drops in eval mode too, unless training=self.training)
    branches = {"both residual branches": (True, True), "the attention's branch": (True, False),
                "the MLP's branch": (False, True)}  # fmt: skip
    for p in (0.1, 0.2, 0.5):
        for part, (on_attn, on_mlp) in branches.items():
            mistakes[
                f"dropout is hard-coded at p={p} on {part}: the Block's parts already drop by config.dropout "
                f"(0 here); add none of your own"
            ] = _dropped(3, lambda d, on_attn=on_attn, on_mlp=on_mlp: _block_with(ref, x, d, on_attn, on_mlp), p)
    return mistakes


def _block_with(ref, x: torch.Tensor, drop, on_attn: bool, on_mlp: bool) -> torch.Tensor:
    """The right Block with an extra dropout on one or both residual branches."""
    a = ref.attn(ref.ln_1(x))
    h = x + (drop(a) if on_attn else a)
    m = ref.mlp(ref.ln_2(h))
    return h + (drop(m) if on_mlp else m)
