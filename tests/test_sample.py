"""Sampling: the KV cache changes speed, never tokens; seeds reproduce; top-k / top-p edges; bad settings."""

import pytest
import torch

from finegpt.config import ModelConfig
from finegpt.errors import FinegptError
from finegpt.model import GPT, sample_next
from finegpt.sample import generate_text


class ByteTokenizer:
    """The bytes tokenizer's contract (256 bytes + EOT), strict about ids outside its vocab."""

    name, vocab_size, eot = "bytes", 257, 256

    def encode(self, text):
        return list(text.encode("utf-8"))

    def decode(self, ids):
        assert all(0 <= i < self.vocab_size for i in ids), f"undecodable id in {ids}"
        return bytes(i for i in ids if i != self.eot).decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # block_size 16 so generation runs well past the window; vocab 320 = 257 padded to 64
    return GPT(ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=320)).eval()


def test_greedy_with_cache_equals_without_token_for_token_past_block_size(model):
    idx = torch.randint(0, 257, (2, 5))
    cached = model.generate(idx, 40, temperature=0, use_cache=True)
    full = model.generate(idx, 40, temperature=0, use_cache=False)
    assert cached.shape == (2, 45)
    assert cached.tolist() == full.tolist()


def test_generate_text_same_with_and_without_cache(model):
    tok = ByteTokenizer()
    kw = dict(prompt="To be", max_new_tokens=30, temperature=0.9, top_k=50, seed=7, num_samples=2)
    assert generate_text(model, tok, use_cache=True, **kw) == generate_text(model, tok, use_cache=False, **kw)


def test_seeded_sampling_is_reproducible_and_seed_matters(model):
    tok = ByteTokenizer()
    kw = dict(prompt="Hello", max_new_tokens=20, temperature=1.0, top_k=None)
    first = generate_text(model, tok, seed=1, num_samples=3, **kw)
    assert first == generate_text(model, tok, seed=1, num_samples=3, **kw)
    assert first != generate_text(model, tok, seed=2, num_samples=3, **kw)
    assert len(first) == 3 and all(text.startswith("Hello") for text in first)


def test_top_k_1_equals_greedy(model):
    tok = ByteTokenizer()
    greedy = generate_text(model, tok, "abc", max_new_tokens=25, temperature=0)
    assert generate_text(model, tok, "abc", max_new_tokens=25, temperature=1.5, top_k=1, seed=3) == greedy


def test_tiny_top_p_equals_greedy_and_top_p_1_is_off(model):
    tok = ByteTokenizer()
    greedy = generate_text(model, tok, "abc", max_new_tokens=25, temperature=0)
    assert generate_text(model, tok, "abc", max_new_tokens=25, temperature=1.0, top_k=0, top_p=1e-9) == greedy
    kw = dict(prompt="abc", max_new_tokens=25, temperature=1.0, top_k=0, seed=5)
    assert generate_text(model, tok, top_p=1.0, **kw) == generate_text(model, tok, top_p=None, **kw)


@pytest.mark.parametrize("top_p, support", [(0.01, {0}), (0.45, {0}), (0.7, {0, 1}), (0.85, {0, 1, 2})])
def test_top_p_keeps_smallest_set_reaching_p(top_p, support):
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(2000, 1)  # (B, V)
    gen = torch.Generator().manual_seed(0)
    drawn = set(sample_next(logits, temperature=1.0, top_p=top_p, generator=gen).flatten().tolist())
    assert drawn == support


def test_padded_vocab_ids_are_never_sampled(model):
    tok = ByteTokenizer()  # decode asserts every id < 257; the model's vocab is 320
    texts = generate_text(model, tok, "", max_new_tokens=64, temperature=2.0, top_k=0, seed=0, num_samples=8)
    assert len(texts) == 8


def test_generate_text_restores_training_mode(model):
    model.train()
    generate_text(model, ByteTokenizer(), "x", max_new_tokens=2, temperature=0)
    assert model.training
    model.eval()


@pytest.mark.parametrize(
    "setting, message",
    [
        (dict(temperature=-0.5), "temperature=-0.5: must be a finite number >= 0."),
        (dict(temperature=float("inf")), "temperature=inf: must be a finite number >= 0."),
        (dict(top_p=0.0), "top_p=0.0: must be in (0, 1]."),
        (dict(top_p=1.5), "top_p=1.5: must be in (0, 1]."),
        (dict(top_k=-1), "top_k=-1: must be an integer >= 0."),
        (dict(max_new_tokens=0), "max_new_tokens=0: must be an integer in [1, 1000000]."),
        (dict(max_new_tokens=10**12), "max_new_tokens=1000000000000: must be an integer in [1, 1000000]."),
        (dict(num_samples=0), "num_samples=0: must be an integer in [1, 10000]."),
    ],
)
def test_bad_settings_give_one_line_errors(model, setting, message):
    kw = dict(prompt="x", max_new_tokens=3, temperature=1.0, top_k=None, top_p=None) | setting
    with pytest.raises(FinegptError) as err:
        generate_text(model, ByteTokenizer(), **kw)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
