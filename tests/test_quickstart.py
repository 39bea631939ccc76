"""The README's first command: prepare, train and sample offline on the CPU; rerun, it replaces its
earlier output only once the new one is complete."""

import contextlib
import io
import json
import math
import signal

import pytest
from train_fixtures import file_hashes, read_until, run_cli, spawn

from finegpt.cli import main
from finegpt.folders import STAGING
from finegpt.quickstart import MARKER, quickstart
from finegpt.train import load_checkpoint


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One quickstart, shared: the tests below read it, and the last one replaces it."""
    root = tmp_path_factory.mktemp("quickstart")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        result = quickstart(out=root / "qs", max_iters=40)
    return root, result, out.getvalue()


def test_quickstart_trains_and_samples_offline(first):
    root, result, out = first
    assert "before training" in out and "after training" in out and "final val loss" in out
    before = out.split("before training, the model writes:\n" + "-" * 60 + "\n")[1].split("\n" + "-" * 60)[0]
    assert before == result["before"] and before.startswith("ROMEO:\n")
    assert "\\x1b" in before and "\ufffd" in before  # the untrained model emits ESC and bad UTF-8: shown, not sent
    assert [b for b in out.encode() if b < 0x20 and b not in b"\n\t"] == []
    assert out.index("estimate: about") < out.index("2/3 training") < out.index("the estimate was")
    assert result["estimate_s"] > 0 and result["timing"]["threads"] >= 1
    assert result["after"].startswith("ROMEO:\n") and len(result["after"]) > len("ROMEO:\n")
    assert result["after"] != result["before"]
    assert result["val_loss"] < math.log(257) - 1.5  # well below a uniform guess over the bytes
    assert (root / "qs" / "ckpt.pt").is_file()


def test_quickstart_refuses_a_directory_it_did_not_make(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["quickstart", "--out", str(tmp_path / "mine")]) == 2
    assert "error: out=" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_quickstart_rerun_killed_midway_keeps_the_earlier_output(first, capsys):
    root = first[0]
    (root / "qs" / "notes.txt").write_text("what I tried")  # a student's own files beside the quickstart's
    (root / "qs" / "plots").mkdir()
    (root / "qs" / "plots" / "loss.png").write_bytes(b"\x89PNG")
    before = file_hashes(root / "qs")
    child = spawn(["quickstart", "--out=qs", "--max_iters=100000"], root)
    read_until(child, "    38 plays")  # the data prepared again, beside the old
    child.kill()
    assert child.wait() == -signal.SIGKILL
    child.communicate()
    assert {k: v for k, v in file_hashes(root / "qs").items() if not k.startswith(STAGING)} == before
    assert (root / "qs" / STAGING / "data" / "meta.json").is_file()

    rc, _ = run_cli(["quickstart", "--out=qs", "--max_iters=2"], root, capsys)
    assert rc == 0
    assert load_checkpoint(root / "qs")["iter_num"] == 2 and not (root / "qs" / STAGING).exists()
    mine = {k: v for k, v in before.items() if k in ("notes.txt", "plots/loss.png")}
    assert {k: v for k, v in file_hashes(root / "qs").items() if k in mine} == mine  # the rerun kept them
    listed = json.loads((root / "qs" / MARKER).read_text())["files"]
    assert "notes.txt" not in listed and "plots" not in listed and {"data", "ckpt.pt", MARKER} <= set(listed)
