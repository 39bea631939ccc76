"""Diagrams drawn from a config: what a reader would rather look at than read.

Entry points: block_diagram (a Block, the tensor shape on every arrow), param_picture (every weight
matrix to scale), memory_timeline_figure (one measured training step's memory, the peak marked), and
kv_cache_diagram (where the KV cache sits in a decoding step). Each returns a matplotlib Figure, built
without pyplot as in finegpt.plots. Shapes come from the real modules, run on the meta device.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from finegpt.config import ModelConfig
from finegpt.model import Block, KVCache, param_breakdown
from finegpt.plots import term_colour

MIB = 2**20
ATTN, MLP_, NORM, CACHE = "#dbe6f4", "#f7e1cc", "#e6e6e6", "#c9c9c9"
NEW = "#dd8452"


def _box(ax, x, y, w, h, text, colour, fontsize=9, **kw):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02", fc=colour, ec="#444", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, **kw)


def _arrow(ax, start, end, label="", side="right", colour="#333"):
    ax.annotate("", end, start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.2, shrinkA=0, shrinkB=0))
    if label:
        x, y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ha, dx = ("left", 0.08) if side == "right" else ("right", -0.08)
        ax.text(x + dx, y, label, ha=ha, va="center", fontsize=8, family="monospace", color="#1f3b73")


# ---- a Block, with the shape on every arrow -------------------------------------------------------


def block_shapes(cfg: ModelConfig, batch_size: int = 2, tokens: int | None = None) -> dict[str, tuple]:
    """Output shape of every piece of one Block, from forward hooks on a real Block on the meta device."""
    T = tokens or cfg.block_size
    with torch.device("meta"):
        block = Block(cfg)
        x = torch.empty(batch_size, T, cfg.n_embd)  # (B, T, C)
    names = ["ln_1", "attn.c_attn", "attn", "ln_2", "mlp.c_fc", "mlp.gelu", "mlp.c_proj", ""]
    shapes, modules = {"x": tuple(x.shape)}, dict(block.named_modules())
    for name in names:
        modules[name].register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name or "block", o.shape))
    block(x)
    B, H = batch_size, cfg.n_head
    shapes["heads"] = (B, H, T, cfg.n_embd // H)  # q, k, v and the attention output, split into heads
    return {k: tuple(v) for k, v in shapes.items()}


def block_diagram(cfg: ModelConfig, batch_size: int = 2, tokens: int | None = None) -> Figure:
    """One pre-LN Block top to bottom: x + attn(ln_1(x)), then x + mlp(ln_2(x)), every arrow labelled
    with its tensor's shape, in letters and in numbers for this config."""
    s = block_shapes(cfg, batch_size, tokens)
    sym = lambda letters, shape: f"({letters}) = {shape}"  # noqa: E731
    btc, heads = sym("B, T, C", s["x"]), sym("B, H, T, hs", s["heads"])
    steps = [  # (box text, colour, shape of the arrow leaving it)
        ("x", None, btc),
        ("ln_1", NORM, sym("B, T, C", s["ln_1"])),
        ("c_attn: C → 3C", ATTN, sym("B, T, 3C", s["attn.c_attn"])),
        ("split q, k, v into H heads", ATTN, "3 × " + heads),
        ("softmax(q·kᵀ/√hs + causal mask)·v", ATTN, heads),
        ("merge heads", ATTN, btc),
        ("c_proj: C → C", ATTN, sym("B, T, C", s["attn"])),
        ("+", "white", btc),
        ("ln_2", NORM, sym("B, T, C", s["ln_2"])),
        ("c_fc: C → 4C", MLP_, sym("B, T, 4C", s["mlp.c_fc"])),
        ("GELU", MLP_, sym("B, T, 4C", s["mlp.gelu"])),
        ("c_proj: 4C → C", MLP_, sym("B, T, C", s["mlp.c_proj"])),
        ("+", "white", sym("B, T, C", s["block"])),
        ("out", None, None),
    ]
    fig = Figure(figsize=(7.5, 0.62 * len(steps) + 1), layout="constrained")
    ax = fig.subplots()
    ys = [-i for i in range(len(steps))]
    ax.add_patch(Rectangle((-2.3, ys[7] - 0.3), 3.6, ys[1] - ys[7] + 0.6, fc=ATTN, alpha=0.35, ec="none"))
    ax.add_patch(Rectangle((-2.3, ys[12] - 0.3), 3.6, ys[8] - ys[12] + 0.6, fc=MLP_, alpha=0.35, ec="none"))
    ax.text(-2.2, ys[1] + 0.15, "attention", fontsize=8, color="#555", va="bottom")
    ax.text(-2.2, ys[8] + 0.15, "MLP", fontsize=8, color="#555", va="bottom")
    for (text, colour, shape), y in zip(steps, ys):
        if colour is None:
            ax.text(0, y, text, ha="center", va="center", fontsize=10, weight="bold")
        else:
            _box(ax, 0, y, 0.5 if text == "+" else 2.6, 0.5, text, colour)
        if shape:
            _arrow(ax, (0, y - 0.25 if colour else y - 0.2), (0, y - 0.75), shape)
    for src, plus in ((0, 7), (7, 12)):  # the residual stream skips each sublayer
        ax.plot([0, -1.9, -1.9], [ys[src] - 0.45, ys[src] - 0.45, ys[plus]], color="#555", lw=1.2)
        _arrow(ax, (-1.9, ys[plus]), (-0.27, ys[plus]), colour="#555")
        ax.text(-1.95, (ys[src] + ys[plus]) / 2, "residual " + btc, rotation=90, ha="right", va="center", fontsize=7)
    ax.set_xlim(-2.6, 5.2)
    ax.set_ylim(ys[-1] - 0.5, 0.5)
    ax.axis("off")
    H, C = cfg.n_head, cfg.n_embd
    ax.set_title(f"One Block: B={s['x'][0]}, T={s['x'][1]}, C={C}, H={H}, hs=C/H={C // H}", fontsize=10)
    return fig


