"""Run folders and overwrites, for real: a second process on a locked folder, --overwrite killed or failing
halfway, a source changed between a kill and the rerun, shards that no longer match the checkpoint.
Each test asserts the exit code, the one line, and that every earlier file is byte-identical afterwards."""

import json
import os
import signal
import subprocess

import pytest
import torch
from reliability_scenarios import assert_scenario
from train_fixtures import (  # noqa: F401
    TINY_MODEL,
    TINY_TRAIN,
    english_text,
    file_hashes,
    make_data,
    one_torch_thread,
    overrides,
    read_until,
    run_cli,
    spawn,
)

from finegpt.folders import STAGING, lock_holder
from finegpt.train import load_checkpoint

ARGS = overrides({**TINY_MODEL, **TINY_TRAIN, "eval_interval": 2, "eval_iters": 1, "keep_checkpoints": 2})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("shared") / "data", n_train=20_000, n_val=2_000)


def train_args(data, out="run", **extra) -> list[str]:
    return ["train", *ARGS, f"--data_dir={data}", f"--out_dir={out}", *overrides(extra)]


def dataset(folder) -> dict:
    """Hashes of the shards and meta.json: what a prepare produces (its manifest and stats also hold timings)."""
    return {k: v for k, v in file_hashes(folder).items() if k.endswith(".bin") or k == "meta.json"}


def wait_for_file(proc: subprocess.Popen, path) -> None:
    """Until `path` exists (the child is then past the point the test needs), or the child has exited."""
    while not path.exists() and proc.poll() is None:
        try:
            proc.wait(timeout=0.005)
        except subprocess.TimeoutExpired:
            pass


# ---- 1. run folders are owned and locked ----------------------------------------------------------------


def test_fresh_train_refuses_a_folder_with_an_earlier_runs_files_and_names_them(tmp_path, data, capsys):
    assert run_cli(train_args(data, max_iters=4), tmp_path, capsys)[0] == 0
    run = tmp_path / "run"
    owner = json.loads((run / "run.json").read_text())
    assert len(owner["run_id"]) == 32 and owner["pid"] == os.getpid()
    (run / "ckpt.pt").rename(run / "ckpt.pt.broken")  # the advice for a truncated checkpoint: move it aside
    before = file_hashes(run, skip=())
    rc, err = run_cli(train_args(data, max_iters=4), tmp_path, capsys)
    assert rc == 2
    assert err == (
        "error: out_dir='run': holds files of an earlier run (ckpt_0000002.pt, ckpt_0000004.pt, latest, "
        "metrics.jsonl). Continue it with --resume, replace it with --overwrite (it is kept until the new run "
        "finishes), or pick a new --out_dir.\n"
    )
    assert file_hashes(run, skip=()) == before


def test_second_process_on_a_locked_run_folder_fails_at_once_naming_the_first(tmp_path, data, capsys):
    child = spawn(train_args(data, max_iters=100_000), tmp_path)
    try:
        read_until(child, "iter 3: loss")  # after the checkpoint of iter 2
        os.kill(child.pid, signal.SIGSTOP)  # it holds still, so nothing in its folder changes while we look
        before = file_hashes(tmp_path / "run", skip=())
        for args in (["train", "--resume", "--out_dir=run"], [*train_args(data), "--overwrite"]):
            rc, err = run_cli(args, tmp_path, capsys)
            assert rc == 2
            assert_scenario("lock_train", err, out="run", pid=child.pid)
        assert file_hashes(tmp_path / "run", skip=()) == before
    finally:
        child.kill()  # SIGKILL: no chance to clean up, and the lock must still go
        child.communicate()
    assert lock_holder(tmp_path / "run") is None
    assert run_cli(["train", "--resume", "--out_dir=run", "--max_iters=4"], tmp_path, capsys)[0] == 0
    assert load_checkpoint(tmp_path / "run")["iter_num"] == 4


