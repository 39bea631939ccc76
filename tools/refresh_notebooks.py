"""Regenerate the committed notebooks: sync each py:percent source into its .ipynb, run it and save the
outputs, so GitHub and Colab show the lessons happening.

    python tools/refresh_notebooks.py                 # all five in cpu mode, then their solutions (committed)
    python tools/refresh_notebooks.py --mode smoke    # quicker, to check a change
    python tools/refresh_notebooks.py 02 04           # some (with the earlier ones they need), and their solutions

The notebooks run in order in one fresh lab folder (FINEGPT_HOME), as a student runs them (02 and 04
read 01's shards, 05 reads 04's checkpoint), never from files an earlier refresh left behind. Asking
for 05 alone runs 01 and 04 first, unsaved. The fresh folder's path is shown as ~ in the saved outputs,
where a student's default lab folder (~/finegpt-lab) lives.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
NEEDS = {"02": ["01"], "04": ["01"], "05": ["01", "04"]}  # what each reads from the lab folder
WIDGET_TEXT = "[interactive widget: run the notebook to use it; the next cell shows the same function's answer]"


def sources(prefixes: list[str], folder: Path = NOTEBOOKS) -> list[Path]:
    return sorted(p for p in folder.glob("[0-9][0-9]_*.py") if not prefixes or p.name[:2] in prefixes)


def run(py: Path, workdir: str, timeout_s: int = 1800) -> tuple[nbformat.NotebookNode, float]:
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": workdir}}).execute()
    return nb, time.perf_counter() - t0


def _unmachine(value, home: str):
    if isinstance(value, str):
        return value.replace(home, "~")
    if isinstance(value, list):
        return [_unmachine(v, home) for v in value]
    return value


def final_bar_text(model_id: str, widget_state: dict) -> str | None:
    """A tqdm.auto bar's last state ('train: 100%|##########| 2.46M/2.46M [01:02<00:00, 39.4ktok/s]') from
    the widget state the run saved; None when model_id is not a progress bar. The output's own text is the
    bar when it was first drawn (0%), which is all a static viewer would show otherwise."""
    import html

    state = widget_state.get(model_id, {}).get("state", {})
    children = [widget_state.get(c.removeprefix("IPY_MODEL_"), {}) for c in state.get("children", [])]
    if [c.get("model_name") for c in children] != ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        return None
    left, bar, right = (c["state"] for c in children)
    filled = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    text = f"{left.get('value', '')}|{'#' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def save(nb: nbformat.NotebookNode, py: Path, home: str) -> None:
    widget_state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:  # keep diffs to what a reader sees
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _unmachine(out["text"], home)
            data = out.get("data", {})
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in data:
                    data[kind] = _unmachine(data[kind], home)
            view = data.get("application/vnd.jupyter.widget-view+json")
            if view and "".join(data.get("text/plain", "")).startswith(("VBox(", "HBox(")):  # a UI, not a progress bar
                data["text/plain"] = WIDGET_TEXT  # what static viewers show in its place
            elif view and (bar := final_bar_text(view["model_id"], widget_state)):
                data["text/plain"] = _unmachine(bar, home)  # where the bar ended, not where it started
    nb.metadata.pop("widgets", None)
    nb.metadata.get("jupytext", {}).pop("text_representation", None)  # as `jupytext --sync` writes it
    nbformat.write(nb, py.with_suffix(".ipynb"))


def refresh(prefixes: list[str], mode: str, keep: Path | None = None) -> dict[str, float]:
    """Run (and save) the asked-for notebooks in one fresh lab folder; returns seconds per notebook.
    keep: run in this (new) folder and leave the lab there, to look into a failure."""
    wanted = sources(prefixes)
    order = sorted({p.name[:2] for p in wanted} | {n for p in wanted for n in NEEDS.get(p.name[:2], [])})
    times = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(keep.resolve()) if keep else scratch
        if keep:
            keep.mkdir(parents=True, exist_ok=False)
        os.environ["FINEGPT_HOME"] = str(Path(tmp) / "finegpt-lab")
        os.environ["FINEGPT_MODE"] = mode
        for py in sources(order):
            nb, seconds = run(py, tmp)
            if py in wanted:
                save(nb, py, tmp)
            times[py.name] = seconds
            print(
                f"{py.name}: {seconds:.1f} s{'' if py in wanted else ' (run for its outputs, not saved)'}", flush=True
            )
        for py in sources(prefixes, NOTEBOOKS / "solutions"):  # worked solutions need nothing from the lab
            nb, seconds = run(py, tmp)
            save(nb, py, tmp)
            times[py.name] = seconds
            print(f"{py.name}: {seconds:.1f} s", flush=True)
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="two-digit prefixes; none means all five")
    parser.add_argument("--mode", default="cpu", choices=["smoke", "cpu"], help="cpu (committed outputs) or smoke")
    parser.add_argument("--keep", type=Path, help="a new folder to run in and keep (to look into a failure)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import nbval_conftest  # noqa: F401  (offline, one thread per kernel: the environment the nbval test uses)

    total = refresh(args.notebooks, args.mode, args.keep)
    print(f"total: {sum(total.values()):.1f} s in {args.mode} mode (load average {os.getloadavg()[0]:.1f})")
