"""The five notebooks: each .py / .ipynb pair in sync, each with the course's anatomy, and all five
running offline in smoke mode under nbval (outputs of `# NBVAL_CHECK_OUTPUT` cells compared)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_data_prep", "02_model_anatomy", "03_memory_math", "04_training_run", "05_sampling"]
BADGE = "https://colab.research.google.com/github/finegpt/finegpt/blob/main/notebooks/{}.ipynb"


def cells(path: Path) -> list[tuple[str, str, tuple]]:
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_has_the_same_cells_as_its_py_source(name):
    py, ipynb = NOTEBOOKS / f"{name}.py", NOTEBOOKS / f"{name}.ipynb"
    assert py.is_file() and ipynb.is_file()
    assert cells(ipynb) == cells(py), (
        f"run `jupytext --sync notebooks/{name}.py` then `python tools/refresh_notebooks.py {name[:2]}`"
    )


def test_jupytext_sync_changes_nothing(tmp_path):
    """What CI's `jupytext --sync` + `git diff --exit-code` checks, on a copy."""
    for name in NAMES:
        for suffix in (".py", ".ipynb"):
            shutil.copy2(NOTEBOOKS / f"{name}{suffix}", tmp_path)
    shutil.copy2(NOTEBOOKS / "jupytext.toml", tmp_path)
    subprocess.run(
        [sys.executable, "-m", "jupytext", "--sync", *sorted(str(p) for p in tmp_path.glob("*.py"))],
        check=True,
        capture_output=True,
    )
    for name in NAMES:
        assert (tmp_path / f"{name}.py").read_text() == (NOTEBOOKS / f"{name}.py").read_text()
        assert json.loads((tmp_path / f"{name}.ipynb").read_text()) == json.loads(
            (NOTEBOOKS / f"{name}.ipynb").read_text()
        )


@pytest.mark.parametrize("name", NAMES)
def test_ipynb_carries_the_outputs_of_a_clean_run(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    assert counts == list(range(1, len(code) + 1)), "execute top to bottom once: python tools/refresh_notebooks.py"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("name", NAMES)
def test_notebook_follows_the_course_anatomy(name):
    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    first, text = nb.cells[0].source, "\n".join(c.source for c in nb.cells)
    assert first.startswith(f"# {name[:2]} · ") and "**What you will learn**" in first
    assert 3 <= len(re.findall(r"^- ", first.split("**What you will learn**")[1], re.M)) <= 5
    assert BADGE.format(name) in first
    install = nb.cells[1].source
    assert '"google.colab" in sys.modules' in install and "git+https://github.com/finegpt/finegpt" in install
    assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())][0].source.startswith("SMOKE = None")
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    questions = [s for s in sections if s.endswith("?")]
    assert len(questions) >= 3 and "## Try it" in sections and "## Recap" in sections
    if name != NAMES[-1]:
        nxt = NAMES[NAMES.index(name) + 1]
        assert f"({nxt}.ipynb)" in nb.cells[-1].source
    markdown = sum(c.cell_type == "markdown" for c in nb.cells)
    assert markdown >= 0.6 * len(nb.cells)  # prose first: about two thirds of the cells explain
    assert not re.search(r"/(work|tmp)/", text), "no machine paths in notebooks"


def test_all_notebooks_run_offline_in_smoke_mode_under_nbval(tmp_path):
    """Copies of the notebooks run in a temp folder, so nothing is left in the repository."""
    pytest.importorskip("nbval")
    for name in NAMES:
        shutil.copy(NOTEBOOKS / f"{name}.ipynb", tmp_path)
    shutil.copy(Path(__file__).with_name("nbval_conftest.py"), tmp_path / "conftest.py")
    env = {
        **os.environ,
        "FINEGPT_SMOKE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
