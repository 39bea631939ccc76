"""FSDP2 on CPU with gloo: 2 sharded processes train like 1 process, and their DCP checkpoint resumes
on 2 processes or on 1, and loads for sampling."""

import shutil
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from train_fixtures import TINY_MODEL, TINY_TRAIN, TORCHRUN, assert_same_training, make_data, metrics, overrides, run

from finegpt.train import load_checkpoint, load_model

K = 4  # optimizer steps compared
B = 4  # micro-batch per process
SETTINGS = {**TINY_MODEL, **TINY_TRAIN, "eval_interval": K, "eval_iters": 2, "data_dir": "data"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """1 process x 2B with accumulation 2 for K+1 steps; 2 FSDP processes x B with accumulation 4
    (2 micro-steps each, the first without gradient sync) for K; a copy of the FSDP run at K."""
    root = tmp_path_factory.mktemp("fsdp")
    make_data(root / "data")
    run(
        [
            sys.executable,
            "-m",
            "finegpt",
            "train",
            *overrides(
                {
                    **SETTINGS,
                    "batch_size": 2 * B,
                    "gradient_accumulation_steps": 2,
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
                {
                    **SETTINGS,
                    "batch_size": B,
                    "gradient_accumulation_steps": 4,
                    "max_iters": K,
                    "fsdp": True,
                    "out_dir": "fsdp",
                }
            ),
        ],
        root,
    )
    shutil.copytree(root / "fsdp", root / "fsdp_at_k")
    return root


def test_fsdp_two_processes_match_one_process(runs):
    assert_same_training(runs / "single", runs / "fsdp", K)  # FSDP's checkpoint holds the gathered weights


def test_fsdp_checkpoint_is_dcp_shards_beside_full_weights(runs):
    ckpt = load_checkpoint(runs / "fsdp")
    assert ckpt["iter_num"] == K and ckpt["dcp"] == f"dcp_{K:07d}" and ckpt["optimizer"] == {}
    assert (runs / "fsdp" / ckpt["dcp"] / ".metadata").is_file()
    assert not list((runs / "fsdp").glob("*.tmp"))
    model, _ = load_model(runs / "fsdp")
    assert model(torch.zeros(1, 3, dtype=torch.long))[0].shape == (1, 3, model.config.vocab_size)


def test_fsdp_resume_on_two_processes_reproduces_next_loss(runs):
    run([*TORCHRUN, "train", "--resume", "--out_dir=fsdp", f"--max_iters={K + 1}"], runs)
    single_train, single_val = metrics(runs / "single")
    fsdp_train, fsdp_val = metrics(runs / "fsdp")
    assert fsdp_train[K + 1] == pytest.approx(single_train[K + 1], rel=1e-5)
    assert fsdp_val[K + 1] == pytest.approx(single_val[K + 1], rel=1e-5)


def test_fsdp_checkpoint_resumed_on_one_process_reproduces_next_loss(runs):
    run(
        [
            sys.executable,
            "-m",
            "finegpt",
            "train",
            "--resume",
            "--out_dir=fsdp_at_k",
            f"--max_iters={K + 1}",
            f"--batch_size={2 * B}",
            "--gradient_accumulation_steps=2",
        ],
        runs,
    )
    single_train, _ = metrics(runs / "single")
    resumed, _ = metrics(runs / "fsdp_at_k")
    assert resumed[K + 1] == pytest.approx(single_train[K + 1], rel=1e-5)


def _scaler_rank(rank: int, store_path: str, queue) -> None:
    """One optimizer step under FSDP2 + a loss-scaling GradScaler, with an inf in rank 1's shard only."""
    from finegpt import step
    from finegpt.config import ModelConfig
    from finegpt.model import GPT

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=64, dropout=0.0))
        optimizer = step.shard(
            model, model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu"), torch.device("cpu"), torch.float32
        )
        scaler = step.sharded_scaler(torch.amp.GradScaler("cpu", init_scale=1024.0))
        x = torch.randint(64, (2, 16), generator=torch.Generator().manual_seed(1))
        _, loss = model(x, x)
        scaler.scale(loss).backward()
        wte = model.transformer.wte.weight
        if rank == 1:
            wte.grad.to_local()[0, 0] = float("inf")  # the overflow only this rank's shard sees
        before = wte.to_local().clone()
        scaler.step(optimizer)
        scaler.update()
        queue.put((rank, (torch.equal(before, wte.to_local()), scaler.get_scale())))
    finally:
        dist.destroy_process_group()


def test_fsdp_overflow_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_scaler_rank, args=(r, str(tmp_path / "store"), queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == {0: (True, 512.0), 1: (True, 512.0)}  # weights untouched, scale halved, on both
