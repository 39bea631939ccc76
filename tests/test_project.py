"""The project's own promises: CI runs exactly the README's test command, and the package installs."""

import re
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


def test_ci_fails_when_pytest_collects_nothing():
    ci = (ROOT / ".ci" / "run").read_text()
    assert '"$rc" -eq 5' in ci and "exit 1" in ci


def test_console_script_prints_help():
    out = subprocess.run([sys.executable, "-m", "finegpt", "--help"], capture_output=True, text=True, check=True)
    assert "quickstart" in out.stdout and "train" in out.stdout and "prepare" in out.stdout


def test_ruff_lint_and_format_are_clean():
    """The habits people use: `ruff check` and `ruff format --check`, configured in pyproject.toml."""
    for args in (["check", "."], ["format", "--check", "."]):
        out = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, f"ruff {' '.join(args)}:\n{out.stdout[-3000:]}{out.stderr[-1000:]}"
