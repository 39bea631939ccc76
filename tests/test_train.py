"""The training loop on CPU: loss goes down, resume continues exactly, divergence stops cleanly."""

from dataclasses import replace

import pytest
import torch
from train_fixtures import TINY_MODEL, TINY_TRAIN, make_data, one_torch_thread  # noqa: F401

from finegpt.config import ModelConfig, TrainConfig
from finegpt.errors import FinegptError
from finegpt.train import get_lr, load_checkpoint, load_model, save_checkpoint, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("data"))


def cfgs(data_dir, out_dir, **train_kw):
    return ModelConfig(**TINY_MODEL), TrainConfig(
        **{**TINY_TRAIN, "data_dir": str(data_dir), "out_dir": str(out_dir), **train_kw}
    )


def train_losses(result) -> dict:
    return {row["iter"]: row["loss"] for row in result["history"] if "loss" in row}


def test_short_cpu_run_lowers_val_loss(data_dir, tmp_path):
    seen = []
    result = train(*cfgs(data_dir, tmp_path / "out", max_iters=30, eval_interval=15), callback=seen.append)
    val = [row["val/loss"] for row in result["history"] if "val/loss" in row]
    assert len(val) == 3  # iters 0, 15, 30
    assert val[-1] < val[0] - 1.0  # from ~ln(320) = 5.77 to well under 4.8
    assert seen == result["history"]
    assert result["final_val_loss"] == val[-1]
    assert result["model_config"]["vocab_size"] == 320  # bytes: 257 padded to a multiple of 64


def test_the_loop_runs_the_step_finegpt_memory_measures(data_dir, tmp_path, monkeypatch):
    from train_fixtures import spy_on_step

    calls = spy_on_step(monkeypatch)
    train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2))
    assert calls == ["eval_loss"] * 2 + ["forward_backward", "optimizer_step"] * 2 + ["eval_loss"] * 2


def test_the_chunked_loss_trains_to_the_same_losses(data_dir, tmp_path):
    plain = train(*cfgs(data_dir, tmp_path / "plain", max_iters=4, eval_interval=4))
    chunked = train(*cfgs(data_dir, tmp_path / "chunked", max_iters=4, eval_interval=4, loss_chunks=3))
    assert train_losses(chunked) == pytest.approx(train_losses(plain), rel=1e-4)
    assert chunked["final_val_loss"] == pytest.approx(plain["final_val_loss"], rel=1e-4)


def test_resume_gives_same_next_losses(data_dir, tmp_path):
    full = train(*cfgs(data_dir, tmp_path / "full", max_iters=12, eval_interval=6))
    first = train(*cfgs(data_dir, tmp_path / "split", max_iters=6, eval_interval=6))
    resumed = train(*cfgs(data_dir, tmp_path / "split", max_iters=12, eval_interval=6, init_from="resume"))
    assert train_losses(first) == {k: v for k, v in train_losses(full).items() if k <= 6}
    assert train_losses(resumed) == {k: v for k, v in train_losses(full).items() if k > 6}
    a, _ = load_model(tmp_path / "full", "cpu")
    b, _ = load_model(tmp_path / "split", "cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_checkpoints_keep_last_k_beside_latest_pointer(data_dir, tmp_path):
    out = tmp_path / "out"
    train(*cfgs(data_dir, out, max_iters=8, eval_interval=2, keep_checkpoints=2))
    assert sorted(p.name for p in out.glob("ckpt*.pt")) == ["ckpt.pt", "ckpt_0000006.pt", "ckpt_0000008.pt"]
    assert (out / "latest").read_text() == "ckpt_0000008.pt\n"
    ckpt = load_checkpoint(out)
    assert ckpt["iter_num"] == 8
    assert set(ckpt) == {"model", "optimizer", "scaler", "rng", "iter_num", "best_val_loss", "config", "data"}
    stream = ckpt["data"].pop("stream")  # what decides the batch stream, for a resume to compare
    assert ckpt["data"] == {"data_dir": str(data_dir), "tokenizer": "bytes", "vocab_size": 257}
    assert {k: v for k, v in stream.items() if k != "data"} == {
        "data_dir": str(data_dir),
        "batch_size": ckpt["config"]["train"]["batch_size"],
        "gradient_accumulation_steps": ckpt["config"]["train"]["gradient_accumulation_steps"],
        "block_size": ckpt["config"]["model"]["block_size"],
        "sampling": "epoch",
        "seed": ckpt["config"]["train"]["seed"],
        "world_size": 1,
        "exact": True,
    }
    assert len(stream["data"]) == 16  # the shards' fingerprint: 8 bytes of BLAKE2b, in hex
    assert ckpt["config"]["model"]["vocab_size"] == 320
    assert not list(out.glob("*.tmp"))


def test_truncated_checkpoint_is_refused_and_previous_offered(data_dir, tmp_path):
    out = tmp_path / "out"
    train(*cfgs(data_dir, out, max_iters=4, eval_interval=2))
    newest = out / "ckpt_0000004.pt"
    newest.write_bytes(newest.read_bytes()[:5000])  # ckpt.pt is the same file, so both are broken
    with pytest.raises(FinegptError, match=r"truncated or corrupt.*ckpt_0000002\.pt"):
        load_checkpoint(out)
    with pytest.raises(FinegptError, match="previous good checkpoint"):
        train(*cfgs(data_dir, out, max_iters=6, eval_interval=2, init_from="resume"))


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > pwned.txt",))


def test_checkpoint_with_pickled_payload_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": {}, "iter_num": 0, "config": {}, "evil": _RunsCode()}, tmp_path / "ckpt.pt")
    with pytest.raises(FinegptError, match="pickled Python objects"):
        load_checkpoint(tmp_path / "ckpt.pt")
    assert not (tmp_path / "pwned.txt").exists()


def test_nan_loss_stops_naming_step_and_last_good_checkpoint(data_dir, tmp_path):
    out = tmp_path / "out"
    train(*cfgs(data_dir, out, max_iters=4, eval_interval=2, keep_checkpoints=1))
    ckpt = load_checkpoint(out)
    ckpt["model"]["transformer.h.0.mlp.c_fc.weight"][0, 0] = float("nan")
    save_checkpoint(ckpt, out, keep=1)
    with pytest.raises(FinegptError, match=r"diverged at iter 4\. Last good checkpoint: .*ckpt\.pt"):
        train(*cfgs(data_dir, out, max_iters=8, eval_interval=2, init_from="resume"))
    assert load_checkpoint(out)["iter_num"] == 4  # nothing was saved after the NaN


def test_eval_only_reports_losses_without_training(data_dir, tmp_path):
    train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2))
    before = load_checkpoint(tmp_path / "out")
    result = train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_only=True, init_from="resume"))
    assert [set(row) for row in result["history"]] == [{"iter", "train/loss", "val/loss", "lr"}]
    assert all(
        torch.equal(a, b) for a, b in zip(before["model"].values(), load_checkpoint(tmp_path / "out")["model"].values())
    )


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=110)
    assert get_lr(0, cfg) == pytest.approx(1 / 11)
    assert get_lr(10, cfg) == 1.0
    assert get_lr(60, cfg) == pytest.approx(0.55)
    assert get_lr(110, cfg) == pytest.approx(0.1)
    assert get_lr(500, cfg) == 0.1
    assert get_lr(500, replace(cfg, decay_lr=False)) == 1.0


