"""The hand-off: notebooks 01 -> 04 -> 05 in smoke mode in one fresh lab folder, run by tools/lab_run.py
--dry-run (its own test on the CPU); 05 names 04's checkpoint, and without it stops with the fix."""

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(ROOT / "tools"))


def test_05_samples_04s_checkpoint_and_without_it_stops_with_the_fix(tmp_path):
    """tools/lab_run.py --dry-run runs 01, 04 and 05 in smoke mode in a fresh lab folder and writes its table;
    then, with 04's checkpoint gone, 05 stops at its input check instead of training anything."""
    import lab_run
    import nbformat

    home, saved, out = tmp_path / "lab", tmp_path / "executed", tmp_path / "lab_timing.md"
    args = ["--dry-run", "--notebooks", "01", "04", "05", "--home", str(home), "--save-notebooks", str(saved)]
    assert lab_run.main([*args, "--out", str(out)]) == 0
    ckpt = home / "smoke" / "run-04" / "ckpt.pt"
    printed = lab_run.outputs_text(nbformat.read(saved / "05_sampling.ipynb", 4))
    assert f"found: 04's trained model in {ckpt.parent}" in printed and f"sampling from {ckpt}" in printed
    table = out.read_text()
    assert "**Data: smoke mode on the CPU" in table and "| 04_training_run |" in table and "final val loss" in table

    shutil.rmtree(ckpt.parent)
    env = {"FINEGPT_MODE": "smoke", "FINEGPT_HOME": str(home)}
    executed, _, message = lab_run.execute(NOTEBOOKS / "05_sampling.py", home, env, timeout_s=600)
    assert message is not None and message.startswith("FinegptError")  # the stop, returned for the lab's table
    assert f"input={str(ckpt.parent)!r}: 04's trained model: no ckpt.pt" in message
    assert "Run notebook 04 first with MODE = 'smoke'" in message
    assert not (home / "smoke" / "run-04").exists()  # nothing was trained in its place
