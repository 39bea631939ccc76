"""Notebook 02's checkers: each typical mistake, written as a student would, gets a hint naming it,
including the √ of the wrong size, a softmax over the heads, a missing residual and a hard-coded dropout."""

import math

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from finegpt import exercises as ex
from finegpt.model import MLP, CausalSelfAttention, LayerNorm, count_params, param_breakdown
from tests.exercise_support import assert_hint, ids, verdict

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- 2.1 the parameter count ----------------------------------------------------------------------


def _count(cfg):
    return count_params(cfg, non_embedding=False)


def _one_block(cfg):
    parts = param_breakdown(cfg)
    block = (parts["attention"] + parts["mlp"] + parts["layernorm"] - cfg.n_embd * (1 + cfg.bias)) // cfg.n_layer
    return _count(cfg) - (cfg.n_layer - 1) * block


PARAM_COUNT = [
    (lambda cfg: count_params(cfg), "the position embedding (T × C) is missing"),
    (lambda cfg: _count(cfg) + cfg.vocab_size * cfg.n_embd, "lm_head counted as a second"),
    (lambda cfg: _count(cfg) - 9 * cfg.n_layer * cfg.n_embd * cfg.bias, "the Linear layers' biases are missing"),
    (lambda cfg: _count(cfg) - cfg.n_embd * (1 + cfg.bias), "the final LayerNorm ln_f is missing"),
    (lambda cfg: _count(cfg) + 9 * cfg.n_layer * cfg.n_embd * (not cfg.bias), "bias=False means no Linear biases"),
    (lambda cfg: _count(cfg) + (2 * cfg.n_layer + 1) * cfg.n_embd * (not cfg.bias), "removes the LayerNorms' biases"),
    (_one_block, "you counted one block"),
    (lambda cfg: 12 * cfg.n_layer * cfg.n_embd**2, "that is the rule of thumb 12·n_layer·C²"),
    (lambda cfg: _count(cfg) + (-cfg.vocab_size % 64) * cfg.n_embd, "you padded vocab_size to a multiple of 64"),
    (lambda cfg: _count(cfg) - 4 * cfg.n_layer * cfg.n_embd**2 - 2 * cfg.n_layer * cfg.n_embd * cfg.bias, "to 4C"),
]


@pytest.mark.parametrize("answer,hint", PARAM_COUNT, ids=ids(PARAM_COUNT))
def test_param_count_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_param_count, answer, hint)


# ---- 2.2 the MLP ----------------------------------------------------------------------------------


