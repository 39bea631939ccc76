"""ipywidgets UIs for the notebooks, thin over `finegpt.memory` and `finegpt.sample`.

Entry points: memory_ui() (the memory calculator), sample_ui(model, tokenizer).
Each UI's callback calls one pure function here (memory_view, sample_view) that returns plain
strings, so pytest checks the logic over a grid without a browser or a kernel.
"""

from __future__ import annotations

import html

from finegpt.errors import FinegptError

# ---- sampling ---------------------------------------------------------------------------------

SAMPLE_DEFAULTS = dict(prompt="", temperature=0.8, top_k=200, top_p=1.0, max_new_tokens=200, seed=1337)


def sample_view(model, tokenizer, prompt: str = "", temperature: float = 0.8, top_k: int = 200,
                top_p: float = 1.0, max_new_tokens: int = 200, seed: int = 1337) -> str:
    """One sample as text, or the one-line error for bad settings. top_k=0 and top_p=1 mean off."""
    from finegpt.sample import generate_text

    try:
        return generate_text(model, tokenizer, prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_k=top_k or None, top_p=None if top_p >= 1.0 else top_p, seed=seed)[0]
    except FinegptError as e:
        return f"error: {e}"


def sample_ui(model, tokenizer, **defaults):
    """Prompt box, temperature / top-k / top-p / length sliders, a Generate button and the text.
    Generates once with the defaults when built."""
    import ipywidgets as w

    d = {**SAMPLE_DEFAULTS, **defaults}
    style, layout = {"description_width": "120px"}, w.Layout(width="480px")
    prompt = w.Textarea(value=d["prompt"], description="prompt", placeholder="empty: start a new document",
                        style=style, layout=w.Layout(width="480px", height="60px"))
    temperature = w.FloatSlider(value=d["temperature"], min=0.0, max=2.0, step=0.05, description="temperature",
                                style=style, layout=layout)
    top_k = w.IntSlider(value=d["top_k"], min=0, max=min(1000, tokenizer.vocab_size), description="top_k (0 off)",
                        style=style, layout=layout)
    top_p = w.FloatSlider(value=d["top_p"], min=0.05, max=1.0, step=0.05, description="top_p (1 off)",
                          style=style, layout=layout)
    max_new = w.IntSlider(value=d["max_new_tokens"], min=1, max=min(1000, 4 * model.config.block_size),
                          description="max_new_tokens", style=style, layout=layout)
    seed = w.IntText(value=d["seed"], description="seed", style=style, layout=w.Layout(width="240px"))
    button = w.Button(description="Generate", button_style="primary")
    out = w.HTML()

    def generate(_=None):
        text = sample_view(model, tokenizer, prompt.value, temperature.value, top_k.value, top_p.value,
                           max_new.value, seed.value)
        out.value = f"<pre style='white-space: pre-wrap' class='finegpt-sample'>{html.escape(text)}</pre>"

    button.on_click(generate)
    generate()
    box = w.VBox([prompt, temperature, top_k, top_p, max_new, w.HBox([seed, button]), out])
    box.generate, box.output = generate, out
    return box
