"""Widget logic: every callback is a pure function, checked here over a grid of settings."""

import html

import pytest
import torch

from finegpt.config import ModelConfig
from finegpt.data import get_tokenizer
from finegpt.model import GPT
from finegpt.sample import generate_text
from finegpt import widgets

TINY = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=320)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return GPT(TINY).eval(), get_tokenizer("bytes")


@pytest.mark.parametrize("temperature", [0.0, 0.8, 2.0])
@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.5), (50, 0.9)])
@pytest.mark.parametrize("prompt", ["", "To be"])
def test_sample_view_equals_generate_text_with_off_switches_mapped(tiny, temperature, top_k, top_p, prompt):
    model, tok = tiny
    text = widgets.sample_view(model, tok, prompt, temperature, top_k, top_p, max_new_tokens=12, seed=3)
    expected = generate_text(model, tok, prompt, max_new_tokens=12, temperature=temperature,
                             top_k=top_k or None, top_p=top_p if top_p < 1 else None, seed=3)[0]
    assert text == expected and text.startswith(prompt)


def test_sample_view_turns_bad_settings_into_the_one_line_error(tiny):
    model, tok = tiny
    assert widgets.sample_view(model, tok, "x", temperature=-1.0, max_new_tokens=5).startswith("error: temperature=-1.0")


def test_sample_ui_generates_once_with_its_defaults_and_again_on_click(tiny):
    model, tok = tiny
    ui = widgets.sample_ui(model, tok, prompt="ab", max_new_tokens=8, seed=1)
    first = ui.output.value
    assert "finegpt-sample" in first and html.escape(widgets.sample_view(model, tok, "ab", 0.8, 200, 1.0, 8, 1)) in first
    ui.children[1].value = 0.0  # temperature: greedy
    ui.children[5].children[1].click()
    assert ui.output.value != first and html.escape(widgets.sample_view(model, tok, "ab", 0.0, 200, 1.0, 8, 1)) in ui.output.value
