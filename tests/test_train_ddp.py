"""DDP on CPU with gloo: 2 processes x micro-batch b train like 1 process x 2b, and resume on 1 process."""

import json
import os
import subprocess
import sys

import pytest
import torch

from finegpt.train import load_checkpoint
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, overrides

K = 6  # optimizer steps compared
B = 4  # micro-batch per process
SETTINGS = {**TINY_MODEL, **TINY_TRAIN, "eval_interval": K, "eval_iters": 2, "data_dir": "data"}


def run(cmd: list[str], cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr


def metrics(out_dir) -> tuple[dict, dict]:
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return ({r["step"]: r["loss"] for r in rows if "loss" in r}, {r["step"]: r["val/loss"] for r in rows if "val/loss" in r})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process x 2B for K+1 steps, and 2 DDP processes x B (accumulation 2 split over them) for K."""
    root = tmp_path_factory.mktemp("ddp")
    make_data(root / "data")
    finegpt = [sys.executable, "-m", "finegpt", "train"]
    run([*finegpt, *overrides({**SETTINGS, "batch_size": 2 * B, "gradient_accumulation_steps": 1,
                               "max_iters": K + 1, "out_dir": "single"})], root)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "finegpt"]
    run([*torchrun, "train", *overrides({**SETTINGS, "batch_size": B, "gradient_accumulation_steps": 2,
                                         "max_iters": K, "out_dir": "ddp"})], root)
    return root


def test_ddp_two_processes_match_one_process_with_double_batch(runs):
    single_train, single_val = metrics(runs / "single")
    ddp_train, ddp_val = metrics(runs / "ddp")
    assert sorted(ddp_train) == list(range(1, K + 1))
    for step, loss in ddp_train.items():
        assert loss == pytest.approx(single_train[step], rel=1e-5), step
    for step in (0, K):
        assert ddp_val[step] == pytest.approx(single_val[step], rel=1e-5), step
    ddp_weights = load_checkpoint(runs / "ddp")["model"]
    single_at_k = load_checkpoint(runs / "single" / f"ckpt_{K:07d}.pt")["model"]
    for name, w in ddp_weights.items():
        torch.testing.assert_close(w, single_at_k[name], rtol=1e-4, atol=1e-5)  # Adam magnifies float noise in tiny grads


def test_ddp_checkpoint_resumed_on_one_process_reproduces_next_loss(runs):
    run([sys.executable, "-m", "finegpt", "train", "--resume", "--out_dir=ddp", f"--max_iters={K + 1}",
         f"--batch_size={2 * B}", "--gradient_accumulation_steps=1"], runs)
    single_train, _ = metrics(runs / "single")
    ddp_train, _ = metrics(runs / "ddp")
    assert ddp_train[K + 1] == pytest.approx(single_train[K + 1], rel=1e-5)
