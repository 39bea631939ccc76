"""The memory calculator in a real browser (headless Debian chromium): JupyterLab runs notebook 03 and
Voila serves the calculator page; after each slider move the page must show exactly the peak and verdict
that `finegpt.memory.estimate` returns. A copy whose callback is broken must fail the same check."""

import shutil

import jupytext
import nbformat
import pytest
from browser_support import ROOT, estimate_text, jupyter_lab, open_browser, require_browser, voila

from finegpt.widgets import MEMORY_DEFAULTS

NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
SMOKE_GPU = dict(gpu="T4", dtype="fp16")  # what notebook 03 picks without a CUDA GPU
# (slider, key, presses, step): batch 12 -> 10 turns "out of memory" into "tight" on the T4; n_embd 768 -> 960
# passes two widths n_head=12 does not divide (the one-line error shows) and ends out of memory again
MOVES = [("batch_size", "ArrowLeft", 2, -1), ("n_embd", "ArrowRight", 3, 64)]
TIGHT = "tight (inside the uncertainty)"
EXPECTED_FLIPS = (("14.00", "out of memory"), ("12.02", TIGHT), ("13.78", "out of memory"))
REDRAW_MS = 20_000  # a kernel round trip on two busy cores; the wait ends as soon as the text is there


def expect_calculator_shows(page, settings: dict, timeout_ms: int = REDRAW_MS):
    """The peak GiB and verdict (or the one-line error) that estimate() gives for `settings`."""
    from playwright.sync_api import expect

    out = page.locator(".finegpt-memory-output")
    expected = estimate_text(**settings)
    if isinstance(expected, str):
        expect(out.locator(".finegpt-error"), f"error for {settings}").to_have_text(expected, timeout=timeout_ms)
        return
    peak_gib, verdict = expected
    expect(out.locator(".finegpt-peak-gib"), f"peak GiB for {settings}").to_have_text(peak_gib, timeout=timeout_ms)
    expect(out.locator(".finegpt-verdict"), f"verdict for {settings}").to_have_text(verdict, timeout=timeout_ms)


def move_sliders_and_check(page, settings: dict, timeout_ms: int = REDRAW_MS) -> list[tuple]:
    """Press arrow keys on the sliders' handles, one press at a time; returns what was shown after each."""
    from playwright.sync_api import expect

    settings = {**MEMORY_DEFAULTS, **settings}
    expect_calculator_shows(page, settings, timeout_ms)
    shown = [(dict(settings), estimate_text(**settings))]
    for name, key, presses, step in MOVES:
        slider = page.locator(f".finegpt-{name}")
        for _ in range(presses):
            slider.locator(".noUi-handle").press(key)
            settings[name] += step
            expect(slider.locator(".widget-readout")).to_have_text(str(settings[name]), timeout=timeout_ms)
            expect_calculator_shows(page, settings, timeout_ms)
            shown.append((dict(settings), estimate_text(**settings)))
    return shown


def notebook_copy(name: str, dest_dir) -> str:
    """The committed .ipynb (its .py source where no .ipynb exists yet), with a kernel, in `dest_dir`."""
    ipynb, py = NOTEBOOKS / f"{name}.ipynb", NOTEBOOKS / f"{name}.py"
    nb = nbformat.read(ipynb, 4) if ipynb.is_file() else jupytext.read(py)
    nb.metadata["kernelspec"] = KERNELSPEC
    dest_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest_dir / f"{name}.ipynb")
    return f"{name}.ipynb"


RUN_ALL = """async () => {
  const app = window.jupyterapp, panel = app.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('cells still running after 240 s')), 240000));
  const ok = await Promise.race([app.commands.execute('notebook:run-all-cells'), timeout]);
  const errors = [];
  for (const cell of panel.content.model.cells)
    if (cell.type === 'code')
      for (const o of cell.toJSON().outputs)
        if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  return {ok, errors};
}"""
KERNEL_IDLE = """() => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel;
  return k && k.status === 'idle';
}"""
NOTEBOOK_OPEN = """() => {
  const w = window.jupyterapp?.shell.currentWidget;
  return !!(w && w.sessionContext && w.content && w.content.model);
}"""


def test_notebook_03_in_jupyterlab_redraws_exactly_what_estimate_returns(tmp_path):
    require_browser()
    nb_name = notebook_copy("03_memory_math", tmp_path / "notebooks")
    with jupyter_lab(tmp_path / "notebooks", tmp_path) as (server, base_url, token), open_browser(tmp_path) as page:
        page.goto(f"{base_url}/lab/tree/{nb_name}?reset&token={token}")
        page.wait_for_function(NOTEBOOK_OPEN, timeout=60_000)
        result = page.evaluate(RUN_ALL)
        assert result == {"ok": True, "errors": []}, server.log
        page.wait_for_function(KERNEL_IDLE, timeout=30_000)
        widget = page.locator(".finegpt-memory-output").locator("xpath=..")
        widget.scroll_into_view_if_needed()

        shown = move_sliders_and_check(page, {**SMOKE_GPU})
        widget.screenshot(path=str(tmp_path / "calculator-jupyterlab.png"))
        page.screenshot(path=str(tmp_path / "jupyterlab.png"))
    # the verdict flips both ways on the way
    assert (shown[0][1], shown[2][1], shown[-1][1]) == EXPECTED_FLIPS


def voila_page_check(tmp_path, notebook, timeout_ms: int = REDRAW_MS):
    with voila(notebook, tmp_path) as (server, url), open_browser(tmp_path) as page:
        page.goto(url)
        page.locator(".finegpt-memory-output .finegpt-verdict").wait_for(timeout=60_000)
        try:
            return move_sliders_and_check(page, {}, timeout_ms)
        finally:
            page.screenshot(path=str(tmp_path / f"{notebook.stem}.png"), full_page=True)


def test_calculator_page_in_voila_redraws_exactly_what_estimate_returns(tmp_path):
    require_browser()
    shutil.copy(NOTEBOOKS / "calculator.ipynb", tmp_path)
    shown = voila_page_check(tmp_path, tmp_path / "calculator.ipynb")
    assert len(shown) == 1 + sum(presses for _, _, presses, _ in MOVES)
    assert (shown[0][1], shown[2][1], shown[-1][1]) == EXPECTED_FLIPS


BROKEN = (
    "import finegpt.widgets as _w\n_real = _w.memory_view\n"
    "_w.memory_view = lambda **s: _real(**{**s, 'batch_size': 12})  # a callback that ignores the batch slider"
)


def test_a_callback_that_ignores_a_slider_fails_the_browser_check(tmp_path):
    """The check above is not vacuous: the same page, with a bug the kernel alone would not notice."""
    require_browser()
    nb = nbformat.read(NOTEBOOKS / "calculator.ipynb", 4)
    nb.cells.append(nbformat.v4.new_code_cell(BROKEN))  # after the UI is built: its first draw is right
    nbformat.write(nb, tmp_path / "calculator_broken.ipynb")
    with pytest.raises(AssertionError, match=r"(?s)peak GiB for .*'batch_size': 11,.*Actual value: 14\.00"):
        voila_page_check(tmp_path, tmp_path / "calculator_broken.ipynb", timeout_ms=3_000)


def test_calculator_ipynb_has_the_same_cells_as_its_py_source():
    def cells(path):
        return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]

    assert cells(NOTEBOOKS / "calculator.ipynb") == cells(NOTEBOOKS / "calculator.py"), (
        "run `jupytext --sync notebooks/calculator.py`"
    )