def test_second_prepare_into_a_locked_folder_fails_at_once(tmp_path, capsys):
    (tmp_path / "big.txt").write_text(english_text(400_000) * 3)
    command = ["prepare", "--source=big.txt", "--out=data", "--tokenizer=bytes", "--shard_tokens=20000"]
    child = spawn([*command, "--val_tokens=1000", "--no_progress"], tmp_path)
    try:
        wait_for_file(child, tmp_path / "data" / "train_000000.bin")
        os.kill(child.pid, signal.SIGSTOP)
        assert child.poll() is None, "the prepare finished before the test could stop it"
        before = file_hashes(tmp_path / "data", skip=())
        rc, err = run_cli([*command, "--val_tokens=1000", "--overwrite"], tmp_path, capsys)
        assert rc == 2
        assert_scenario("lock_prepare", err, out="data", pid=child.pid)
        assert file_hashes(tmp_path / "data", skip=()) == before
    finally:
        child.kill()
        child.communicate()


# ---- 2. overwrite only after success ------------------------------------------------------------------


def test_train_overwrite_killed_midway_leaves_the_earlier_run_byte_identical(tmp_path, data, capsys):
    assert run_cli(train_args(data, max_iters=4), tmp_path, capsys)[0] == 0
    run = tmp_path / "run"
    first_owner = json.loads((run / "run.json").read_text())["run_id"]
    before = file_hashes(run)
    child = spawn([*train_args(data, max_iters=100_000), "--overwrite"], tmp_path)
    read_until(child, "iter 7: loss")  # the new run has checkpoints of its own by now
    child.kill()
    assert child.wait() == -signal.SIGKILL
    child.communicate()
    assert {k: v for k, v in file_hashes(run).items() if not k.startswith(STAGING)} == before
    assert (run / STAGING / "ckpt_0000006.pt").is_file()

    assert run_cli([*train_args(data, max_iters=3, eval_interval=3), "--overwrite"], tmp_path, capsys)[0] == 0
    assert sorted(p.name for p in run.glob("ckpt*.pt")) == ["ckpt.pt", "ckpt_0000003.pt"]
    assert not (run / STAGING).exists()
    assert max(json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()) == 3
    assert json.loads((run / "run.json").read_text())["run_id"] != first_owner


def test_prepare_overwrite_failing_on_a_bad_byte_leaves_the_old_shards_byte_identical(tmp_path, capsys):
    (tmp_path / "old.txt").write_text(english_text(6000))
    common = ["prepare", "--out=data", "--tokenizer=bytes", "--shard_tokens=50000", "--val_tokens=500", "--no_progress"]
    assert run_cli([*common, "--source=old.txt"], tmp_path, capsys)[0] == 0
    before = file_hashes(tmp_path / "data")
    lines = [json.dumps({"text": f"Document {i}: {english_text(400)}"}) + "\n" for i in range(4000)]
    good = "".join(lines).encode()
    bad = good.replace(b"Document 3500:", b"Document 3500\xff")  # one bad byte, after the first 1 MiB
    (tmp_path / "new.jsonl").write_bytes(bad)
    rc, err = run_cli([*common, "--source=new.jsonl", "--overwrite"], tmp_path, capsys)
    assert rc == 2
    assert_scenario("overwrite_prepare_bad_byte", err, file="new.jsonl", n=3501)
    assert {k: v for k, v in file_hashes(tmp_path / "data").items() if not k.startswith(STAGING)} == before
    assert (tmp_path / "data" / STAGING / "train_000019.bin").is_file()  # it failed halfway, not at the start

    (tmp_path / "new.jsonl").write_bytes(good)  # fixed: the same command now replaces the old shards
    assert run_cli([*common, "--source=new.jsonl", "--overwrite"], tmp_path, capsys)[0] == 0
    assert run_cli([*common, "--source=new.jsonl"], tmp_path, capsys)[0] == 2  # already holds this data
    common[1] = "--out=ref"
    assert run_cli([*common, "--source=new.jsonl"], tmp_path, capsys)[0] == 0
    assert dataset(tmp_path / "data") == dataset(tmp_path / "ref")


