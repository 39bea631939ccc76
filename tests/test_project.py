"""The project's own promises: CI runs exactly the README's test command, and the package installs."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_test_command() -> str:
    block = re.search(r"<!-- test-command -->\s*```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md must hold the test command in a ```bash block after <!-- test-command -->"
    return block.group(1).strip()


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    command = readme_test_command()
    assert any(line.strip().startswith(command) for line in ci.splitlines()), (
        f"README.md's test command {command!r} is not a line of .ci/run"
    )


def make_test(tmp_path: Path, pytest_exit_code: int) -> subprocess.CompletedProcess:
    """The Makefile's `test` target in a scratch copy of the project, its environment's Python replaced by a
    script that prints its arguments and exits as pytest would."""
    tmp_path.mkdir()
    shutil.copy(ROOT / "Makefile", tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").write_text("")  # newer than pyproject.toml: nothing to install
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$@"\nexit {pytest_exit_code}\n')
    python.chmod(0o755)
    return subprocess.run(["make", "test", f"PY={python}"], cwd=tmp_path, capture_output=True, text=True)


def test_ci_fails_when_pytest_collects_nothing(tmp_path):
    passed, no_tests = make_test(tmp_path / "passed", 0), make_test(tmp_path / "none", 5)  # 5: none collected
    assert passed.returncode == 0 and "-m pytest -n 2 --dist loadfile tests" in passed.stdout
    assert no_tests.returncode != 0
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "set -euo pipefail" in ci and not any("|| true" in line for line in ci)


def test_ci_installs_what_the_readmes_first_command_installs():
    """make quickstart and make test share one install recipe, and CI runs it (make install) first."""
    makefile = (ROOT / "Makefile").read_text()
    for target in ("quickstart", "test", "install"):
        assert re.search(rf"^{target}: \$\(VENV\)/\.installed$", makefile, re.M), target
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.+?)\n```", readme.split("## Two commands")[1], re.S).group(1)
    assert first.strip() == "make quickstart"
    assert "make install" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_console_script_prints_help():
    out = subprocess.run([sys.executable, "-m", "finegpt", "--help"], capture_output=True, text=True, check=True)
    assert "quickstart" in out.stdout and "train" in out.stdout and "prepare" in out.stdout


def test_ruff_lint_and_format_are_clean():
    """The habits people use: `ruff check` and `ruff format --check`, configured in pyproject.toml."""
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, f"ruff {' '.join(args)}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"