class _MLP(nn.Module):
    """A right MLP whose forward the mistakes below replace."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_fc, self.c_proj = nn.Linear(C, 4 * C, bias=config.bias), nn.Linear(4 * C, C, bias=config.bias)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


def _mlp(forward, init=None):
    return type(forward.__name__, (_MLP,), {"forward": forward, **({"__init__": init} if init else {})})


def _narrow(self, config):
    nn.Module.__init__(self)
    C = config.n_embd
    self.c_fc, self.c_proj = nn.Linear(C, C, bias=config.bias), nn.Linear(C, C, bias=config.bias)


def _always_biased(self, config):
    nn.Module.__init__(self)
    self.c_fc, self.c_proj = nn.Linear(config.n_embd, 4 * config.n_embd), nn.Linear(4 * config.n_embd, config.n_embd)


def _dropout_01(self, config):
    _MLP.__init__(self, config)
    self.dropout = nn.Dropout(0.1)


MLPS = [
    (_mlp(lambda self, x: self.c_proj(F.relu(self.c_fc(x)))), "ReLU where GPT-2 has GELU"),
    (_mlp(lambda self, x: self.c_proj(self.c_fc(x))), "no nonlinearity between c_fc and c_proj"),
    (_mlp(lambda self, x: self.c_proj(F.silu(self.c_fc(x)))), "SiLU (swish) where GPT-2 has GELU"),
    (_mlp(lambda self, x: x + self.c_proj(F.gelu(self.c_fc(x)))), "the MLP adds its input back"),
    (_mlp(lambda self, x: F.gelu(self.c_proj(F.gelu(self.c_fc(x))))), "GELU after c_proj too"),
    (_mlp(lambda self, x: self.c_proj(self.c_fc(F.gelu(x)))), "GELU before c_fc"),
    (_mlp(lambda self, x: F.gelu(self.c_proj(self.c_fc(x)))), "GELU after c_proj instead of between the layers"),
    (_mlp(lambda self, x: self.c_proj(F.leaky_relu(self.c_fc(x)))), "LeakyReLU where GPT-2 has GELU"),
    (_mlp(_MLP.forward, _narrow), "c_fc.weight has shape (32, 32), expected (128, 32)"),
    (_mlp(_MLP.forward, _always_biased), "config.bias=False but you made"),
    (_mlp(lambda self, x: self.dropout(self.c_proj(F.gelu(self.c_fc(x)))), _dropout_01), "hard-coded at p=0.1"),
    (_mlp(lambda self, x: F.dropout(self.c_proj(F.gelu(self.c_fc(x))), 0.2)), "hard-coded at p=0.2"),
]


@pytest.mark.parametrize("answer,hint", MLPS, ids=ids(MLPS))
def test_mlp_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_mlp, answer, hint)


def _with_config_dropout(self, config):
    _MLP.__init__(self, config)
    self.p = config.dropout


def test_mlp_dropout_from_the_config_passes_and_a_dropout_that_ignores_eval_mode_does_not(capsys):
    right = _mlp(
        lambda self, x: F.dropout(self.c_proj(F.gelu(self.c_fc(x))), self.p, self.training), _with_config_dropout
    )
    assert verdict(capsys, ex.check_mlp, right).startswith("✓ ")
    always = _mlp(lambda self, x: F.dropout(self.c_proj(F.gelu(self.c_fc(x))), self.p), _with_config_dropout)
    assert_hint(capsys, ex.check_mlp, always, "drops in eval mode")
    hidden = _mlp(
        lambda self, x: self.c_proj(F.dropout(F.gelu(self.c_fc(x)), self.p, self.training)), _with_config_dropout
    )
    assert_hint(capsys, ex.check_mlp, hidden, "dropout on the 4C hidden layer")


# ---- 2.3 the Block --------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)


def _block(forward):
    return type(forward.__name__, (_Block,), {"forward": forward})


def _post_ln(self, x):
    x = self.ln_1(x + self.attn(x))
    return self.ln_2(x + self.mlp(x))


def _ln_1_twice(self, x):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_1(x))


def _attention_reads_x(self, x):
    x = x + self.attn(x)
    return x + self.mlp(self.ln_2(x))


def _mlp_output_replaces_x(self, x):
    x = x + self.attn(self.ln_1(x))
    return self.mlp(self.ln_2(x))


def _hard_coded_dropout(self, x):
    x = x + F.dropout(self.attn(self.ln_1(x)), 0.1, self.training)
    return x + F.dropout(self.mlp(self.ln_2(x)), 0.1, self.training)


def _right(self, x):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


def _mlp_first(self, x):
    x = x + self.mlp(self.ln_2(x))
    return x + self.attn(self.ln_1(x))


BLOCKS = [
    (_block(_post_ln), "post-LN"),
    (_block(lambda self, x: self.mlp(self.ln_2(self.attn(self.ln_1(x))))), "no residual connections"),
    (_block(_ln_1_twice), "the MLP reads ln_1"),
    (_block(lambda self, x: x + self.attn(self.ln_1(x)) + self.mlp(self.ln_2(x))), "both read the block's input"),
    (_block(_mlp_first), "the MLP runs before the attention"),
    (_block(lambda self, x: x + self.attn(self.ln_1(x))), "the MLP is missing"),
    (_block(_attention_reads_x), "the attention reads x itself"),
    (_block(_mlp_output_replaces_x), "the MLP's output replaces x"),
    (_block(lambda self, x: self.ln_2(_right(self, x))), "the Block's output is normalised"),
    (_block(_hard_coded_dropout), "dropout is hard-coded at p=0.1 on both residual branches"),
]


@pytest.mark.parametrize("answer,hint", BLOCKS, ids=ids(BLOCKS))
def test_block_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_block, answer, hint)


# ---- 2.4 causal self-attention --------------------------------------------------------------------


def _attention(scale=None, dim=-1, fill=-math.inf, mask="future", after=False):
    def causal_self_attention(q, k, v):
        T = q.size(-2)
        w = q @ k.transpose(-2, -1) / (math.sqrt(k.size(-1)) if scale is None else scale(q))
        hide = {
            "future": torch.ones(T, T).triu(1),
            "past": torch.ones(T, T).tril(-1),
            "diagonal": torch.ones(T, T).triu(0),
        }[mask].bool()
        if after:
            return w.softmax(dim).masked_fill(hide, 0.0) @ v
        if dim is None:
            return w.masked_fill(hide, 0.0) @ v
        return w.masked_fill(hide, fill).softmax(dim) @ v

    return causal_self_attention


ATTENTION = [
    (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), "position 0 attends to positions 1..6"),
    (_attention(scale=lambda q: 1.0), "the scores are not scaled: divide q·kᵀ by √hs = 4"),
    (_attention(scale=lambda q: math.sqrt(q.size(-2))), "you scaled by √T = √7"),
    (_attention(scale=lambda q: math.sqrt(q.size(1))), "you scaled by √n_head = √3"),
    (_attention(scale=lambda q: math.sqrt(q.size(1) * q.size(-1))), "you scaled by √C = √48"),
    (_attention(scale=lambda q: q.size(-1)), "you divided by hs = 16"),
    (_attention(scale=lambda q: math.sqrt(q.size(0))), "you scaled by √B = √2"),
    (_attention(after=True), "the mask is applied after the softmax"),
    (_attention(dim=-2), "the softmax runs over the queries"),
    (_attention(dim=1), "the softmax runs over the heads (dim=1, size 3)"),
    (_attention(dim=1, fill=-1e9), "the softmax runs over the heads (dim=1"),
    (_attention(fill=0.0), "the future scores are set to 0, not -inf"),
    (_attention(mask="past"), "the mask hides the past and shows the future"),
    (_attention(mask="diagonal"), "the mask also hides the diagonal"),
    (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2), "got (B, T, H, hs)"),
    (lambda q, k, v: (q @ k.transpose(-2, -1)).softmax(-1), "you returned the attention weights"),
    (_attention(dim=None), "there is no softmax"),
]


@pytest.mark.parametrize("answer,hint", ATTENTION, ids=ids(ATTENTION))
def test_causal_attention_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_causal_attention, answer, hint)


def test_softmax_over_the_heads_is_not_called_a_mask_problem(capsys):
    assert_hint(capsys, ex.check_causal_attention, _attention(dim=1), "over the heads", absent="NaN")
