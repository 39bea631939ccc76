"""ipywidgets UIs for the notebooks, thin over `finegpt.memory` and `finegpt.sample`.

Entry points: memory_ui() (the memory calculator), sample_ui(model, tokenizer).
Each UI's callback calls one pure function here (memory_view, sample_view) that returns plain
strings, so pytest checks the logic over a grid without a browser or a kernel.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

from finegpt.config import GIB
from finegpt.errors import FinegptError


def format_gib(nbytes: float) -> str:
    """How every UI here shows a size: GiB with two decimals (what a browser test compares)."""
    return f"{nbytes / GIB:.2f}"


# ---- the memory calculator --------------------------------------------------------------------

MEMORY_DEFAULTS = dict(
    n_layer=12,
    n_head=12,
    n_embd=768,
    block_size=1024,
    batch_size=12,
    gradient_accumulation_steps=40,
    dtype="fp16",
    attention="flash",
    activation_checkpointing=False,
    loss_chunks=0,
    optimizer="adamw_fused",
    compile=False,
    gpu="T4",
    tokens=1e9,
)
VERDICT_COLOURS = {"fits": "#55a868", "tight": "#dd8452", "out of memory": "#c44e52"}


@dataclass
class MemoryView:
    """Everything the calculator shows for one setting of its controls, as plain values and HTML."""

    settings: dict
    error: str | None = None
    report: object = None
    verdict: str = ""  # estimate's verdict label ('fits', 'tight (inside the uncertainty)', 'out of memory')
    max_batch_size: int = 0
    plan: object = None  # finegpt.memory.BatchPlan keeping tokens per step, or None
    tokens_per_step: int = 0
    iters: int = 0
    hours: tuple[float, float] = (0.0, 0.0)  # (fast, slow), from the card's MFU range
    lines: list[str] = field(default_factory=list)
    html: str = ""


def memory_view(**settings) -> MemoryView:
    """Estimate the settings' peak memory on the GPU, the verdict, the largest micro-batch, a batch plan
    keeping the tokens per step, and the hours for `tokens`. Bad settings give the one-line error instead."""
    from finegpt import memory as M
    from finegpt.config import ModelConfig, TrainConfig

    s = {**MEMORY_DEFAULTS, **settings}
    view = MemoryView(settings=s)
    try:
        cfg = ModelConfig(
            n_layer=s["n_layer"], n_head=s["n_head"], n_embd=s["n_embd"], block_size=s["block_size"], bias=False
        )
        train_cfg = TrainConfig(
            batch_size=s["batch_size"],
            gradient_accumulation_steps=s["gradient_accumulation_steps"],
            activation_checkpointing=bool(s["activation_checkpointing"]),
            loss_chunks=int(s["loss_chunks"]),
            compile=bool(s["compile"]),
        )  # dtype, attention and optimizer are the memory model's names (pure_bf16 and the others: what-ifs)
        match = M.resolve_gpu(s["gpu"])  # 'A100' takes the 40 GB card, and match.note says so
        gpu = match.gpu
        run = M.run_config(train_cfg, gpu=gpu, dtype=s["dtype"], attention=s["attention"], optimizer=s["optimizer"])
        report = M.estimate(cfg, run)
        view.report, view.verdict = report, report.verdict.label
        view.max_batch_size = M.max_micro_batch(cfg, run, gpu)
        view.tokens_per_step = run.tokens_per_step(cfg.block_size)
        if view.max_batch_size:
            view.plan = M.plan(cfg, run, view.tokens_per_step, gpu)
        view.iters = -(-int(s["tokens"]) // view.tokens_per_step)
        batch = dict(batch_size=run.batch_size, gradient_accumulation_steps=run.gradient_accumulation_steps)
        seconds = M.train_time_range_s(cfg, int(s["tokens"]), gpu, run.label, compiled=run.compile, **batch)
        view.hours = tuple(x / 3600 for x in seconds)
    except FinegptError as e:
        view.error = str(e)
        view.html = (
            "<div class='finegpt-memory'><b class='finegpt-error' style='color:#c44e52'>"
            f"{html.escape(str(e))}</b></div>"
        )
        return view
    view.lines = _memory_lines(view, cfg, run, gpu)
    if match.note:
        view.lines.append(f"note: {match.note}")
    view.html = memory_html(view)
    return view


def _memory_lines(view: MemoryView, cfg, run, gpu) -> list[str]:
    from finegpt import memory as M

    acc = run.gradient_accumulation_steps
    r, b, (lo, hi) = view.report, view.plan, M.run_mfu_range(cfg, gpu, run.batch_size, acc, run.compile, run.label)
    low, high = r.nvidia_smi_range
    mode = f"compiled, {r.compiled_status}" if run.compile else "eager"
    return [
        f"model: {M.count_params(cfg) / 1e6:.1f}M parameters (nanoGPT's count), "
        f"{M.flops_per_token(cfg) / 1e9:.2f} GFLOPs per token; {mode}",
        f"peak {format_gib(r.peak_bytes)} GiB allocated ({r.peak_phase}); nvidia-smi {format_gib(low)}-"
        f"{format_gib(high)} GiB; {gpu.name}: {format_gib(r.memory_bytes)} GiB -> {r.verdict}",
        f"largest micro-batch that fits (the high end under the card's memory): {view.max_batch_size}"
        + (
            f"; to keep {view.tokens_per_step:,} tokens/step: batch_size={b.batch_size} x "
            f"gradient_accumulation_steps={b.gradient_accumulation_steps} ({format_gib(b.peak_gib * GIB)} GiB)"
            if b
            else ": nothing fits, try activation checkpointing, compile or a smaller model"
        ),
        f"{view.tokens_per_step:,} tokens/step; {view.settings['tokens']:.3g} tokens = {view.iters:,} steps = "
        f"{view.hours[0]:.2f}-{view.hours[1]:.2f} h at {hi:.0%}-{lo:.0%} MFU "
        f"({M.chinchilla_tokens(cfg) / 1e9:.2f}B tokens is Chinchilla-optimal)",
    ]


def memory_html(view: MemoryView) -> str:
    """A stacked bar against the GPU's memory: the peak's terms, then what nvidia-smi adds (its low end),
    then the low-to-high uncertainty (hatched). finegpt.memory.bar_segments gives the pieces, so the bar
    crosses the black line exactly when the verdict is not 'fits'. Then the verdict and the plan."""
    from finegpt.memory import bar_segments
    from finegpt.plots import term_colour

    r = view.report
    segments = bar_segments(r)
    scale = max(r.memory_bytes, r.nvidia_smi_range[1]) * 1.04

    def style(kind: str, name: str, i: int) -> str:
        if kind == "uncertain":
            return "background:repeating-linear-gradient(45deg,#bbb 0 4px,#eee 4px 8px)"
        return f"background:{'#999' if kind == 'overhead' else term_colour(name, i)}"

    segs = "".join(
        f"<div title='{html.escape(k)}: {format_gib(v)} GiB' style='width:{100 * v / scale:.3f}%;{style(kind, k, i)}'>"
        "</div>"
        for i, (k, v, kind) in enumerate(segments)
    )
    legend = " ".join(
        f"<span style='white-space:nowrap'><span style='display:inline-block;width:10px;height:10px;"
        f"{style(kind, k, i)}'></span> {html.escape(k)} {format_gib(v)}</span>"
        for i, (k, v, kind) in enumerate(segments)
    )
    cap = 100 * r.memory_bytes / scale
    colour = VERDICT_COLOURS[r.verdict.status]
    low, high = r.nvidia_smi_range
    return (
        "<div class='finegpt-memory' style='font-family:sans-serif;max-width:760px'>"
        f"<div style='font-size:15px'>peak <b><span class='finegpt-peak-gib'>{format_gib(r.peak_bytes)}</span> GiB</b> "
        f"allocated ({r.peak_phase} phase), {format_gib(low)}-{format_gib(high)} GiB in nvidia-smi, on the "
        f"{html.escape(r.gpu)} with <span class='finegpt-gpu-gib'>{format_gib(r.memory_bytes)}</span> "
        f"GiB: <b class='finegpt-verdict' style='color:{colour}'>{view.verdict}</b> "
        f"<span class='finegpt-deciding'>({html.escape(r.verdict.deciding)})</span></div>"
        "<div style='position:relative;height:26px;margin:6px 0;background:#eee'>"
        f"<div style='display:flex;height:100%'>{segs}</div>"
        f"<div title='GPU memory' "
        f"style='position:absolute;left:{cap:.3f}%;top:-4px;height:34px;border-left:3px solid black'></div></div>"
        f"<div style='font-size:11px;line-height:1.6'>{legend} (GiB; grey: nvidia-smi's extras, low end; "
        "hatched: low to high; black line: the GPU)</div>"
        "<pre class='finegpt-memory-lines' style='font-size:12px;line-height:1.4;white-space:pre-wrap'>"
        + html.escape("\n".join(view.lines))
        + "</pre></div>"
    )


def _memory_controls(d: dict) -> dict:
    """The calculator's sliders and dropdowns, by setting name, each with a stable CSS class for browser tests."""
    import ipywidgets as w

    from finegpt.memory import GPUS
    from finegpt.run import DTYPES, OPTIMIZERS

    style, layout = {"description_width": "190px"}, w.Layout(width="520px")
    ints = dict(
        n_layer=(1, 48, 1),
        n_head=(1, 32, 1),
        n_embd=(64, 2048, 64),
        batch_size=(1, 128, 1),
        gradient_accumulation_steps=(1, 128, 1),
    )
    controls = {
        k: w.IntSlider(
            value=d[k], min=lo, max=hi, step=st, description=k, continuous_update=False, style=style, layout=layout
        )
        for k, (lo, hi, st) in ints.items()
    }
    controls["block_size"] = w.SelectionSlider(
        options=[64, 128, 256, 512, 1024, 2048, 4096],
        value=d["block_size"],
        description="block_size",
        continuous_update=False,
        style=style,
        layout=layout,
    )
    controls["tokens"] = w.FloatLogSlider(
        value=d["tokens"],
        base=10,
        min=7,
        max=11,
        step=0.1,
        description="tokens (budget)",
        readout_format=".2e",
        continuous_update=False,
        style=style,
        layout=layout,
    )
    dropdowns = dict(
        dtype=list(DTYPES),
        attention=["flash", "math"],
        activation_checkpointing=[("off", False), ("on", True)],
        loss_chunks=[("off", 0), ("4 chunks", 4), ("8 chunks", 8), ("16 chunks", 16), ("32 chunks", 32)],
        optimizer=list(OPTIMIZERS),
        compile=[("off (eager)", False), ("on (torch.compile)", True)],
        gpu=[(f"{k} ({g.memory_gib:g} GiB)", k) for k, g in GPUS.items()],
    )
    for k, options in dropdowns.items():
        controls[k] = w.Dropdown(options=options, value=d[k], description=k, style=style, layout=layout)
    for k, c in controls.items():
        c.add_class(f"finegpt-{k}")  # stable hooks for a browser test
    return controls


