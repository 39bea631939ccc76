"""Matplotlib figures for the notebooks: one function per figure, each returning a Figure.

Entry points: param_bars, attention_heatmap, length_histogram, memory_bars, timing_lines, token_probs,
LossPlot.
Figures are built with `matplotlib.figure.Figure`, not pyplot, so a notebook shows each one
exactly once (as the cell's value or through `display`) and nothing piles up in pyplot's state.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from finegpt.config import GIB

if TYPE_CHECKING:
    from finegpt.memory.report import MemoryReport

# one colour per memory term (matched by substring, first match wins), stable across figures and widgets
TERM_COLOURS = [
    ("autocast", "#8172b2"),
    ("temporaries", "#937860"),
    ("weights", "#4c72b0"),
    ("optimizer", "#c44e52"),
    ("gradients", "#55a868"),
    ("activations", "#ccb974"),
    ("logits", "#dd8452"),
    ("eval", "#e8a070"),
    ("ddp", "#da8bc3"),
    ("fsdp", "#da8bc3"),
    ("final norm", "#64b5cd"),
    ("batch", "#8c8c8c"),
    ("buffers", "#b0b0b0"),
    ("reserve", "#d9d9d9"),
    ("context", "#6f6f6f"),
]
_FALLBACK = ["#64b5cd", "#8c8c8c", "#b07aa1", "#9c755f", "#76b7b2"]


def _show_figures_in_ipython() -> None:
    """Let a notebook display a pyplot-free Figure (returned by a cell, or through `display`) as a PNG."""
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(
            Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight", dpi=90)
        )


_show_figures_in_ipython()


def term_colour(name: str, i: int = 0) -> str:
    low = name.lower()
    return next((colour for key, colour in TERM_COLOURS if key in low), _FALLBACK[i % len(_FALLBACK)])


def _human(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f}{unit}"
    return f"{n:.0f}"


def param_bars(parts: dict[str, int], title: str = "Parameters per component") -> Figure:
    """Horizontal bars of `finegpt.model.param_breakdown`, labelled with count and share."""
    names = [k for k, v in parts.items() if v > 0]
    values = [parts[k] for k in names]
    total = sum(values)
    fig = Figure(figsize=(7, 0.5 * len(names) + 1.2), layout="constrained")
    ax = fig.subplots()
    bars = ax.barh(names[::-1], values[::-1], color="#4c72b0")
    for bar, v in zip(bars, values[::-1]):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {_human(v)} ({v / total:.0%})",
            va="center",
            fontsize=9,
        )
    ax.set_xlim(0, max(values) * 1.35)
    ax.xaxis.set_major_formatter(lambda v, _: _human(v))
    ax.set_xlabel("parameters")
    ax.set_title(f"{title}: {_human(total)} in total")
    return fig


def attention_heatmap(weights, labels: list[str], title: str = "Attention weights") -> Figure:
    """A (T, T) attention matrix: row i is how much query token i reads from each key token."""
    T = len(labels)
    cell = min(0.32, 9 / T)  # inches per token: long sequences shrink to about 9 inches
    fig = Figure(figsize=(cell * T + 2.2, cell * T + 1.6), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(weights, cmap="viridis", vmin=0.0)
    size = min(8, 72 * cell * 0.8)  # points: a label never taller than its cell
    ax.set_xticks(range(T), labels, rotation=90, fontsize=size)
    ax.set_yticks(range(T), labels, fontsize=size)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def length_histogram(lengths: list[int], bins: int = 30, title: str = "Document lengths") -> Figure:
    """Histogram of document lengths in tokens, on a log axis (web text is long-tailed)."""
    lo, hi = max(1, min(lengths)), max(lengths)
    edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)] if hi > lo else bins
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.hist(lengths, bins=edges, color="#55a868", edgecolor="white")
    if hi > lo:
        ax.set_xscale("log")
    median = statistics.median(lengths)
    ax.axvline(median, color="black", linestyle="--", linewidth=1)
    ax.text(median, ax.get_ylim()[1] * 0.95, f" median {median:,.0f}", va="top", fontsize=9)
    ax.set_xlabel("tokens per document")
    ax.set_ylabel("documents")
    ax.set_title(f"{title} ({len(lengths):,} documents)")
    return fig


def memory_bars(rows: list[tuple[str, MemoryReport]], title: str = "Peak memory") -> Figure:
    """Stacked horizontal bars, one per (label, finegpt.memory report), drawn from
    finegpt.memory.bar_segments: the peak's terms in colour, nvidia-smi's extras at their low end in grey,
    then the low-to-high uncertainty hatched; a black tick marks the GPU. The solid part ends at the
    verdict's low bytes and the hatch at its high bytes, so the bar and the verdict always agree."""
    from finegpt.memory import bar_segments

    fig = Figure(figsize=(8, 0.55 * len(rows) + 2.4), layout="constrained")
    ax = fig.subplots()
    seen, widest = set(), 0.0
    for y, (_label, report) in enumerate(rows[::-1]):
        left = 0.0
        for i, (name, value, kind) in enumerate(bar_segments(report)):
            if value <= 0:
                continue
            style = {"allocated": dict(color=term_colour(name, i), edgecolor="white")}.get(
                kind,
                dict(color="#bbbbbb", edgecolor="white")
                if kind == "overhead"
                else dict(color="#eeeeee", edgecolor="#888888", hatch="///"),
            )
            label = {"overhead": "nvidia-smi's extras (low end)", "uncertain": "uncertainty (low to high)"}.get(
                kind, name
            )
            ax.barh(y, value / GIB, left=left, label=None if label in seen else label, **style)
            seen.add(label)
            left += value / GIB
        ax.plot([report.memory_bytes / GIB] * 2, [y - 0.45, y + 0.45], color="black", linewidth=2)
        ax.text(left, y, f" {report.verdict.label}", va="center", fontsize=8)
        widest = max(widest, left, report.memory_bytes / GIB)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows[::-1]], fontsize=9)
    ax.set_xlabel("GiB (black tick: the GPU's memory)")
    ax.set_title(title)
    fig.legend(fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    ax.set_xlim(0, widest * 1.35 + 0.01)
    return fig


def timing_lines(
    x: list, series: dict[str, list[float]], xlabel: str, ylabel: str = "seconds", title: str = ""
) -> Figure:
    """One line per series over the same x, with markers: e.g. generation time with and without a KV cache."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(x, ys, marker="o", label=name, color=["#4c72b0", "#c44e52", "#55a868", "#8172b2"][i % 4])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=9)
    return fig


def token_probs(labels: list[str], probs: dict[str, list[float]], title: str = "Next-token probabilities") -> Figure:
    """Grouped bars: the probability of each candidate token under several settings (e.g. temperatures)."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / max(1, len(probs))
    for i, (name, ps) in enumerate(probs.items()):
        ax.bar([j + i * width for j in range(len(labels))], ps, width=width, label=name)
    ax.set_xticks(
        [j + 0.4 - width / 2 for j in range(len(labels))], [repr(s)[1:-1].replace(" ", "␣") for s in labels], fontsize=9
    )
    ax.set_ylabel("probability")
    ax.set_title(title)
    ax.legend(fontsize=9)
    return fig


class LossPlot:
    """A loss / learning-rate plot that redraws in place while training runs.

    `plot = LossPlot().show()`, then `train(..., callback=plot.log)`, or `plot.add(step, train_loss=...,
    val_loss=..., lr=...)` by hand. In a notebook the figure is replaced in the same output area; outside
    one, `show` and `add` only record the points.
    """

    def __init__(self, title: str = "Training", every: int = 1):
        self.title, self.every = title, every
        self.points: dict[str, list[tuple[int, float]]] = {"train_loss": [], "val_loss": [], "lr": []}
        self.marks: list[tuple[int, str]] = []  # (iteration, label): events drawn as vertical lines
        self._handle = None
        self._calls = 0

    def figure(self) -> Figure:
        fig = Figure(figsize=(8, 3.4), layout="constrained")
        ax = fig.subplots()
        for key, style in (
            ("train_loss", dict(color="#4c72b0", linewidth=1)),
            ("val_loss", dict(color="#c44e52", marker="o", linewidth=2)),
        ):
            pts = self.points[key]
            if pts:
                ax.plot(*zip(*pts), label=f"{key.replace('_', ' ')} {pts[-1][1]:.3f}", **style)
        for i, (step, label) in enumerate(self.marks):
            ax.axvline(step, color="#555555", linestyle=":", linewidth=1.2)
            ax.annotate(
                label,
                (step, 1 - 0.1 * (i % 2)),
                xycoords=("data", "axes fraction"),
                xytext=(3, -3),
                textcoords="offset points",
                va="top",
                fontsize=8,
            )
        ax.set_xlabel("iteration")
        ax.set_ylabel("cross-entropy loss")
        ax.set_title(self.title)
        has_loss = any(self.points[k] for k in ("train_loss", "val_loss"))
        if self.points["lr"]:
            ax2 = ax.twinx() if has_loss else ax  # a schedule alone gets the main axis
            ax2.plot(*zip(*self.points["lr"]), color="#8c8c8c", linestyle="--", linewidth=1, label="learning rate")
            ax2.set_ylabel("learning rate", color="#8c8c8c")
            ax2.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        if has_loss:
            ax.legend(loc="upper right", fontsize=9)
        return fig

    def show(self):
        try:
            from IPython.display import display

            self._handle = display(self.figure(), display_id=True)
        except ImportError:
            self._handle = None
        return self

    def add(self, step: int, **metrics) -> None:
        for key, value in metrics.items():
            if key in self.points and value is not None and math.isfinite(value):
                self.points[key].append((step, float(value)))
        self._calls += 1
        if self._handle is not None and (self._calls % self.every == 0 or "val_loss" in metrics):
            self._handle.update(self.figure())

    def mark(self, step: int, label: str) -> None:
        """A vertical line at `step` with a label: an interrupt, a resume."""
        self.marks.append((step, label))
        if self._handle is not None:
            self._handle.update(self.figure())

    def log(self, row: dict) -> None:
        """A training callback: takes the rows `finegpt.train.train` emits (train rows with 'loss' and
        'lr', eval rows with 'train/loss' and 'val/loss') and plots them."""
        if "val/loss" in row:
            self.add(row["iter"], val_loss=row["val/loss"])
        elif "loss" in row:
            self.add(row["iter"], train_loss=row["loss"], lr=row.get("lr"))

    def final(self):
        """Redraw once with every point (call after training)."""
        if self._handle is not None:
            self._handle.update(self.figure())
