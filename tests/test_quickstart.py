"""The README's first command: prepare, train, sample, offline on the CPU."""

import math

from finegpt.cli import main
from finegpt.quickstart import quickstart


def test_quickstart_trains_and_samples_offline(tmp_path, capsys):
    result = quickstart(out=tmp_path / "qs", max_iters=40)
    out = capsys.readouterr().out
    assert "before training" in out and "after training" in out and "final val loss" in out
    assert result["after"].startswith("ROMEO:\n") and len(result["after"]) > len("ROMEO:\n")
    assert result["val_loss"] < math.log(257) - 1.5  # well below a uniform guess over the bytes
    assert (tmp_path / "qs" / "ckpt.pt").is_file()


def test_quickstart_refuses_a_directory_it_did_not_make(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["quickstart", "--out", str(tmp_path / "mine")]) == 2
    assert "error: out=" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