MEMORY_LAYOUT = [  # the calculator's two columns: the model and batch, then the run
    ["n_layer", "n_head", "n_embd", "block_size", "batch_size", "gradient_accumulation_steps", "tokens"],
    ["dtype", "attention", "activation_checkpointing", "loss_chunks", "optimizer", "compile", "gpu"],
]


def memory_ui(**defaults):
    """Sliders and dropdowns for the model, batch and run; redraws the bar and verdict on each change.
    The box has `.update()`, `.controls` (name -> widget), `.output` and `.last_view`, `.last_redraw_s`."""
    import ipywidgets as w

    from finegpt.memory import resolve_gpu

    d = {**MEMORY_DEFAULTS, **defaults}
    gpu = resolve_gpu(d["gpu"])  # 'RTX 4090 24GB' -> '4090': the dropdown holds preset keys
    controls = _memory_controls({**d, "gpu": gpu.key})
    out = w.HTML()
    out.add_class("finegpt-memory-output")
    note = [w.HTML(f"<i>note: {html.escape(gpu.note)}</i>")] if gpu.note else []  # 'A100': which card it took
    box = w.VBox([w.HBox([w.VBox([controls[k] for k in column]) for column in MEMORY_LAYOUT]), out, *note])

    def update(_=None):
        t0 = time.perf_counter()
        view = memory_view(**{k: c.value for k, c in controls.items()})
        out.value = view.html
        box.last_view, box.last_redraw_s = view, time.perf_counter() - t0
        return view

    for c in controls.values():
        c.observe(update, names="value")
    box.update, box.controls, box.output = update, controls, out
    update()
    return box


