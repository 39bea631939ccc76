"""Shared by the tests/test_exercises*.py files: the one line a check prints, and its assertion."""

from __future__ import annotations


def verdict(capsys, check, answer, **kwargs) -> str:
    """The one line a check prints."""
    check(answer, **kwargs)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def assert_hint(capsys, check, answer, hint: str, absent: str = "") -> None:
    """The check fails `answer` with a line that names `hint` (and does not say `absent`)."""
    line = verdict(capsys, check, answer)
    assert line.startswith("✗ ") and hint in line, line
    assert not absent or absent not in line, line


def ids(cases) -> list[str]:
    return [f"{getattr(a, '__name__', 'answer')}-{h[:28]}" for a, h in cases]
