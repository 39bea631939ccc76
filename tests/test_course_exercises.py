"""The exercises whose answers the course uses (finegpt.exercises.course): the attention module (02), the
model-level KV-cache forward with its position offset (05), and the open tasks, each judged by a number."""

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from finegpt.config import ModelConfig, TrainConfig
from finegpt.exercises import course


def printed(capsys, check, *args, **kwargs) -> str:
    check(*args, **kwargs)
    return capsys.readouterr().out


# ---- 2.5 the attention module ------------------------------------------------------------------------


def make_attention(heads_first=True, project=True, order="qkv", merge_right=True):
    class MyCausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.n_head = config.n_head

        def forward(self, x):
            B, T, C = x.shape
            parts = dict(zip("qkv", self.c_attn(x).split(C, dim=2)))
            q, k, v = (parts[c] for c in order)
            if heads_first:
                q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
            else:
                q, k, v = (t.view(B, T, self.n_head, C // self.n_head) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C) if merge_right and heads_first else y.reshape(B, T, C)
            return self.c_proj(y) if project else y

    return MyCausalSelfAttention


def test_a_correct_attention_module_passes(capsys):
    assert printed(capsys, course.check_attention_module, make_attention()).startswith("✓")


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        (dict(project=False), "still needs c_proj"),
        (dict(order="kqv"), "in that order: q, k, v"),
        (dict(heads_first=False), "heads were not moved in front of time"),
        (dict(merge_right=False), "merged without moving time back"),
    ],
)
def test_attention_module_mistakes_are_named(capsys, kwargs, hint):
    out = printed(capsys, course.check_attention_module, make_attention(**kwargs))
    assert out.startswith("✗") and hint in out, out


def test_an_attention_module_with_other_weight_names_is_told_nanogpts(capsys):
    class Named(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)

        def forward(self, x):
            return x

    out = printed(capsys, course.check_attention_module, Named)
    assert out.startswith("✗") and "c_attn = nn.Linear(C, 3 * C)" in out


# ---- 5.3 the model's forward with a KV cache ------------------------------------------------------------


def make_cached_forward(offset=True, each_cache=True, norm=True, shift=0):
    def cached_forward(model, idx, caches):
        past = caches[0].pos if offset else 0
        pos = torch.arange(past + shift, past + shift + idx.size(1))
        x = model.transformer.drop(model.transformer.wte(idx) + model.transformer.wpe(pos))
        for i, block in enumerate(model.transformer.h):
            x = block(x, caches[i] if each_cache else caches[0])
        return model.lm_head(model.transformer.ln_f(x) if norm else x)

    return cached_forward


def test_a_correct_cached_forward_passes(capsys):
    out = printed(capsys, course.check_cached_forward, make_cached_forward())
    assert out.startswith("✓") and "offset" in out


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        (dict(offset=False), "the position embedding ignores the cache"),
        (dict(shift=1), "positions are one too far"),
        (dict(each_cache=False), "every block got the first layer's cache"),
        (dict(norm=False), "final LayerNorm is missing"),
    ],
)
def test_cached_forward_mistakes_are_named(capsys, kwargs, hint):
    out = printed(capsys, course.check_cached_forward, make_cached_forward(**kwargs))
    assert out.startswith("✗") and hint in out, out


def test_cached_forward_without_caches_and_calling_the_model_are_named(capsys):
    def no_cache(model, idx, caches):
        pos = torch.arange(caches[0].pos, caches[0].pos + idx.size(1))
        x = model.transformer.wte(idx) + model.transformer.wpe(pos)
        for block in model.transformer.h:
            x = block(x)
        return model.lm_head(model.transformer.ln_f(x))

    assert "cannot see the prompt" in printed(capsys, course.check_cached_forward, no_cache)
    out = printed(capsys, course.check_cached_forward, lambda model, idx, caches: model(idx, caches=caches)[0])
    assert "model(...) is the answer itself" in out


def test_unanswered_cached_forward_is_not_attempted(capsys):
    def gap(model, idx, caches):
        raise NotImplementedError

    assert "not attempted" in printed(capsys, course.check_cached_forward, gap)


# ---- open tasks ------------------------------------------------------------------------------------------

MODEL = dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50304, bias=False)


def test_block_size_task_accepts_only_the_largest_fitting_multiple_of_64(capsys):
    best = course.largest_block_size(MODEL, 8, "T4")
    assert best % 64 == 0 and 64 <= best < 8192
    assert printed(capsys, course.check_block_size_task, best, MODEL, 8).startswith("✓")
    assert f"so does {best}" in printed(capsys, course.check_block_size_task, best - 64, MODEL, 8)
    assert "does not fit" in printed(capsys, course.check_block_size_task, best + 64, MODEL, 8)
    assert "multiple of 64" in printed(capsys, course.check_block_size_task, best + 1, MODEL, 8)
    assert "not attempted" in printed(capsys, course.check_block_size_task, None, MODEL, 8)


def test_one_setting_task_counts_the_settings_changed_and_compares_the_loss(capsys):
    base = TrainConfig(out_dir="a", learning_rate=1e-3)
    one = TrainConfig(out_dir="b", learning_rate=2e-3)
    two = TrainConfig(out_dir="b", learning_rate=2e-3, batch_size=24)
    out = printed(capsys, course.check_one_setting_task, two, base, None, 2.0)
    assert "change exactly one setting; you changed ['batch_size', 'learning_rate']" in out
    assert "now train with it" in printed(capsys, course.check_one_setting_task, one, base, None, 2.0)
    assert "not below 2.0000" in printed(capsys, course.check_one_setting_task, one, base, {"final_val_loss": 2.1}, 2.0)
    assert printed(capsys, course.check_one_setting_task, one, base, {"final_val_loss": 1.9}, 2.0).startswith("✓")


def test_sampling_task_measures_real_words_at_the_same_seed(capsys):
    from finegpt.data import get_tokenizer
    from finegpt.model import GPT

    tok = get_tokenizer("bytes")
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=320)).eval()
    defaults = dict(temperature=0.8, top_k=200, top_p=None)
    from finegpt.lab import real_word_share

    args = (model, tok, "ab", lambda text: real_word_share(text, {"the", "and"}), 20, defaults)
    assert "change one of" in printed(capsys, course.check_sampling_task, {"temperature": 0.5, "top_k": 5}, *args)
    assert "greedy" in printed(capsys, course.check_sampling_task, {"temperature": 0}, *args)
    out = printed(capsys, course.check_sampling_task, {"temperature": 0.5}, *args)
    assert out.startswith("✗") and "real words" in out  # random weights write no real words at any temperature