# ---- sampling ---------------------------------------------------------------------------------


def sample_view(
    model,
    tokenizer,
    prompt: str = "",
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    seed: int | None = None,
    sampler=None,
) -> str:
    """One sample as text, or the one-line error for bad settings. None takes finegpt.sample.SAMPLING's
    value; top_k=0 and top_p=1 mean off (the sliders' ends). sampler: GPT.generate's."""
    from finegpt.config import SAMPLING
    from finegpt.sample import generate_text

    given = dict(temperature=temperature, top_k=top_k, max_new_tokens=max_new_tokens, seed=seed)
    s = {**SAMPLING, **{k: v for k, v in given.items() if v is not None}}
    try:
        return generate_text(
            model,
            tokenizer,
            prompt,
            max_new_tokens=s["max_new_tokens"],
            temperature=s["temperature"],
            top_k=s["top_k"] or None,
            top_p=None if top_p >= 1.0 else top_p,
            seed=s["seed"],
            sampler=sampler,
        )[0]
    except FinegptError as e:
        return f"error: {e}"


def sample_ui(model, tokenizer, **defaults):
    """Prompt box, temperature / top-k / top-p / length sliders, a Generate button and the text.
    Generates once with the defaults when built."""
    import ipywidgets as w

    from finegpt.config import SAMPLING

    d = {"prompt": "", **SAMPLING, "top_p": 1.0, **defaults}  # the slider's 1.0 is top-p off
    style, layout = {"description_width": "120px"}, w.Layout(width="480px")
    prompt = w.Textarea(
        value=d["prompt"],
        description="prompt",
        placeholder="empty: start a new document",
        style=style,
        layout=w.Layout(width="480px", height="60px"),
    )
    temperature = w.FloatSlider(
        value=d["temperature"], min=0.0, max=2.0, step=0.05, description="temperature", style=style, layout=layout
    )
    top_k = w.IntSlider(
        value=d["top_k"],
        min=0,
        max=min(1000, tokenizer.vocab_size),
        description="top_k (0 off)",
        style=style,
        layout=layout,
    )
    top_p = w.FloatSlider(
        value=d["top_p"], min=0.05, max=1.0, step=0.05, description="top_p (1 off)", style=style, layout=layout
    )
    max_new = w.IntSlider(
        value=d["max_new_tokens"],
        min=1,
        max=min(1000, 4 * model.config.block_size),
        description="max_new_tokens",
        style=style,
        layout=layout,
    )
    seed = w.IntText(value=d["seed"], description="seed", style=style, layout=w.Layout(width="240px"))
    button = w.Button(description="Generate", button_style="primary")
    out = w.HTML()

    def generate(_=None):
        text = sample_view(
            model, tokenizer, prompt.value, temperature.value, top_k.value, top_p.value, max_new.value, seed.value
        )
        out.value = f"<pre style='white-space: pre-wrap' class='finegpt-sample'>{html.escape(text)}</pre>"

    button.on_click(generate)
    generate()
    box = w.VBox([prompt, temperature, top_k, top_p, max_new, w.HBox([seed, button]), out])
    box.generate, box.output = generate, out
    return box
