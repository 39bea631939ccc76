"""Prose that agrees with its outputs: every number the committed notebooks' markdown marks with
`<!-- value: name -->` equals the `name = value` line a cell above it printed (finegpt.lab.prose), and
the claims the course once got wrong stay fixed."""

import json
import re
from pathlib import Path

import pytest

from finegpt.lab import prose

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_data_prep", "02_model_anatomy", "03_memory_math", "04_training_run", "05_sampling"]


def load(name: str) -> dict:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())


def markdown(name: str) -> str:
    return "\n".join("".join(c["source"]) for c in load(name)["cells"] if c["cell_type"] == "markdown")


def nb(*cells) -> dict:
    """A notebook from ('md', source) and ('code', printed text) pairs."""
    out = []
    for kind, text in cells:
        if kind == "md":
            out.append({"cell_type": "markdown", "source": text})
        else:
            out.append({"cell_type": "code", "source": "", "outputs": [{"output_type": "stream", "text": text}]})
    return {"cells": out}


@pytest.mark.parametrize("name", NAMES)
def test_every_marked_prose_number_equals_the_value_a_cell_above_printed(name):
    assert prose.disagreements(load(name)) == []


def test_the_course_marks_its_prose_numbers():
    marked = {name: len(prose.marked_values(load(name))) for name in NAMES}
    assert sum(marked.values()) >= 8, marked
    assert marked["03_memory_math"] >= 3  # headroom, the smallest micro-batch, the planner's budgets


def test_a_prose_number_that_drifted_from_its_output_is_reported_with_both_values():
    drifted = nb(("code", "ratio = 3.26\nother line\n"), ("md", "about **4**<!-- value: ratio --> times as many"))
    assert prose.disagreements(drifted) == ["4 (ratio) in cell 1, printed 3.26 in cell 0"]
    agrees = nb(("code", "ratio = 3.26\n"), ("md", "about **3.3**<!-- value: ratio --> times, 3<!-- value: ratio -->"))
    assert prose.disagreements(agrees) == []
    pct = nb(("code", "headroom_pct = 5\n"), ("md", "keeping 10 %<!-- value: headroom_pct --> free"))
    assert prose.disagreements(pct) == ["10 (headroom_pct) in cell 1, printed 5 in cell 0"]


def test_a_marker_needs_a_printed_value_above_it():
    below = nb(("md", "1,024<!-- value: tokens -->"), ("code", "tokens = 1024\n"))
    assert prose.disagreements(below) == ["1,024 (tokens) in cell 0: no cell above it prints `tokens = ...`"]


def test_show_prints_a_line_the_reader_and_the_test_can_read(capsys):
    assert prose.show("bytes_per_token", 3.2611, "{:.2f}") is None  # a cell ending with it shows the line once
    assert capsys.readouterr().out == "bytes_per_token = 3.26\n"
    with pytest.raises(ValueError, match="not an identifier"):
        prose.show("bytes per token", 1)


def test_claim_quotes_the_guide_then_the_computed_value_and_the_verdict(capsys):
    prose.claim("~350M parameters", "124.0M", "does not hold")
    assert capsys.readouterr().out == (
        "the guide says: “~350M parameters”\n  computed here: 124.0M\n  verdict: does not hold\n"
    )


# ---- the claims that were wrong stay fixed ---------------------------------------------------------------


def test_01_no_longer_says_four_times_as_many_tokens():
    assert "four times as many tokens" not in markdown("01_data_prep")


def test_03_states_the_headroom_and_micro_batch_the_code_uses():
    text = markdown("03_memory_math")
    assert "10 % of the card free" not in text and "micro-batch of at least 8" not in text
    assert "(eager PyTorch)" not in text
    assert "trustworthy" not in text


def test_04_does_not_claim_build_nanogpt_shuffles_or_that_names_come_first():
    text = markdown("04_training_run")
    assert not re.search(r"build-nanogpt read[^.]*shuffled", text)
    assert "come before real words" not in text


def test_guide_claims_are_quoted_where_they_are_checked():
    quoted = {
        name: "the guide says: “"
        in "".join("".join(o.get("text", "")) for c in load(name)["cells"] for o in c.get("outputs", []))
        for name in NAMES
    }
    assert quoted["01_data_prep"] and quoted["02_model_anatomy"] and quoted["03_memory_math"], quoted
