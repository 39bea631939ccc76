"""SIGKILL at random steps, then `finegpt train --resume`: the final weights equal an uninterrupted run's."""

import os
import random
import signal
import subprocess
import sys

import torch
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, overrides

from finegpt.train import load_checkpoint

MAX_ITERS = 24
SETTINGS = {
    **TINY_MODEL,
    **TINY_TRAIN,
    "max_iters": MAX_ITERS,
    "eval_interval": 3,
    "eval_iters": 1,
    "keep_checkpoints": 2,
    "dropout": 0.1,
}  # dropout: the RNG state must come back too


def finegpt_train(args: list[str], cwd, kill_at: int | None = None) -> int:
    """Run `python -m finegpt train ...`; with kill_at, SIGKILL it once it reports that iteration."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finegpt", "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if kill_at is not None and line.startswith(f"iter {kill_at}: loss"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.stdout.close()
    rc = proc.wait()
    if kill_at is None:
        assert rc == 0, "".join(lines)
    return rc


def weights(out_dir):
    return load_checkpoint(out_dir)["model"]


def test_resume_after_kill_is_bitwise_identical(tmp_path):
    make_data(tmp_path / "data")
    args = overrides({**SETTINGS, "data_dir": "data"})
    finegpt_train([*args, "--out_dir=full"], tmp_path)
    reference = weights(tmp_path / "full")
    assert load_checkpoint(tmp_path / "full")["iter_num"] == MAX_ITERS

    kill_points = random.Random(2024).sample(range(4, MAX_ITERS), 3)  # after the first checkpoint (iter 3)
    for kill_at in kill_points:
        out = f"killed_{kill_at}"
        assert finegpt_train([*args, f"--out_dir={out}"], tmp_path, kill_at=kill_at) == -signal.SIGKILL
        assert load_checkpoint(tmp_path / out)["iter_num"] < MAX_ITERS
        finegpt_train(["--resume", f"--out_dir={out}"], tmp_path)  # settings come from the checkpoint
        resumed = weights(tmp_path / out)
        assert resumed.keys() == reference.keys()
        mismatched = [k for k in reference if not torch.equal(reference[k], resumed[k])]
        assert mismatched == [], f"killed at iter {kill_at}"
