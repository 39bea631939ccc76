"""DDP on CPU with gloo: 2 processes x micro-batch b train like 1 process x 2b, and resume on 1 process."""

import sys

import pytest
from train_fixtures import TINY_MODEL, TINY_TRAIN, TORCHRUN, assert_same_training, make_data, metrics, overrides, run

K = 6  # optimizer steps compared
B = 4  # micro-batch per process
SETTINGS = {**TINY_MODEL, **TINY_TRAIN, "eval_interval": K, "eval_iters": 2, "data_dir": "data"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process x 2B for K+1 steps, and 2 DDP processes x B (accumulation 2 split over them) for K."""
    root = tmp_path_factory.mktemp("ddp")
    make_data(root / "data")
    finegpt = [sys.executable, "-m", "finegpt", "train"]
    run(
        [
            *finegpt,
            *overrides(
                {
                    **SETTINGS,
                    "batch_size": 2 * B,
                    "gradient_accumulation_steps": 1,
                    "max_iters": K + 1,
                    "out_dir": "single",
                }
            ),
        ],
        root,
    )
    run(
        [
            *TORCHRUN,
            "train",
            *overrides(
                {**SETTINGS, "batch_size": B, "gradient_accumulation_steps": 2, "max_iters": K, "out_dir": "ddp"}
            ),
        ],
        root,
    )
    return root


def test_ddp_two_processes_match_one_process_with_double_batch(runs):
    assert_same_training(runs / "single", runs / "ddp", K)


def test_ddp_checkpoint_resumed_on_one_process_reproduces_next_loss(runs):
    run(
        [
            sys.executable,
            "-m",
            "finegpt",
            "train",
            "--resume",
            "--out_dir=ddp",
            f"--max_iters={K + 1}",
            f"--batch_size={2 * B}",
            "--gradient_accumulation_steps=1",
        ],
        runs,
    )
    single_train, _ = metrics(runs / "single")
    ddp_train, _ = metrics(runs / "ddp")
    assert ddp_train[K + 1] == pytest.approx(single_train[K + 1], rel=1e-5)
