"""Figures: each plot function returns a Figure with the data it was given, drawn without pyplot."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from finegpt import plots
from finegpt.config import ModelConfig
from finegpt.model import param_breakdown


def test_param_bars_draws_one_bar_per_nonzero_component_with_its_share():
    parts = param_breakdown(ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304))
    fig = plots.param_bars(parts)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(ax.patches) == sum(v > 0 for v in parts.values())
    assert sorted(p.get_width() for p in ax.patches) == sorted(v for v in parts.values() if v > 0)
    assert any(t.get_text().strip() == "38.6M (31%)" for t in ax.texts)


def test_attention_heatmap_shows_the_matrix_with_token_labels():
    w = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    fig = plots.attention_heatmap(w, ["a", "b", "c", "d"])
    ax = fig.axes[0]
    assert np.array_equal(ax.images[0].get_array(), w)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]


def test_length_histogram_counts_every_document_and_marks_the_median():
    lengths = [10, 20, 30, 40, 1000]
    ax = plots.length_histogram(lengths).axes[0]
    assert sum(p.get_height() for p in ax.patches) == 5
    assert any("median 30" in t.get_text() for t in ax.texts)


def test_memory_bars_draw_the_segments_the_verdict_counts_and_mark_the_gpu():
    from finegpt.memory import RunConfig, bar_segments, custom_gpu, estimate

    cfg = ModelConfig(n_layer=10, n_head=10, n_embd=640)
    reports = [estimate(cfg, RunConfig(batch_size=b, dtype="bf16", gpu=custom_gpu(24))) for b in (4, 32)]
    ax = plots.memory_bars([("small", reports[0]), ("guide", reports[1])]).axes[0]
    for y, report in zip((1, 0), reports):  # rows are drawn bottom-up
        widths = [p.get_width() for p in ax.patches if abs(p.get_y() + p.get_height() / 2 - y) < 1e-6]
        segments = [v for _, v, _ in bar_segments(report) if v > 0]
        assert widths == pytest.approx([v / plots.GIB for v in segments])
        assert sum(widths) == pytest.approx(report.verdict.high_bytes / plots.GIB)
    assert [t.get_text().strip() for t in ax.texts] == [r.verdict.label for r in reports[::-1]]
    assert [reports[0].verdict.status, reports[1].verdict.status] == ["fits", "out of memory"]
    assert len(ax.lines) == 2  # one GPU tick per bar
    assert any(p.get_hatch() for p in ax.patches)  # the uncertainty, hatched


def test_loss_plot_records_points_and_draws_them_outside_a_notebook():
    plot = plots.LossPlot()
    plot.add(0, val_loss=5.0, train_loss=5.1, lr=0.0)
    plot.add(10, train_loss=4.0, lr=1e-3)
    plot.add(20, train_loss=float("nan"))  # dropped, never drawn
    assert plot.points["train_loss"] == [(0, 5.1), (10, 4.0)] and plot.points["val_loss"] == [(0, 5.0)]
    fig = plot.figure()
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2


def test_loss_plot_log_reads_the_rows_the_training_loop_emits():
    plot = plots.LossPlot()
    for row in [
        {"iter": 0, "train/loss": 5.6, "val/loss": 5.5, "lr": 0.0},
        {"iter": 5, "loss": 4.0, "lr": 1e-3, "tokens_per_s": 100.0, "mfu": None, "dt_s": 0.1},
    ]:
        plot.log(row)
    assert plot.points == {"train_loss": [(5, 4.0)], "val_loss": [(0, 5.5)], "lr": [(5, 1e-3)]}


def test_loss_plot_marks_events_as_labelled_vertical_lines():
    plot = plots.LossPlot()
    plot.add(0, train_loss=5.0)
    plot.add(300, train_loss=3.0)
    plot.mark(250, "resumed from 250")
    plot.mark(280, "interrupted at 280")
    ax = plot.figure().axes[0]
    vertical = [line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert vertical == [250, 280] and [t.get_text() for t in ax.texts] == ["resumed from 250", "interrupted at 280"]


def test_timing_lines_draws_one_line_per_series():
    ax = plots.timing_lines([1, 2, 3], {"cache": [0.1, 0.2, 0.3], "no cache": [0.1, 0.4, 0.9]}, "tokens").axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.1, 0.2, 0.3], [0.1, 0.4, 0.9]]


def test_token_probs_draws_a_bar_per_token_and_setting():
    ax = plots.token_probs(["a", "\n"], {"T=1": [0.6, 0.4], "T=2": [0.55, 0.45]}).axes[0]
    assert [round(p.get_height(), 2) for p in ax.patches] == [0.6, 0.4, 0.55, 0.45]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "\\n"]
