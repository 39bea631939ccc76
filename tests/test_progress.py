"""Progress: a tqdm bar with tokens/s and an ETA in a terminal, plain log lines under a pipe, and
metrics.jsonl the same either way."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios

import pytest
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, overrides

from finegpt import progress as P


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data") / "shards", n_train=8_000, n_val=2_000)


def train_command(data_dir, out_dir) -> list[str]:
    settings = {**TINY_MODEL, **TINY_TRAIN, "max_iters": 6, "eval_interval": 3, "log_interval": 3}
    return [sys.executable, "-m", "finegpt", "train", f"--data_dir={data_dir}", f"--out_dir={out_dir}"] + overrides(
        settings
    )


def run_in_terminal(cmd: list[str], timeout_s: float = 240) -> tuple[int, str]:
    """Run cmd with stdin, stdout and stderr on a pseudo-terminal 120 columns wide; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    try:
        while select.select([master], [], [], timeout_s)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout_s), b"".join(chunks).decode("utf-8", errors="replace")


def metrics_without_timing(out_dir) -> list[dict]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "mfu", "dt_s", "data_share")} for r in rows]


def test_train_draws_a_bar_in_a_terminal_and_log_lines_under_a_pipe(data_dir, tmp_path):
    code, terminal = run_in_terminal(train_command(data_dir, tmp_path / "tty"))
    assert code == 0, terminal
    assert re.search(r"\rtrain: 100%\|█+\| 3\.07k/3\.07k \[[\d:]+<00:00, +[\d.]+k?tok/s\]", terminal), terminal
    assert re.search(r"train: +\d+%\|.*<\d\d:\d\d, ", terminal)  # an ETA while it runs
    assert "\r\niter 6: loss" in terminal or "\riter 6: loss" in terminal  # log lines printed whole, above the bar
    assert "]iter" not in terminal

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    piped = subprocess.run(train_command(data_dir, tmp_path / "pipe"), capture_output=True, text=True, env=env)
    assert piped.returncode == 0, piped.stderr
    assert "iter 6: loss" in piped.stdout
    assert "\r" not in piped.stdout + piped.stderr and "%|" not in piped.stdout + piped.stderr

    rows = metrics_without_timing(tmp_path / "tty")
    assert rows == metrics_without_timing(tmp_path / "pipe")
    assert [sorted(r) for r in rows] == [
        ["lr", "step", "train/loss", "val/loss"],
        ["distinct_tokens", "epoch", "loss", "lr", "step", "tokens_read"],
        ["lr", "step", "train/loss", "val/loss"],
        ["distinct_tokens", "epoch", "loss", "lr", "step", "tokens_read"],
        ["lr", "step", "train/loss", "val/loss"],
    ]


def test_log_lines_give_done_rate_and_eta_every_interval_never_redrawn():
    stream = io.StringIO()
    lines = P.LogLines(total=4096, desc="train", unit="tok", every_s=0.0, stream=stream)
    for _ in range(4):
        lines.update(1024)
    rows = stream.getvalue().splitlines()
    assert len(rows) == 4 and "\r" not in stream.getvalue()
    assert re.fullmatch(r"train: 2\.05k/4\.10k tok \(50%\), [\d.]+[kMGT]?tok/s, eta \d\d:\d\d", rows[1]), rows[1]
    quiet = io.StringIO()
    lines = P.LogLines(total=4096, desc="train", unit="tok", stream=quiet)  # every LOG_EVERY_S = 30 s
    lines.update(4096)
    assert quiet.getvalue() == ""


def test_prepare_and_eval_draw_a_bar_when_interactive(data_dir, tmp_path, monkeypatch, capsys):
    from finegpt.config import ModelConfig
    from finegpt.data import prepare
    from finegpt.eval import evaluate
    from finegpt.model import GPT

    monkeypatch.setattr(P, "interactive", lambda stream=None: True)
    source = tmp_path / "a.txt"
    source.write_text("To be, or not to be, that is the question. " * 200)
    prepare(str(source), tmp_path / "shards", "bytes", tokens=8000)
    err = capsys.readouterr().err
    assert re.search(r"prepare .*a\.txt: 100%\|█+\| 8\.00k/8\.00k .*tok/s", err), err
    evaluate(GPT(ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=320)), data_dir, tokens=640)
    err = capsys.readouterr().err
    assert re.search(r"eval val: 100%\|█+\| 640/640 .*tok/s", err), err
    assert not isinstance(sys.stdout, P._AboveBar)  # print() goes straight out again once the bar closes


def test_ctrl_c_closes_the_train_bar_and_gives_print_back(data_dir, tmp_path, monkeypatch, capsys):
    from finegpt.config import ModelConfig, TrainConfig
    from finegpt.train import TrainingInterrupted, train

    def ctrl_c_at_iter_0(row):
        if row["iter"] == 0:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(P, "interactive", lambda stream=None: True)
    cfg = TrainConfig(**{**TINY_TRAIN, "max_iters": 6}, data_dir=str(data_dir), out_dir=str(tmp_path))
    stdout = sys.stdout
    # Ctrl-C live, as at a terminal: a test worker, or a shell's background job, may inherit SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(TrainingInterrupted, match="stopped at iter 1 by SIGINT: checkpoint saved"):
            train(ModelConfig(**TINY_MODEL), cfg, callback=ctrl_c_at_iter_0)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sys.stdout is stdout  # the bar closed: print() goes straight out again
    assert re.search(r"train: +17%\|.*\| 512/3\.07k", capsys.readouterr().err)