# ---- the parameters, every matrix to scale --------------------------------------------------------


def param_picture(cfg: ModelConfig, title: str = "") -> Figure:
    """Every weight matrix as a rectangle of its own area: one row per block (c_attn C×3C, c_proj C×C,
    c_fc C×4C, c_proj 4C×C, so 12·C² per row) under the token embedding V×C and the positions T×C,
    folded to the same row width. Norms and biases are too thin to see; the title counts them."""
    C, L = cfg.n_embd, cfg.n_layer
    parts = param_breakdown(cfg)
    total, row = sum(parts.values()), 12 * C * C  # a row is C tall and 12·C wide: 12 x 1 in units of C
    height_rows = L + 0.5 + (parts["token_embedding"] + parts["position_embedding"]) / row
    fig = Figure(figsize=(8, min(14, 1.4 + 0.4 * height_rows)), layout="constrained")
    ax = fig.subplots()
    y = 0.0
    for key, label, colour in (
        ("token_embedding", f"token embedding V×C = {cfg.vocab_size}×{C} (lm_head is the same matrix)", "#4c72b0"),
        ("position_embedding", f"position embedding T×C = {cfg.block_size}×{C}", "#64b5cd"),
    ):
        height = parts[key] / row
        y -= height
        ax.add_patch(Rectangle((0, y), 12, height, fc=colour, ec="white"))
        ax.text(0.2, y + height / 2 if height > 0.6 else y - 0.05, label, va="center" if height > 0.6 else "top",
                color="white" if height > 0.6 else "#333", fontsize=8)  # fmt: skip
        ax.text(12.2, y + height / 2, f"{parts[key] / 1e6:,.2f}M ({parts[key] / total:.0%})", va="center", fontsize=8)
        y -= 0.35
    for layer in range(L):
        y -= 1
        x = 0.0
        for name, w, colour in (("attn.c_attn", 3, "#8fb0d9"), ("c_proj", 1, "#5b85bf"), ("mlp.c_fc", 4, "#e8a070"),
                                ("mlp.c_proj", 4, "#c4763c")):  # fmt: skip
            ax.add_patch(Rectangle((x, y), w, 1, fc=colour, ec="white"))
            if layer == 0 or L <= 4:
                ax.text(x + w / 2, y + 0.5, name, ha="center", va="center", fontsize=7)
            x += w
        ax.text(12.2, y + 0.5, f"block {layer}: {row / 1e6:,.2f}M", va="center", fontsize=8)
    small = total - parts["token_embedding"] - parts["position_embedding"] - L * row
    ax.set_xlim(0, 15)
    ax.set_ylim(y - 0.2, 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        (title + "\n" if title else "")
        + f"{total:,} parameters, every matrix to scale (a row is 12·C² = {row:,});\n"
        + f"norms and biases, too thin to draw: {small:,} ({small / total:.2%})",
        fontsize=9,
    )
    return fig