# ---- 3. a resume knows its inputs -------------------------------------------------------------------------


def test_prepare_rerun_after_kill_with_a_changed_source_refuses_then_starts_over(tmp_path, capsys):
    src = tmp_path / "docs.txt"
    original = english_text(400_000)
    src.write_text(original)
    command = ["prepare", "--source=docs.txt", "--out=data", "--tokenizer=bytes", "--shard_tokens=5000"]
    command += ["--val_tokens=1000", "--no_progress"]
    child = spawn(command, tmp_path)
    wait_for_file(child, tmp_path / "data" / "train_000003.bin")
    child.kill()
    child.communicate()
    assert not (tmp_path / "data" / "meta.json").exists(), "the prepare finished before it could be killed"
    before = file_hashes(tmp_path / "data")

    src.write_text(original + "A paragraph added after the kill.\n")
    rc, err = run_cli(command, tmp_path, capsys)
    assert rc == 2
    m = len(original.encode())
    assert_scenario("changed_source", err, source="docs.txt", out="data", file="docs.txt", n=m + 34, m=m)
    assert file_hashes(tmp_path / "data") == before

    src.write_text(original)  # restored: a newer mtime, the same bytes, so the hash lets it resume
    assert run_cli(command, tmp_path, capsys)[0] == 0
    ref = [c.replace("--out=data", "--out=ref") for c in command]
    assert run_cli(ref, tmp_path, capsys)[0] == 0
    assert dataset(tmp_path / "data") == dataset(tmp_path / "ref")

    src.write_text(original + "A paragraph added after the kill.\n")  # on request: start over from the new one
    assert run_cli([*command, "--overwrite"], tmp_path, capsys)[0] == 0
    assert run_cli([*ref, "--overwrite"], tmp_path, capsys)[0] == 0
    assert dataset(tmp_path / "data") == dataset(tmp_path / "ref")
    assert json.loads((tmp_path / "data" / "meta.json").read_text())["tokens"]["train"] == m + 35 - 1000


def test_resume_refuses_shards_of_another_tokenizer_than_the_checkpoints(tmp_path, capsys):
    make_data(tmp_path / "data", n_train=6000, n_val=1000)
    assert run_cli(train_args(tmp_path / "data", max_iters=2), tmp_path, capsys)[0] == 0
    rc, _ = run_cli(
        ["prepare", "--source=data.txt", "--out=data", "--tokenizer=gpt2", "--overwrite", "--no_progress"],
        tmp_path,
        capsys,
    )  # the same folder, prepared again with another tokenizer
    assert rc == 0
    before = file_hashes(tmp_path)
    rc, err = run_cli(["train", "--resume", "--out_dir=run", "--max_iters=4"], tmp_path, capsys)
    assert rc == 2
    assert err == (
        f"error: data_dir='{tmp_path / 'data'}': holds 'gpt2' shards (vocab 50257), but the checkpoint in 'run' "
        f"was trained on 'bytes' (vocab 257). Resume with the data it was trained on (it was in "
        f"'{tmp_path / 'data'}'), or start a new run in another --out_dir.\n"
    )
    assert file_hashes(tmp_path) == before


# ---- 7. checks that can run before the run folder is touched --------------------------------------------


