"""One repository URL (pyproject.toml [project.urls]) behind every badge, install cell and the README, and
an install cell that works when finegpt is installed, installs it on Colab, and otherwise says what to do."""

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import repo_url  # noqa: E402

URL = repo_url.read_url((ROOT / "pyproject.toml").read_text())
NAMES = ["01_data_prep", "02_model_anatomy", "03_memory_math", "04_training_run", "05_sampling"]
SOLUTIONS = [f"solutions/{name}_solutions" for name in NAMES]


def test_every_badge_install_cell_and_the_readme_use_the_pyproject_url():
    assert repo_url.disagreements(URL) == [], "run python tools/repo_url.py"
    owner_repo = URL.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    for name in NAMES + SOLUTIONS:
        for suffix in (".py", ".ipynb"):
            cells = jupytext.read(ROOT / "notebooks" / f"{name}{suffix}").cells
            assert f"colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{name}.ipynb" in cells[0].source
            assert cells[1].source == repo_url.install_cell(URL)
    for name in NAMES:
        assert f"colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{name}.ipynb" in readme
    assert "python tools/repo_url.py --set" in readme  # the one documented command for a fork


def test_a_fork_changes_every_file_with_one_command_and_check_catches_a_stray_url(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for name in NAMES[:2]:
        for suffix in (".py", ".ipynb"):
            shutil.copy(ROOT / "notebooks" / f"{name}{suffix}", tmp_path / "notebooks")
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, tmp_path)
    fork = "https://github.com/someone/finegpt-fork"
    assert repo_url.main(["--set", fork], root=tmp_path) == 0
    assert repo_url.read_url((tmp_path / "pyproject.toml").read_text()) == fork
    for path in [*(tmp_path / "notebooks").iterdir(), tmp_path / "README.md"]:
        text = path.read_text()
        assert URL not in text and "github/finegpt/finegpt/" not in text, path.name
    assert "git+{REPO}" in (tmp_path / "notebooks" / "01_data_prep.py").read_text()
    assert f'REPO = "{fork}"' in (tmp_path / "notebooks" / "01_data_prep.ipynb").read_text().replace('\\"', '"')
    assert repo_url.main(["--check"], root=tmp_path) == 0
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text().replace("github/someone/finegpt-fork", "github/finegpt/finegpt", 1))
    assert repo_url.main(["--check"], root=tmp_path) == 1


def test_a_notebook_without_badge_or_install_cell_gets_both(tmp_path):
    (tmp_path / "notebooks" / "solutions").mkdir(parents=True)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, tmp_path)
    py = tmp_path / "notebooks" / "solutions" / "09_x_solutions.py"
    py.write_text("# %% [markdown]\n# # 09 · X: solutions\n\n# %%\nprint(1)\n")
    jupytext.write(jupytext.read(py), py.with_suffix(".ipynb"))
    assert repo_url.main(["--check"], root=tmp_path) == 1
    assert repo_url.main([], root=tmp_path) == 0
    for path in (py, py.with_suffix(".ipynb")):
        cells = jupytext.read(path).cells
        assert cells[0].source.endswith(repo_url.badge(URL, "solutions/09_x_solutions.ipynb"))
        assert cells[1].source == repo_url.install_cell(URL) and cells[2].source == "print(1)"
    assert repo_url.main(["--check"], root=tmp_path) == 0
    assert repo_url.main([], root=tmp_path) == 0 and len(jupytext.read(py).cells) == 3  # nothing added twice


def test_a_url_that_is_not_a_github_repository_is_refused():
    with pytest.raises(SystemExit, match="not a GitHub repository URL"):
        repo_url.check_url("https://gitlab.com/x/y")


# ---- the install cell, in its three cases ---------------------------------------------------------


def run_install_cell(monkeypatch, installed: bool, colab: bool, pip_rc: int = 0, upgrades: dict | None = None):
    """upgrades: {package: version} that the fake pip install leaves on disk."""
    calls = []
    on_disk = {"ipywidgets": "7.7.1", "numpy": "1.26.4"}

    def fake_run(cmd, **kw):
        calls.append(cmd)
        on_disk.update(upgrades or {})
        return types.SimpleNamespace(returncode=pip_rc, stderr="ERROR: repository not found")

    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: real_find(n, *a) if installed else None)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(importlib.metadata, "version", lambda name: on_disk.get(name, "1.0"))
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))  # loaded, as on Colab
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(repo_url.install_cell(URL), {})
    return calls


def test_install_cell_installs_nothing_when_finegpt_is_already_importable(monkeypatch, capsys):
    assert run_install_cell(monkeypatch, installed=True, colab=True) == []
    assert capsys.readouterr().out.startswith("finegpt ")


def test_install_cell_on_colab_pip_installs_from_the_pyproject_url(monkeypatch):
    calls = run_install_cell(monkeypatch, installed=False, colab=True)
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", f"finegpt @ git+{URL}"]]


def test_install_cell_stops_and_asks_for_a_restart_when_pip_replaced_a_loaded_package(monkeypatch):
    with pytest.raises(RuntimeError, match=r"already loaded \(ipywidgets 7\.7\.1 -> 8\.1\.5\)\. Restart the session"):
        run_install_cell(monkeypatch, installed=False, colab=True, upgrades={"ipywidgets": "8.1.5"})


def test_finegpt_accepts_the_ipywidgets_colab_ships_so_pip_leaves_it_alone():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"ipywidgets>=7.7"' in pyproject  # Colab's 7.7.1 satisfies it: an upgrade would need a restart


def test_install_cell_says_what_to_do_when_pip_fails_or_when_not_on_colab(monkeypatch):
    with pytest.raises(RuntimeError, match=r"(?s)pip could not install finegpt from .*repository not found.*--set"):
        run_install_cell(monkeypatch, installed=False, colab=True, pip_rc=1)
    with pytest.raises(ModuleNotFoundError, match=r"not installed in this kernel.*pip install -e \."):
        run_install_cell(monkeypatch, installed=False, colab=False)