def test_scratch_run_refuses_out_dir_with_checkpoint_unless_overwrite(data_dir, tmp_path):
    train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2))
    with pytest.raises(FinegptError, match=r"holds files of an earlier run \(ckpt\.pt, .*--resume"):
        train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2))
    assert train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2), overwrite=True)["iter_num"] == 2


def test_full_disk_fails_before_training(data_dir, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(FinegptError, match=r"out_dir=.*: has 1 KiB free, but keep_checkpoints=3 needs 1\.\d MiB"):
        train(*cfgs(data_dir, tmp_path / "out", max_iters=2, eval_interval=2))
    assert not (tmp_path / "out").exists()


def test_cli_trains_from_nanogpt_style_config_file_with_overrides(data_dir, tmp_path, monkeypatch, capsys):
    from finegpt.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text(
        "# a nanoGPT-style config\nout_dir = 'out-tiny'\nwandb_mode = 'offline'\n"
        "n_layer = 2\nn_head = 2\nn_embd = 16 * 2\nblock_size = 32\nbatch_size = 4\n"
        "gradient_accumulation_steps = 1\nmax_iters = 100\neval_interval = 2\neval_iters = 1\ndevice = 'cpu'\n"
        "compile = False\n"
    )
    assert main(["train", "tiny.py", f"--data_dir={data_dir}", "--max_iters=2"]) == 0
    out = capsys.readouterr().out
    assert "note: wandb_mode is read by nanoGPT's train.py only" in out
    ckpt = load_checkpoint(tmp_path / "out-tiny")
    assert ckpt["iter_num"] == 2 and ckpt["config"]["model"]["n_embd"] == 32
    reads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: reads.append(a[0]) or real_load(*a, **kw))
    assert main(["train", "--resume", "--out_dir=out-tiny", "--max_iters=4"]) == 0
    assert len(reads) == 1  # the checkpoint is read once: for its settings and for the weights
    assert load_checkpoint(tmp_path / "out-tiny")["iter_num"] == 4


def test_flops_per_token_is_nanogpt_estimate_and_cpu_has_no_mfu():
    from finegpt.memory import flops_per_token
    from finegpt.step import gpu_name

    gpt2 = ModelConfig()  # bias=True: nanoGPT's count is 123,689,472
    assert flops_per_token(gpt2) == 6 * 123_689_472 + 12 * 12 * 768 * 1024
    assert gpu_name(torch.device("cpu")) is None  # so the loop logs no MFU


def test_overwrite_replaces_the_earlier_runs_checkpoints_and_log(tmp_path, data_dir):
    import json

    from finegpt.train.checkpoint import step_checkpoints

    out = tmp_path / "out"
    model_cfg, first = cfgs(data_dir, out, max_iters=6, eval_interval=2, keep_checkpoints=5)
    train(model_cfg, first)
    assert [p.name for p in step_checkpoints(out)] == ["ckpt_0000006.pt", "ckpt_0000004.pt", "ckpt_0000002.pt"]
    train(model_cfg, replace(first, max_iters=3, eval_interval=3), overwrite=True)
    assert [p.name for p in step_checkpoints(out)] == ["ckpt_0000003.pt"]
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(row["step"] for row in logged) == 3
