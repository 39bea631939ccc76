"""Diagrams drawn from a config, and the measured memory timeline behind one of them: its peak is the
measured step's, and within 1 % of estimate() for the same config."""

import re

import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.patches import Rectangle

from finegpt import diagrams
from finegpt.config import ModelConfig
from finegpt.memory import RunConfig, estimate, measure, memory_timeline
from finegpt.model import Block, count_params, param_breakdown

GPT2 = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304)
# notebook 03's CPU timeline: 2 micro-steps, so the second one's peak also holds the first one's gradients
CPU_CFG = ModelConfig(n_layer=2, n_head=4, n_embd=128, block_size=128, vocab_size=320, bias=False)
CPU_RUN = RunConfig(batch_size=8, gradient_accumulation_steps=2, dtype="fp32", device="cpu")


@pytest.fixture(scope="module")
def timeline():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield memory_timeline(CPU_CFG, CPU_RUN)
    torch.set_num_threads(n)


def test_timeline_peak_is_the_measured_step_and_within_one_percent_of_estimate(timeline):
    report = estimate(CPU_CFG, CPU_RUN)
    assert timeline.peak_bytes == measure(CPU_CFG, CPU_RUN)["train"]  # the same step, the same tracker
    assert timeline.peak_bytes == pytest.approx(report.peak_bytes, rel=0.01)
    assert report.peak_phase == "train" and timeline.peak_phase == "backward 2"


def test_timeline_phases_cover_every_op_in_the_order_the_step_runs(timeline):
    names = [name for name, _, _ in timeline.phases]
    assert names == ["forward 1", "backward 1", "forward 2", "backward 2", "optimizer"]
    bounds = [(start, end) for _, start, end in timeline.phases]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(timeline.live_bytes) == len(timeline.ops)
    assert all(end == start for (_, end), (start, _) in zip(bounds, bounds[1:]))
    assert timeline.start_bytes <= min(timeline.live_bytes)  # weights and optimizer state stay throughout


def test_timeline_figure_marks_the_measured_peak_and_the_estimate(timeline):
    report = estimate(CPU_CFG, CPU_RUN)
    fig = diagrams.memory_timeline_figure(timeline, report)
    ax, side = fig.axes[:2]
    step = ax.lines[0]
    assert max(step.get_ydata()) == pytest.approx(timeline.peak_bytes / 2**20)
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith(f"measured peak {timeline.peak_bytes / 2**20:,.2f} MiB\n(backward 2") for t in texts)
    assert any(t.startswith(f"estimate(): {report.peaks['train'] / 2**20:,.2f} MiB") for t in texts)
    assert [t for t in texts if t in ("forward 1", "backward 1", "forward 2", "backward 2", "optimizer")]
    bars = sum(p.get_height() for p in side.patches)
    assert bars == pytest.approx(report.peaks["train"] / 2**20)  # the estimate's terms at that peak, stacked


def test_block_diagram_puts_the_real_modules_shapes_on_every_arrow():
    cfg = ModelConfig(n_layer=1, n_head=4, n_embd=32, block_size=16, vocab_size=64)
    shapes = diagrams.block_shapes(cfg, batch_size=3, tokens=5)
    block, seen = Block(cfg), {}  # the same Block on the CPU, for real
    for name in ("attn.c_attn", "mlp.c_fc", "mlp.gelu", ""):
        block.get_submodule(name).register_forward_hook(lambda m, i, o, n=name: seen.__setitem__(n, tuple(o.shape)))
    block(torch.randn(3, 5, 32))
    assert {k: shapes[k or "block"] for k in seen} == seen
    labels = [t.get_text() for t in diagrams.block_diagram(cfg, 3, 5).axes[0].texts if " = (" in t.get_text()]
    arrows = [t for t in labels if not t.startswith("residual")]
    assert len(arrows) == 13  # x -> ln_1 -> ... -> the second + -> out
    assert {"(B, T, 3C) = (3, 5, 96)", "3 × (B, H, T, hs) = (3, 4, 5, 8)", "(B, T, 4C) = (3, 5, 128)"} <= set(arrows)


def test_param_picture_draws_every_matrix_at_its_own_area():
    fig = diagrams.param_picture(GPT2)
    C = GPT2.n_embd
    area = sum(p.get_width() * p.get_height() for p in fig.axes[0].patches if isinstance(p, Rectangle)) * C * C
    parts = param_breakdown(GPT2)
    matrices = parts["token_embedding"] + parts["position_embedding"] + 12 * GPT2.n_layer * C * C
    assert area == pytest.approx(matrices, rel=1e-9)
    small = count_params(GPT2, non_embedding=False) - matrices  # norms and biases, named in the title
    assert f"{small:,}" in fig.axes[0].get_title()


def test_kv_cache_diagram_shows_filled_new_and_empty_slots():
    cfg = ModelConfig(n_layer=3, n_head=4, n_embd=64, block_size=16, vocab_size=320)
    ax = diagrams.kv_cache_diagram(cfg, pos=6, batch_size=2).axes[0]
    colours = [to_hex(p.get_facecolor()) for p in ax.patches if isinstance(p, Rectangle)]
    assert colours.count(diagrams.CACHE) == 2 * 6  # K and V: slots 0..5 hold earlier tokens
    assert colours.count(diagrams.NEW) == 2  # slot 6 is written now
    assert colours.count("#ffffff") == 2 * (16 - 7)
    text = " ".join(t.get_text() for t in ax.texts)
    assert "(2, 4, 16, 16)" in text and "(2, 4, 1, 7)" in text  # the cache, and one query's weights
    assert re.search(r"2 × 3 × \(2, 4, 16, 16\) × 4 bytes = 0\.05 MiB", text)
    with pytest.raises(ValueError, match="pos=16"):
        diagrams.kv_cache_diagram(cfg, pos=16)
