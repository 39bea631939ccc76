"""The five notebooks: each .py / .ipynb pair in sync, each with the course's anatomy, all five running
offline in smoke mode under nbval (outputs of `# NBVAL_CHECK_OUTPUT` cells compared), and committed
(cpu-mode) outputs that show each lesson happening. The hand-off from 01 through 04 to 05: test_lab_handoff.py."""

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
ROOT = NOTEBOOKS.parent
NAMES = ["01_data_prep", "02_model_anatomy", "03_memory_math", "04_training_run", "05_sampling"]
sys.path.insert(0, str(ROOT / "tools"))
import repo_url  # noqa: E402

URL = repo_url.read_url((ROOT / "pyproject.toml").read_text())
BADGE = repo_url.colab_prefix(URL) + "{}.ipynb"


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
    assert nb.cells[1].source == repo_url.install_cell(URL)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", ())]
    assert len(params) == 1 and params[0].source.startswith("MODE = None")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert f'lab.start("{name[:2]}", settings, paths)' in code[3] and "lab.check(clock)" in code[4]
    assert code[-1] == "clock.done()"  # the time it took, printed last
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
        "FINEGPT_MODE": "smoke",
        "FINEGPT_HOME": str(tmp_path / "lab"),
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


# ---- the committed outputs (cpu mode) show each lesson ------------------------------------------------


def printed(name: str) -> str:
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            parts.append("".join(text) if isinstance(text, list) else text)
    return "".join(parts)


@pytest.mark.parametrize("name", NAMES)
def test_committed_outputs_come_from_cpu_mode(name):
    assert "MODE='cpu'" in printed(name)


def test_committed_04_trains_to_about_the_quickstarts_val_loss():
    found = re.findall(r"final val loss (\d+\.\d+) nats per byte", printed("04_training_run"))
    assert found and float(found[-1]) <= 1.9


def test_committed_05_trained_sample_has_far_more_real_words_than_the_untrained_one():
    from finegpt.data import iter_documents
    from finegpt.lab import corpus_words, real_word_share

    words = corpus_words("\n".join(iter_documents("shakespeare")))
    samples = dict(
        re.findall(r"=== (untrained|early|trained) [^\n]*===\n(.*?)(?=\n=== |\Z)", printed("05_sampling"), re.S)
    )
    assert set(samples) == {"untrained", "early", "trained"}
    untrained, trained = (
        real_word_share(samples[k].removeprefix("ROMEO:\nWhat"), words) for k in ("untrained", "trained")
    )
    assert trained >= untrained + 0.4, (untrained, trained)
    assert re.search(r"^[A-Z][A-Z ]+:$", samples["trained"], re.M)  # a speaker's name on its own line


def test_committed_03_bar_for_the_oom_case_ends_past_the_gpu_line():
    rows = re.findall(
        r"batch_size=\s*(\d+)\s*: allocated .*nvidia-smi\s+([\d.]+)-\s*([\d.]+) GiB vs the GPU's ([\d.]+): "
        r"(fits|tight \(inside the uncertainty\)|out of memory) \(",
        printed("03_memory_math"),
    )
    assert rows and any(verdict == "out of memory" for *_, verdict in rows)
    for _, low, high, gpu, verdict in rows:  # the bar's solid part ends at low, its hatch at high
        expected = "fits" if float(high) <= float(gpu) else "out of memory" if float(low) > float(gpu) else "tight"
        assert verdict.startswith(expected), (low, high, gpu, verdict)


def test_a_saved_progress_bar_shows_where_it_ended():
    import refresh_notebooks

    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "train:\u2007100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 50.0, "max": 50.0}},
        "r": {"model_name": "HTMLModel", "state": {"value": "\u200750/50\u2007[00:01&lt;00:00]"}},
        "ui": {"model_name": "VBoxModel", "state": {"children": ["IPY_MODEL_l"]}},
    }
    assert refresh_notebooks.final_bar_text("box", state) == "train: 100%|##########| 50/50 [00:01<00:00]"
    assert refresh_notebooks.final_bar_text("ui", state) is None  # a UI box, not a bar
    assert refresh_notebooks.final_bar_text("x", state) is None


@pytest.mark.parametrize("name", ["03_memory_math", "05_sampling"])
def test_every_widget_has_a_static_rendering_in_the_committed_outputs(name):
    cells = [c for c in json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    widgets = [
        i
        for i, c in enumerate(cells)
        if any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            and "".join(o["data"].get("text/plain", "")).startswith("[interactive widget")  # a UI, not a progress bar
            for o in c.get("outputs", [])
        )
    ]
    assert widgets
    for i in widgets:  # the next code cell draws the same function's answer: a figure or a table
        kinds = {k for o in cells[i + 1].get("outputs", []) for k in o.get("data", {})}
        assert kinds & {"image/png", "text/html"}, f"{name}: widget in code cell {i} has no static rendering"