# ---- one training step's memory, measured ---------------------------------------------------------


def memory_timeline_figure(timeline, report=None, title: str = "One training step, measured") -> Figure:
    """Live MiB after every op of a finegpt.memory.timeline.Timeline, its phases shaded, its peak marked.
    With report (finegpt.memory.estimate for the same config): the predicted peak as a dashed line, and
    beside the plot the terms estimate() says are alive at that peak."""
    live = [b / MIB for b in timeline.live_bytes]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax, side = fig.subplots(1, 2, width_ratios=[5, 1]) if report is not None else (fig.subplots(), None)
    for name, start, end in timeline.phases:
        colour = {"f": "#dbe6f4", "b": "#f7e1cc", "o": "#dcefdc"}[name[0]]
        ax.axvspan(start, end, color=colour, alpha=0.8, lw=0)
        ax.text((start + end) / 2, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.step(range(len(live)), live, where="post", color="#333", lw=1.2)
    ax.axhline(timeline.start_bytes / MIB, color="#4c72b0", ls=":", lw=1)
    ax.text(0, timeline.start_bytes / MIB, " before the step: weights, optimizer state", va="bottom", fontsize=8)
    i = timeline.peak_index
    ax.plot([i], [live[i]], "o", color="#c44e52")
    ax.annotate(
        f"measured peak {live[i]:,.2f} MiB\n({timeline.peak_phase}, after {timeline.ops[i].split('.')[1]})",
        (i, live[i]), (0.25, 0.03), textcoords="axes fraction", fontsize=8, color="#c44e52", va="bottom",
        arrowprops=dict(arrowstyle="->", color="#c44e52"),
    )  # fmt: skip
    if report is not None:
        phase = max(("train", "optimizer"), key=report.peaks.get)
        predicted = report.peaks[phase] / MIB
        ax.axhline(predicted, color="#c44e52", ls="--", lw=1)
        label = f"estimate(): {predicted:,.2f} MiB ({predicted / live[i] - 1:+.2%})"
        ax.text(len(live) * 0.01, predicted, label, va="bottom", fontsize=8, color="#c44e52")
        bottom = 0.0
        for k, (name, b) in enumerate(report.phase_terms[phase].items()):
            side.bar(0, b / MIB, bottom=bottom, color=term_colour(name, k), edgecolor="white", label=name)
            bottom += b / MIB
        ax.set_ylim(0, max(live[i], predicted) * 1.08)
        side.set_ylim(ax.get_ylim())
        side.set_xticks([])
        side.set_title(f"estimate(): {phase} peak", fontsize=8)
        side.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, len(live))
    ax.set_xlabel("ops of the step, in order")
    ax.set_ylabel("MiB allocated")
    ax.set_title(title, pad=16)
    return fig


# ---- where the KV cache sits in one decoding step -------------------------------------------------


def _cache_cells(block_size: int, pos: int) -> list[int | None]:
    """The slots to draw: all of a short cache; for a long one the start, around pos and the end (None: …)."""
    if block_size <= 24:
        return list(range(block_size))
    keep = sorted({0, 1, 2, *range(max(0, pos - 3), min(block_size, pos + 4)), block_size - 1})
    cells = []
    for a, b in zip(keep, keep[1:] + [None]):
        cells.append(a)
        if b is not None and b > a + 1:
            cells.append(None)
    return cells


