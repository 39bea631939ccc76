"""The training step's fast paths: prefetched batches are the right batches, the data path's share of
the step is logged, AdamW is fused, and MFU uses finegpt.memory's peak for the GPU at hand."""

from __future__ import annotations

import pytest
import torch
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, one_torch_thread  # noqa: F401

from finegpt.config import ModelConfig, TrainConfig
from finegpt.data import BatchLoader
from finegpt.memory import peak_flops
from finegpt.model import GPT
from finegpt.step import Prefetch, gpu_name
from finegpt.train import train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"), n_train=8_000, n_val=2_000)


def test_prefetched_batch_is_the_batch_of_its_step(data_dir):
    loader = BatchLoader(data_dir, "train", batch_size=4, block_size=16, seed=3)
    batches = Prefetch(loader, torch.device("cpu"))
    batches.prefetch(5)
    for got, want in zip(batches.get(5), loader.get_batch(5)):
        assert torch.equal(got, want)
    batches.prefetch(6)  # then asked for another step: the early batch is dropped, not served
    for got, want in zip(batches.get(7), loader.get_batch(7)):
        assert torch.equal(got, want)
    for got, want in zip(batches.get(6), loader.get_batch(6)):
        assert torch.equal(got, want)
    assert batches.busy_s > 0


def test_logged_rows_report_the_data_path_share_of_each_step(data_dir, tmp_path):
    cfg = TrainConfig(
        **{
            **TINY_TRAIN,
            "data_dir": str(data_dir),
            "out_dir": str(tmp_path / "out"),
            "max_iters": 4,
            "eval_interval": 100,
        }
    )
    rows = [r for r in train(ModelConfig(**TINY_MODEL), cfg)["history"] if "dt_s" in r]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    # a generous bound: fetching a 8 x 33 window batch is far cheaper than a forward + backward
    assert all(0 < r["data_share"] < 0.5 for r in rows)


@pytest.mark.parametrize("device_type,fused", [("cpu", True), ("cuda", True), ("mps", False)])
def test_adamw_is_fused_where_pytorch_has_the_kernel(device_type, fused):
    model = GPT(ModelConfig(**TINY_MODEL, vocab_size=320))
    optimizer = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95), device_type)
    assert bool(optimizer.defaults["fused"]) is fused
    assert bool(optimizer.defaults["foreach"]) is (not fused)


@pytest.mark.parametrize(
    "name,dtype,tflops",
    [
        ("NVIDIA A100-SXM4-80GB", torch.bfloat16, 312.0),
        ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989.4),
        ("Tesla T4", torch.float16, 65.0),
    ],
)
def test_mfu_peak_comes_from_the_gpu_table(monkeypatch, name, dtype, tflops):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_flops(gpu_name(torch.device("cuda:0")), str(dtype).removeprefix("torch.")) == tflops * 1e12


def test_unknown_gpu_gives_no_mfu_rather_than_a_wrong_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some Future GPU 9000")
    assert peak_flops(gpu_name(torch.device("cuda:0")), "bfloat16") is None
