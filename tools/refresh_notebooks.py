"""Regenerate the committed notebooks: sync each py:percent source into its .ipynb, run it in
smoke mode (tiny, offline, CPU) and save the outputs, so GitHub and Colab show plots and tables.

    python tools/refresh_notebooks.py            # all five, then their solutions
    python tools/refresh_notebooks.py 03 05      # some (each with its solutions notebook)

The notebooks run in order in one fresh temporary folder, as a student runs them in one place (05
samples from 04's checkpoint), and never from files an earlier refresh left behind.
"""

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


def sources(prefixes: list[str]) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")) + sorted(NOTEBOOKS.glob("solutions/[0-9][0-9]_*.py"))
    return [p for p in paths if not prefixes or any(p.name.startswith(x) for x in prefixes)]


def refresh(py: Path, workdir: str, timeout_s: int = 600) -> float:
    nb = jupytext.read(py)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": workdir}}).execute()
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
    sys.path.insert(0, str(ROOT / "tests"))
    import nbval_conftest  # noqa: F401  (the same offline, smoke-mode environment the nbval test uses)

    with tempfile.TemporaryDirectory() as workdir:
        for py in sources(sys.argv[1:]):
            print(f"{py.name}: {refresh(py, workdir):.1f} s", flush=True)
