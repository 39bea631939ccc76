"""Prose that cannot drift from its outputs. A number the notebook's text states is printed, by name, by
the cell that computes it; a claim of the popular guide is quoted beside the value computed here and a
verdict.

    show("bytes_per_token", 3.2611, "{:.2f}")   prints  bytes_per_token = 3.26
    claim("~350M parameters (original GPT-2 medium size)", "124.0M", "does not hold")

Markdown marks a number it took from such a line with an HTML comment right after it, which renders as
nothing: `**3.26**<!-- value: bytes_per_token -->`. tests/test_notebook_prose.py reads the committed
notebooks and fails when a marked number differs from the printed one (rounded to the prose's digits).
Entry points: show, claim, marked_values, printed_values, disagreements.
"""

from __future__ import annotations

import re

NAME = r"[A-Za-z_]\w*"
PRINTED = re.compile(rf"^({NAME}) = (-?[\d,]*\.?\d+)\s*$", re.M)  # what show() prints
# a number, then at most a unit sign or bold markers, then the marker: 3.26**<!-- value: bytes_per_token -->
MARKED = re.compile(rf"(-?\d[\d,]*(?:\.\d+)?)[ %×x*]*<!-- value: ({NAME}) -->")


def show(name: str, value: float, fmt: str = "{:g}") -> None:
    """Print `name = value` (fmt without thousands separators is easiest to read back). Returns nothing, so a
    cell ending with it shows the line once."""
    if not re.fullmatch(NAME, name):
        raise ValueError(f"name={name!r}: not an identifier. Use letters, digits and _")
    print(f"{name} = {fmt.format(value)}")


def claim(quote: str, computed: str, verdict: str, source: str = "the guide") -> None:
    """Print a claim as quoted, what this notebook computed, and the verdict."""
    print(f"{source} says: “{quote}”\n  computed here: {computed}\n  verdict: {verdict}")


# ---- reading a notebook back (tests/test_notebook_prose.py) ------------------------------------------


def _text(output: dict) -> str:
    text = output.get("text") or output.get("data", {}).get("text/plain") or ""
    return "".join(text) if isinstance(text, list) else text


def printed_values(nb: dict) -> list[tuple[int, str, str]]:
    """(cell index, name, value as printed) for every `name = value` line in the code cells' outputs."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            for out in cell.get("outputs", []):
                found += [(i, name, value) for name, value in PRINTED.findall(_text(out))]
    return found


def marked_values(nb: dict) -> list[tuple[int, str, str]]:
    """(cell index, name, number as written) for every marker in the markdown cells."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "markdown":
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            found += [(i, name, number) for number, name in MARKED.findall(source)]
    return found


def _digits(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def disagreements(nb: dict) -> list[str]:
    """Each marked number that no earlier cell printed, or that differs from the latest value printed
    above it once rounded to the prose's digits: '3.3 (bytes_per_token) in cell 12, printed 3.26 in cell 9'."""
    printed = printed_values(nb)
    wrong = []
    for cell, name, number in marked_values(nb):
        above = [(i, v) for i, n, v in printed if n == name and i < cell]
        if not above:
            wrong.append(f"{number} ({name}) in cell {cell}: no cell above it prints `{name} = ...`")
            continue
        i, value = above[-1]
        prose = float(number.replace(",", ""))
        if round(float(value.replace(",", "")), _digits(number)) != prose:
            wrong.append(f"{number} ({name}) in cell {cell}, printed {value} in cell {i}")
    return wrong
