"""Regenerate the committed notebooks: sync each py:percent source into its .ipynb, run it in
smoke mode (tiny, offline, CPU) and save the outputs, so GitHub and Colab show plots and tables.

    python notebooks/refresh.py            # all five
    python notebooks/refresh.py 03 05      # some
"""

import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def sources(prefixes: list[str]) -> list[Path]:
    paths = sorted(p for p in HERE.glob("[0-9][0-9]_*.py"))
    return [p for p in paths if not prefixes or any(p.name.startswith(x) for x in prefixes)]


def refresh(py: Path, timeout_s: int = 600) -> float:
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in nb.cells:  # keep diffs to what a reader sees
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:  # static viewers show only this text
                data["text/plain"] = "[interactive widget: run the notebook to use it]"
    nb.metadata.pop("widgets", None)
    nb.metadata.get("jupytext", {}).pop("text_representation", None)  # as `jupytext --sync` writes it
    nbformat.write(nb, py.with_suffix(".ipynb"))
    return time.perf_counter() - t0


if __name__ == "__main__":
    os.environ.setdefault("FINEGPT_SMOKE", "1")
    import conftest  # noqa: F401  (the same offline environment nbval uses)

    for py in sources(sys.argv[1:]):
        print(f"{py.name}: {refresh(py):.1f} s", flush=True)