def test_memory_check_judges_compiled_runs_once_a_gpu_has_calibrated_them():
    from finegpt.config import ModelConfig, TrainConfig
    from finegpt.errors import FinegptError
    from finegpt.memory import GIB
    from finegpt.memory import calibration as cal
    from finegpt.train.preflight import check_memory

    gpt2, cfg = ModelConfig(vocab_size=50304), TrainConfig(batch_size=64, compile=True)
    pending = {"compiled": {}, "compiled_cpu": {}, "overheads": {}, "mfu": {}}  # before any GPU measurement
    with cal.use(pending):
        check_memory(gpt2, cfg, torch.device("cuda:0"), torch.bfloat16, total_bytes=24 * GIB)  # CPU-only: silent
    measured = {**pending, "compiled": {"status": "GPU-measured (H200)"}}
    with cal.use(measured), pytest.raises(FinegptError, match="batch_size=64"):
        check_memory(gpt2, cfg, torch.device("cuda:0"), torch.bfloat16, total_bytes=24 * GIB)


def test_memory_check_refuses_a_batch_the_card_cannot_hold(tmp_path, data, capsys):
    from finegpt.config import ModelConfig, TrainConfig
    from finegpt.errors import FinegptError
    from finegpt.memory import GIB
    from finegpt.train.preflight import check_memory

    gpt2 = ModelConfig(vocab_size=50304)
    cfg = TrainConfig(batch_size=64, gradient_accumulation_steps=8)
    with pytest.raises(FinegptError) as e:  # the card's size given: the same arithmetic as on a real GPU
        check_memory(gpt2, cfg, torch.device("cuda:0"), torch.bfloat16, total_bytes=24 * GIB)
    values = assert_scenario("memory", f"error: {e.value}", b=64, total="24.0", device="cuda:0")
    best = int(values["best"])
    assert 1 <= best < 64 and int(values["gas"]) == -(-64 * 8 // best)
    check_memory(gpt2, TrainConfig(batch_size=best), torch.device("cuda:0"), torch.bfloat16, total_bytes=24 * GIB)
    if not torch.cuda.is_available():
        return
    free, total = torch.cuda.mem_get_info()  # a real card: the CLI refuses before creating the folder
    rc, err = run_cli(
        ["train", f"--data_dir={data}", "--out_dir=big", "--n_layer=48", "--n_embd=1600", "--n_head=25"]
        + ["--block_size=1024", "--batch_size=512", "--max_iters=1"],
        tmp_path,
        capsys,
    )
    assert rc == 2
    assert_scenario("memory", err, b=512)
    assert not (tmp_path / "big").exists()


def test_a_commit_cut_short_is_finished_by_the_next_command(tmp_path, monkeypatch):
    """The stage is marked complete before anything moves, so a crash halfway through the moves (here:
    os.replace failing on its third call) leaves a folder that recover() brings to the committed state."""
    from finegpt import folders

    target = tmp_path / "out"
    target.mkdir()
    for name, text in {"old.bin": "old", "shared.bin": "old", "meta.json": "old", "notes.txt": "mine"}.items():
        (target / name).write_text(text)
    stage = folders.fresh_stage(target)
    for name in ("shared.bin", "new.bin", "meta.json"):
        (stage / name).write_text("new")
    stale = lambda name: name.endswith((".bin", ".json"))  # noqa: E731 -- the tool's own files
    real_replace, calls = os.replace, []

    def crash_on_third(src, dst):
        calls.append(src)
        if len(calls) == 3:
            raise OSError("the machine went down")
        real_replace(src, dst)

    monkeypatch.setattr(folders.os, "replace", crash_on_third)
    with pytest.raises(OSError, match="went down"):
        folders.commit(stage, target, "prepare", stale, first_removed=("meta.json",))
    monkeypatch.setattr(folders.os, "replace", real_replace)
    assert not (target / "meta.json").exists()  # the index went first: no reader pairs it with a mix
    assert folders.recover(target, "prepare", stale, first_removed=("meta.json",))
    assert {p.name: p.read_text() for p in target.iterdir()} == {
        "shared.bin": "new",
        "new.bin": "new",
        "meta.json": "new",
        "notes.txt": "mine",
    }
    assert not folders.recover(target, "prepare", stale)  # nothing left to finish
