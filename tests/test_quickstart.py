"""The README's first command: prepare, train, sample, offline on the CPU."""

import math

from finegpt.cli import main
from finegpt.quickstart import quickstart


def test_quickstart_trains_and_samples_offline(tmp_path, capsys):
    result = quickstart(out=tmp_path / "qs", max_iters=40)
    out = capsys.readouterr().out
    assert "before training" in out and "after training" in out and "final val loss" in out
    before = out.split("before training, the model writes:\n" + "-" * 60 + "\n")[1].split("\n" + "-" * 60)[0]
    assert before == result["before"] and before.startswith("ROMEO:\n")
    assert "\\x1b" in before and "\ufffd" in before  # the untrained model emits ESC and bad UTF-8: shown, not sent
    assert [b for b in out.encode() if b < 0x20 and b not in b"\n\t"] == []
    assert out.index("estimate: about") < out.index("2/3 training") < out.index("the estimate was")
    assert result["estimate_s"] > 0 and result["timing"]["threads"] >= 1
    assert result["after"].startswith("ROMEO:\n") and len(result["after"]) > len("ROMEO:\n")
    assert result["val_loss"] < math.log(257) - 1.5  # well below a uniform guess over the bytes
    assert (tmp_path / "qs" / "ckpt.pt").is_file()


def test_quickstart_refuses_a_directory_it_did_not_make(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["quickstart", "--out", str(tmp_path / "mine")]) == 2
    assert "error: out=" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
