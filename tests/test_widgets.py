"""Widget logic: every callback is a pure function, checked here over a grid of settings."""

import html

import pytest
import torch

from finegpt import widgets
from finegpt.config import ModelConfig
from finegpt.data import get_tokenizer
from finegpt.model import GPT
from finegpt.sample import generate_text

TINY = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=320)


@pytest.fixture(scope="module")
def tiny():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 1-layer model: threads only add contention on shared CI cores
    torch.manual_seed(0)
    yield GPT(TINY).eval(), get_tokenizer("bytes")
    torch.set_num_threads(threads)


@pytest.mark.parametrize("temperature", [0.0, 1.5])
@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.5), (50, 0.9)])
@pytest.mark.parametrize("prompt", ["", "To be"])
def test_sample_view_equals_generate_text_with_off_switches_mapped(tiny, temperature, top_k, top_p, prompt):
    model, tok = tiny
    text = widgets.sample_view(model, tok, prompt, temperature, top_k, top_p, max_new_tokens=12, seed=3)
    expected = generate_text(
        model,
        tok,
        prompt,
        max_new_tokens=12,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p if top_p < 1 else None,
        seed=3,
    )[0]
    assert text == expected and text.startswith(prompt)


def test_sample_view_turns_bad_settings_into_the_one_line_error(tiny):
    model, tok = tiny
    assert widgets.sample_view(model, tok, "x", temperature=-1.0, max_new_tokens=5).startswith(
        "error: temperature=-1.0"
    )


def test_sample_ui_generates_once_with_its_defaults_and_again_on_click(tiny):
    model, tok = tiny
    ui = widgets.sample_ui(model, tok, prompt="ab", max_new_tokens=8, seed=1)
    first = ui.output.value
    assert (
        "finegpt-sample" in first and html.escape(widgets.sample_view(model, tok, "ab", 0.8, 200, 1.0, 8, 1)) in first
    )
    ui.children[1].value = 0.0  # temperature: greedy
    ui.children[5].children[1].click()
    assert (
        ui.output.value != first
        and html.escape(widgets.sample_view(model, tok, "ab", 0.0, 200, 1.0, 8, 1)) in ui.output.value
    )


# ---- the memory calculator ----------------------------------------------------------------------

from finegpt import memory as M  # noqa: E402


def _estimate(s):
    cfg = ModelConfig(
        n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"], block_size=s["block_size"], bias=False
    )
    run = M.RunConfig(
        batch_size=s["batch_size"],
        gradient_accumulation_steps=s["gradient_accumulation_steps"],
        dtype=s["dtype"],
        attention=s["attention"],
        optimizer=s["optimizer"],
        activation_checkpointing=s["activation_checkpointing"],
        loss_chunks=s["loss_chunks"],
        compile=s["compile"],
        gpu=s["gpu"],
    )
    return cfg, run, M.estimate(cfg, run)


GRID = [
    dict(widgets.MEMORY_DEFAULTS, **kw)
    for kw in [
        {},
        dict(batch_size=1),
        dict(batch_size=64, gradient_accumulation_steps=1),
        dict(n_layer=6, n_head=6, n_embd=384, block_size=512, gpu="3060", dtype="bf16"),
        dict(n_layer=24, n_head=16, n_embd=1024, gpu="A100-80", dtype="bf16", batch_size=16),
        dict(dtype="fp32", attention="math", block_size=256),
        dict(activation_checkpointing=True, batch_size=32),
        dict(activation_checkpointing=True, batch_size=2, gradient_accumulation_steps=1, gpu="H100", dtype="bf16"),
        dict(optimizer="adamw_foreach", gpu="4090", dtype="bf16", batch_size=8),
        dict(optimizer="sgd", gpu="4090", dtype="pure_bf16", batch_size=8),
        dict(optimizer="sgd_momentum", gpu="V100-16", n_embd=512, n_head=8, n_layer=8),
        dict(n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=1, gradient_accumulation_steps=1),
        dict(compile=True),
        dict(loss_chunks=8, n_layer=10, n_head=10, n_embd=640, batch_size=32, gpu="4090", dtype="bf16"),
        dict(compile=True, n_layer=10, n_head=10, n_embd=640, batch_size=32, gpu="4090", dtype="bf16"),
        dict(compile=True, batch_size=16, gpu="4080", dtype="bf16", n_layer=8, n_head=8, n_embd=512),
    ]
]


@pytest.mark.parametrize("s", GRID, ids=range(len(GRID)))
def test_memory_view_shows_exactly_what_estimate_returns(s):
    cfg, run, report = _estimate(s)
    view = widgets.memory_view(**s)
    assert view.error is None
    assert view.report.peak_bytes == report.peak_bytes and view.report.terms == report.terms
    assert view.verdict == report.verdict.label and report.verdict.deciding in view.html
    assert f"<span class='finegpt-peak-gib'>{report.peak_bytes / 2**30:.2f}</span>" in view.html
    assert f">{view.verdict}</b>" in view.html
    # the bar ends where the verdict's range does: its solid part at the low end, the hatched part at the high
    segments = M.bar_segments(report)
    assert sum(v for _, v, kind in segments if kind != "uncertain") == report.verdict.low_bytes
    assert sum(v for _, v, _ in segments) == report.verdict.high_bytes
    assert view.max_batch_size == M.max_micro_batch(cfg, run, s["gpu"])
    tokens_per_step = s["batch_size"] * s["gradient_accumulation_steps"] * s["block_size"]
    assert view.tokens_per_step == tokens_per_step
    if view.max_batch_size:
        assert view.plan == M.plan(cfg, run, tokens_per_step, s["gpu"])
        assert view.plan.batch_size <= view.max_batch_size
    batch = dict(batch_size=run.batch_size, gradient_accumulation_steps=run.gradient_accumulation_steps)
    seconds = M.train_time_range_s(cfg, int(s["tokens"]), s["gpu"], run.label, compiled=run.compile, **batch)
    assert view.hours == pytest.approx(tuple(x / 3600 for x in seconds))  # the speed model, for this batch


@pytest.mark.parametrize(
    "bad,field",
    [
        (dict(n_head=7), "n_embd=768"),
        (dict(dtype="bf16", gpu="T4"), "dtype='bf16'"),
        (dict(gpu="T5"), "gpu="),
        (dict(batch_size=0), "batch_size=0"),
    ],
)
def test_memory_view_shows_the_one_line_error_for_bad_settings(bad, field):
    view = widgets.memory_view(**bad)
    assert view.error.startswith(field) and "finegpt-error" in view.html and view.report is None


def test_memory_ui_redraws_on_every_control_within_100_ms():
    ui = widgets.memory_ui()
    assert set(ui.controls) == set(widgets.MEMORY_DEFAULTS)
    for name, value in [
        ("batch_size", 4),
        ("n_embd", 512),
        ("n_head", 8),
        ("block_size", 512),
        ("dtype", "fp32"),
        ("activation_checkpointing", True),
        ("loss_chunks", 8),
        ("optimizer", "sgd"),
        ("compile", True),
        ("gpu", "4090"),
        ("tokens", 1e10),
    ]:
        ui.controls[name].value = value
        s = {k: c.value for k, c in ui.controls.items()}
        assert ui.last_view.settings == s and ui.output.value == widgets.memory_view(**s).html
        assert ui.last_redraw_s < 0.1