def kv_cache_diagram(cfg: ModelConfig, pos: int, batch_size: int = 1, dtype_bytes: int = 4) -> Figure:
    """One decoding step at position pos, for one layer: only the new token runs through the model; its
    key and value are written into slot pos of the layer's cache, and its query attends over slots
    0..pos. Shapes come from a real KVCache (model.KVCache) on the meta device."""
    if not 0 <= pos < cfg.block_size:
        raise ValueError(f"pos={pos}: outside the cache of block_size={cfg.block_size}. Use 0 <= pos < block_size.")
    B, H, C, L, V = batch_size, cfg.n_head, cfg.n_embd, cfg.n_layer, cfg.vocab_size
    cache = KVCache(B, H, cfg.block_size, C // H, "meta", torch.float32)
    new = (B, H, 1, C // H)
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    ax = fig.subplots()
    _box(ax, 1.3, 5, 2.0, 0.7, f"new token\n(position {pos})", NORM)
    _box(ax, 4.6, 5, 2.2, 0.7, "wte[id] + wpe[pos]", NORM)
    _box(ax, 8.4, 5, 2.4, 0.7, "ln_1, then c_attn", ATTN)
    _arrow(ax, (2.2, 5), (3.5, 5))
    ax.text(2.85, 5.15, f"{(B, 1)}", ha="center", fontsize=8, family="monospace", color="#1f3b73")
    _arrow(ax, (5.7, 5), (7.2, 5))
    ax.text(6.45, 5.15, f"{(B, 1, C)}", ha="center", fontsize=8, family="monospace", color="#1f3b73")
    cells = _cache_cells(cfg.block_size, pos)
    x0, w = 3.0, min(0.45, 9.0 / len(cells))
    for row_y, name in ((3.2, "K"), (2.0, "V")):
        ax.text(x0 - 0.15, row_y, f"{name} cache (B, H, block_size, hs)\n= {tuple(cache.k.shape)}", ha="right",
                va="center", fontsize=8)  # fmt: skip
        for j, slot in enumerate(cells):
            colour = "white" if slot is None or slot > pos else NEW if slot == pos else CACHE
            if slot is None:
                ax.text(x0 + j * w + w / 2, row_y, "…", ha="center", va="center")
                continue
            ax.add_patch(Rectangle((x0 + j * w, row_y - 0.25), w, 0.5, fc=colour, ec="#777", lw=0.6))
    at, right = x0 + cells.index(pos) * w + w / 2, x0 + len(cells) * w
    _arrow(ax, (8.4, 4.65), (at, 3.45), f"k {new}")
    ax.annotate("", (at, 2.25), (9.3, 4.65), arrowprops=dict(arrowstyle="-|>", color="#333", lw=1.2))
    ax.text(9.4, 3.9, f"v {new}", fontsize=8, family="monospace", color="#1f3b73")
    _box(ax, 13.4, 4.1, 2.6, 0.5, f"q {new}", ATTN, family="monospace", fontsize=8)
    _arrow(ax, (9.6, 5), (13.4, 4.35))
    _box(ax, 13.4, 2.6, 2.8, 1.0, f"attention over slots 0..{pos}:\nsoftmax(q·Kᵀ/√hs) {(B, H, 1, pos + 1)}\n"
         f"· V → y {new}", ATTN, fontsize=7.5)  # fmt: skip
    _arrow(ax, (13.4, 3.85), (13.4, 3.1))
    _arrow(ax, (right + 0.1, 3.2), (12.0, 2.8), f"K[:, :, :{pos + 1}]", side="left")
    _arrow(ax, (right + 0.1, 2.0), (12.0, 2.4), f"V[:, :, :{pos + 1}]", side="left")
    end = x0 + cells.index(pos) * w + w
    ax.plot([x0, x0, end, end], [1.55, 1.45, 1.45, 1.55], color="#c44e52", lw=1.2)
    ax.text(x0, 1.3, f"read in this step: slots 0..{pos}", va="top", fontsize=8, color="#c44e52")
    _box(ax, 13.4, 1.35, 2.8, 0.6, f"merge heads, c_proj → {(B, 1, C)},\nthen the MLP", ATTN, fontsize=7.5)
    _arrow(ax, (13.4, 2.1), (13.4, 1.65))
    after = f"× {L} layers, then ln_f, lm_head → logits {(B, 1, V)}\n→ sample the token for position {pos + 1}"
    ax.text(13.4, 0.9, after, ha="center", va="top", fontsize=7.5)
    cache_bytes = 2 * L * cache.k.numel() * dtype_bytes
    ax.text(0.1, 0.75, "grey: keys and values of earlier tokens, kept; orange: written in this step; white: empty.\n"
            f"All {L} layers' caches: 2 × {L} × {tuple(cache.k.shape)} × {dtype_bytes} bytes = "
            f"{cache_bytes / MIB:,.2f} MiB, allocated once.", va="top", fontsize=8, color="#444")  # fmt: skip
    ax.set_xlim(0, 15)
    ax.set_ylim(0, 5.6)
    ax.axis("off")
    ax.set_title(f"One decoding step with a KV cache (one layer shown): 1 new token, not {pos + 1}", fontsize=10)
    return fig
