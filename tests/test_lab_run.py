"""tools/lab_run.py's own pieces (its --dry-run over real notebooks is tests/test_notebooks.py's hand-off test)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lab_run  # noqa: E402


def test_run_summary_takes_medians_after_the_first_logged_row_and_the_last_val_loss(tmp_path):
    rows = [
        {"step": 0, "train/loss": 5.0, "val/loss": 5.1},
        {"step": 10, "loss": 4.0, "tokens_per_s": 10.0, "mfu": 0.01},  # warm-up: left out
        {"step": 20, "loss": 3.0, "tokens_per_s": 100.0, "mfu": 0.30},
        {"step": 30, "loss": 2.5, "tokens_per_s": 120.0, "mfu": 0.34},
        {"step": 30, "train/loss": 2.4, "val/loss": 2.6},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert lab_run.run_summary(tmp_path) == {
        "tokens_per_s": 110.0,
        "mfu": pytest.approx(0.32),
        "final_val_loss": 2.6,
        "iters": 30,
    }


def test_the_table_names_its_data_first_every_notebook_run_and_what_failed(tmp_path):
    args = lab_run.argparse.Namespace(mode="full", dry_run=False, train_minutes=0.25)
    text = lab_run.report(
        args,
        "NOT FineWeb: the plays",
        {"01": 60.0, "04": 120.0},
        {"01": "AssertionError: boom"},
        {"04": {"expected_s": 90.0}},
        {"iters": 50, "tokens_per_s": 1e6, "mfu": 0.2, "final_val_loss": 3.2},
        "ROMEO:\nhello",
        "python tools/lab_run.py --short",
    )
    assert text.splitlines()[2] == "**Data: NOT FineWeb: the plays.**"
    assert "| 01_data_prep | 1.0 | - | FAILED: AssertionError: boom |" in text
    assert "| 04_training_run | 2.0 | 1.5 | ran to the end |" in text
    assert "| total | 3.0 | | |" in text and "median MFU 20.0 %" in text and "final val loss 3.200" in text
    assert "04's training budget: 0.25 minutes" in text and "ROMEO:\nhello" in text
