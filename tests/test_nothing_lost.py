"""Reruns that keep earlier work, a lock that deleting a file cannot break, and a prepare on a full disk,
for real: child processes killed or stopped midway, `.lock` and whole folders deleted under a live run,
files of a user's own beside a run. Each test asserts the exit code, the one line, and the bytes of
every file that must survive."""

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from reliability_scenarios import assert_scenario
from test_interrupts import small_disk
from train_fixtures import (  # noqa: F401
    TINY_MODEL,
    TINY_TRAIN,
    english_text,
    file_hashes,
    finish,
    make_data,
    one_torch_thread,
    overrides,
    read_until,
    run_cli,
    spawn,
)

from finegpt.folders import STAGING
from finegpt.train import load_checkpoint

ARGS = overrides({**TINY_MODEL, **TINY_TRAIN, "eval_interval": 2, "eval_iters": 1, "keep_checkpoints": 2})
NOTEBOOK_04 = Path(__file__).resolve().parents[1] / "notebooks" / "04_training_run.py"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("shared") / "data", n_train=20_000, n_val=2_000)


def train_args(data, out="run", **extra) -> list[str]:
    return ["train", *ARGS, f"--data_dir={data}", f"--out_dir={out}", *overrides(extra)]


def outside_stage(folder) -> dict:
    return {k: v for k, v in file_hashes(folder).items() if not k.startswith(STAGING)}


# ---- 1. reruns build beside the earlier result and delete only what it listed ----------------------------

LAB_RUN = """
import sys
from dataclasses import replace
from pathlib import Path
from finegpt import lab
settings = lab.settings("smoke")
paths = lab.paths("smoke", root=Path(sys.argv[1]))
model_cfg, train_cfg = lab.run_configs(settings, paths)
train_cfg = replace(train_cfg, max_iters=int(sys.argv[2]), eval_interval=4, log_interval=2, eval_iters=1)
lab.fresh_run(model_cfg, train_cfg, callback=lambda row: print("row", row["iter"], flush=True))
"""


def test_notebook_04_rerun_killed_midway_keeps_the_earlier_model(tmp_path):
    """Notebook 04's training cell, in smoke mode, through the lab functions it calls: a rerun whose kernel
    dies halfway leaves the earlier run byte-identical; an interrupted rerun resumes beside it and replaces
    it only when finished."""
    source = NOTEBOOK_04.read_text()
    assert "rmtree" not in source and "lab.fresh_run(model_cfg, train_cfg" in source
    assert "lab.run_in_progress(paths.run)" in source and "lab.resume_run(model_cfg, train_cfg" in source
    from finegpt import lab

    paths = lab.paths("smoke", root=tmp_path / "lab")
    make_data(paths.train_data, n_train=20_000, n_val=2_000)
    script = tmp_path / "lab_run.py"
    script.write_text(LAB_RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, str(script), str(tmp_path / "lab"), "8"], env=env, check=True, capture_output=True)
    before = file_hashes(paths.run)
    assert load_checkpoint(paths.run)["iter_num"] == 8

    child = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "lab"), "1000"], env=env, stdout=subprocess.PIPE, text=True
    )
    read_until(child, "row 6")  # the rerun has a checkpoint of its own (iter 4)
    child.kill()
    assert child.wait() == -signal.SIGKILL
    child.communicate()
    assert outside_stage(paths.run) == before
    assert lab.run_in_progress(paths.run) == paths.run / STAGING

    model_cfg, train_cfg = lab.run_configs(lab.settings("smoke"), paths)
    train_cfg = replace(train_cfg, max_iters=12, eval_interval=4, log_interval=2, eval_iters=1)

    def interrupt(row):  # the notebook's simulated stop button
        if row["iter"] >= 6 and "loss" in row:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lab.fresh_run(model_cfg, train_cfg, callback=interrupt)
    assert outside_stage(paths.run) == before
    assert load_checkpoint(lab.run_in_progress(paths.run))["iter_num"] == 4
    assert lab.resume_run(model_cfg, train_cfg)["iter_num"] == 12
    assert load_checkpoint(paths.run)["iter_num"] == 12 and not (paths.run / STAGING).exists()


def test_train_overwrite_removes_only_the_files_its_earlier_run_listed(tmp_path, data, capsys):
    assert run_cli(train_args(data, max_iters=4), tmp_path, capsys)[0] == 0
    run = tmp_path / "run"
    listed = json.loads((run / "run.json").read_text())["files"]
    assert listed == ["ckpt.pt", "ckpt_0000002.pt", "ckpt_0000004.pt", "latest", "metrics.jsonl", "run.json"]
    (run / "notes.txt").write_text("my notes")
    (run / "wandb").mkdir()  # a folder of the user's own, named like a tracker's
    (run / "wandb" / "mine.txt").write_text("my own wandb export")
    mine = {k: v for k, v in file_hashes(run).items() if k in ("notes.txt", "wandb/mine.txt")}
    rc, err = run_cli([*train_args(data, max_iters=3, eval_interval=3), "--overwrite"], tmp_path, capsys)
    assert rc == 0, err
    assert sorted(p.name for p in run.glob("ckpt*.pt")) == ["ckpt.pt", "ckpt_0000003.pt"]
    assert {k: v for k, v in file_hashes(run).items() if k in mine} == mine


def test_prepare_overwrite_removes_only_the_files_its_meta_listed(tmp_path, capsys):
    (tmp_path / "a.txt").write_text(english_text(30_000))
    (tmp_path / "b.txt").write_text(english_text(12_000))
    common = ["prepare", "--out=data", "--tokenizer=bytes", "--shard_tokens=5000", "--val_tokens=1000", "--no_progress"]
    assert run_cli([*common, "--source=a.txt"], tmp_path, capsys)[0] == 0
    (tmp_path / "data" / "README.txt").write_text("where this data came from")
    (tmp_path / "data" / "train_999999.bin").write_text("a file of mine with a shard's name")
    assert run_cli([*common, "--source=b.txt", "--overwrite"], tmp_path, capsys)[0] == 0
    names = sorted(p.name for p in (tmp_path / "data").iterdir() if p.name != ".lock")
    assert names == [
        "README.txt",
        "manifest.json",
        "meta.json",
        "stats.json",
        "train_000000.bin",
        "train_000001.bin",
        "train_000002.bin",
        "train_999999.bin",
        "val_000000.bin",
    ]


# ---- 2. the lock is on the folder itself ------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_unlock_the_folder(tmp_path, data, capsys):
    child = spawn(train_args(data, max_iters=100_000), tmp_path)
    try:
        read_until(child, "iter 3: loss")
        os.kill(child.pid, signal.SIGSTOP)
        (tmp_path / "run" / ".lock").unlink()
        before = file_hashes(tmp_path / "run", skip=())
        rc, err = run_cli(["train", "--resume", "--out_dir=run"], tmp_path, capsys)
        assert rc == 2
        assert_scenario("lock_file_deleted", err, out="run", pid=child.pid)
        assert file_hashes(tmp_path / "run", skip=()) == before
        os.kill(child.pid, signal.SIGCONT)
        read_until(child, "saved checkpoint iter 4")  # its next save puts the note back for people to read
        assert json.loads((tmp_path / "run" / ".lock").read_text())["pid"] == child.pid
    finally:
        child.kill()
        child.communicate()


@pytest.mark.parametrize("then", ["gone", "made_again"])
def test_a_run_whose_folder_is_deleted_stops_at_its_next_save(then, tmp_path, data, capsys):
    child = spawn(train_args(data, max_iters=100_000), tmp_path)
    try:
        read_until(child, "iter 3: loss")
        os.kill(child.pid, signal.SIGSTOP)
        shutil.rmtree(tmp_path / "run")
        if then == "made_again":  # a second run takes the name: the first must never write into it
            assert run_cli(train_args(data, max_iters=2), tmp_path, capsys)[0] == 0
            second = file_hashes(tmp_path / "run")
        os.kill(child.pid, signal.SIGCONT)
        rc, _, err = finish(child)
    finally:
        child.kill()
    assert rc == 2
    how = "was deleted" if then == "gone" else "was deleted and made again by someone else"
    assert_scenario("folder_deleted", err, out="run", how=how)
    if then == "gone":
        assert not (tmp_path / "run").exists()
    else:
        assert file_hashes(tmp_path / "run") == second


# ---- 5. prepare on a full disk ------------------------------------------------------------------------------


def test_prepare_on_a_full_disk_stops_with_one_line_and_whole_shards(tmp_path, capsys):
    (tmp_path / "big.txt").write_text(english_text(300_000))
    with small_disk(tmp_path / "disk", "200k"):
        command = ["prepare", "--source=big.txt", "--tokenizer=bytes", "--shard_tokens=20000", "--no_progress"]
        rc, err = run_cli([*command, "--out=disk/sized", "--tokens=300000"], tmp_path, capsys)
        assert rc == 2  # the size is known: refused before anything is written
        assert_scenario("prepare_no_room", err, out="disk/sized")
        assert not (tmp_path / "disk" / "sized").exists()

        rc, err = run_cli([*command, "--out=disk/data", "--val_tokens=1000"], tmp_path, capsys)
        assert rc == 2  # no budget: the size shows only as the disk fills
        assert_scenario("prepare_disk_full", err, out="disk/data")
        out = tmp_path / "disk" / "data"
        assert not list(out.glob("*.tmp")) and not (out / "meta.json").exists()
        manifest = json.loads((out / "manifest.json").read_text())
        from finegpt.data import read_shard

        assert len(manifest["shards"]) >= 3
        for s in manifest["shards"]:  # every shard it lists is whole
            assert read_shard(out / s["file"])[0]["num_tokens"] == s["tokens"]
        assert sorted(p.name for p in out.glob("*.bin")) == sorted(s["file"] for s in manifest["shards"])


# ---- 3. a resume is the same run, or says what changed -----------------------------------------------------


def test_resume_refuses_data_prepared_again_and_a_new_world_size_then_continues_on_request(
    tmp_path, capsys, monkeypatch
):
    make_data(tmp_path / "data", n_train=6000, n_val=1000)
    assert run_cli(train_args(tmp_path / "data", max_iters=2), tmp_path, capsys)[0] == 0
    (tmp_path / "other.txt").write_text(english_text(20_000)[::-1])  # the same size, other text
    prepare = ["prepare", "--source=other.txt", "--out=data", "--tokenizer=bytes", "--tokens=7000"]
    assert run_cli([*prepare, "--val_tokens=1000", "--overwrite", "--no_progress"], tmp_path, capsys)[0] == 0
    before = file_hashes(tmp_path / "run")
    rc, err = run_cli(["train", "--resume", "--out_dir=run", "--max_iters=4"], tmp_path, capsys)
    assert rc == 2
    assert_scenario("resume_data_changed", err, out="run")
    with monkeypatch.context() as m:
        m.setenv("WORLD_SIZE", "2")
        rc, err = run_cli(["train", "--resume", "--out_dir=run", "--resume_changed=data"], tmp_path, capsys)
    assert rc == 2 and "world_size 1 -> 2" in err and "data fingerprint" not in err
    assert file_hashes(tmp_path / "run") == before

    resume = ["train", "--resume", "--out_dir=run", "--max_iters=4", "--batch_size=4", "--resume_changed=data"]
    rc, err = run_cli(resume, tmp_path, capsys)
    assert rc == 2 and "batch_size 8 -> 4" in err  # one allowed, the other still refused
    rc, err = run_cli([*resume[:-1], "--resume_changed=batch_size,data"], tmp_path, capsys)
    assert rc == 0, err
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "resume_changed" in r]
    assert [r["step"] for r in logged] == [2] and logged[0]["exact"] is False
    assert sorted(logged[0]["resume_changed"]) == ["batch_size", "data"]
    assert logged[0]["resume_changed"]["batch_size"] == [8, 4]
    ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["iter_num"] == 4 and ckpt["data"]["stream"]["exact"] is False
    assert ckpt["data"]["stream"]["batch_size"] == 4  # the next resume compares with what it runs now
    assert json.loads((tmp_path / "run" / "run.json").read_text())["exact"] is False
    assert run_cli(["train", "--resume", "--out_dir=run", "--max_iters=6"], tmp_path, capsys)[0] == 0


# ---- 4. paths as people type them ---------------------------------------------------------------------------


def test_hints_quote_the_paths_they_print(tmp_path):
    from finegpt.data import load_meta
    from finegpt.errors import FinegptError
    from finegpt.train.rundir import RunFolder

    assert_scenario("hint_quoted", RunFolder(Path("my run"), "scratch", False).resume_hint())
    with pytest.raises(FinegptError, match="Run `finegpt prepare --out 'my data/x'` first"):
        load_meta("my data/x")


def test_config_files_read_in_the_encoding_their_first_lines_name(tmp_path):
    from finegpt.config import load_config_file

    (tmp_path / "latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nwandb_run_name = 'caf\xe9'\n")
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfwandb_run_name = 'caf\xc3\xa9'\n")
    (tmp_path / "cp1252.py").write_bytes(b"# coding=cp1252\nwandb_run_name = '\x80 5'\n")
    assert load_config_file(tmp_path / "latin1.py") == {"wandb_run_name": "café"}
    assert load_config_file(tmp_path / "bom.py") == {"wandb_run_name": "café"}
    assert load_config_file(tmp_path / "cp1252.py") == {"wandb_run_name": "€ 5"}


# ---- 5. the lab folder, the calibration -------------------------------------------------------------------


def test_a_read_only_lab_folder_is_one_line(tmp_path, monkeypatch):
    from finegpt.errors import FinegptError
    from finegpt.lab import home

    ro = tmp_path / "ro"
    ro.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)]
    mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
    if not mounted:
        ro.chmod(0o555)  # as root a mode does not stop writes: only a read-only mount does
        if os.geteuid() == 0:
            pytest.skip("root cannot be kept out by a mode, and no read-only tmpfs can be mounted here")
    try:
        monkeypatch.setenv("FINEGPT_HOME", str(ro / "lab"))
        with pytest.raises(FinegptError) as e:
            home()
        if mounted:
            assert_scenario("lab_folder_read_only", str(e.value), path=ro / "lab")
        else:
            assert str(e.value).startswith(f"FINEGPT_HOME='{ro / 'lab'}': cannot be created (Permission denied)")
        monkeypatch.setenv("FINEGPT_HOME", str(ro))
        with pytest.raises(FinegptError, match=r"^FINEGPT_HOME='.*/ro': is read-only for this user"):
            home()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_damaged_calibration_file_warns_once_and_the_cited_defaults_apply(tmp_path, monkeypatch):
    from finegpt import memory
    from finegpt.config import ModelConfig
    from finegpt.memory import calibration

    bad = tmp_path / "calibration.json"
    bad.write_text(json.dumps({"compiled": {"logits_train_copies": "three"}, "mfu": {"H200": 0.4}}))
    monkeypatch.setattr(calibration, "PATH", bad)
    monkeypatch.setattr(calibration, "_active", None)
    with pytest.warns(UserWarning) as caught:
        cfg = ModelConfig(n_layer=2, n_head=2, n_embd=64, vocab_size=320, block_size=64)
        report = memory.estimate(cfg, memory.RunConfig(batch_size=4, compile=True))
        memory.estimate(cfg, memory.RunConfig(batch_size=8, compile=True))
    assert len(caught) == 1
    assert_scenario("calibration_damaged", str(caught[0].message).replace(str(bad), "<file>"), file="<file>")
    assert report.peak_bytes > 0 and calibration.compiled_coefficient("logits_train_copies") == 3.0


def test_finegpt_check_reads_every_id_of_good_data(data, capsys):
    from finegpt.cli import main

    capsys.readouterr()
    assert main(["check", str(data)]) == 0
    assert capsys.readouterr().out == (
        f"{data}: 2 shards, 22,000 bytes tokens, every id below the vocab of 257 (largest 256)\n"
    )


def test_an_id_past_the_vocab_that_the_sample_at_open_misses_stops_its_batch(tmp_path):
    """The look at open reads 16 slices of a large shard; an id between them is caught by the batch that
    reads it, in one line, before the model sees it."""
    import numpy as np

    from finegpt.data import BatchLoader
    from finegpt.data.checks import SAMPLE_TOKENS
    from finegpt.data.shards import HEADER_BYTES
    from finegpt.errors import FinegptError

    data = make_data(tmp_path / "data", n_train=200_000, n_val=2_000)
    shard = data / "train_000000.bin"
    position = 4 * SAMPLE_TOKENS  # the first slice ends at 2048, the second starts near 13,000
    raw = bytearray(shard.read_bytes())
    raw[HEADER_BYTES + 2 * position : HEADER_BYTES + 2 * position + 2] = np.uint16(999).tobytes()
    shard.write_bytes(bytes(raw))
    loader = BatchLoader(data, "train", batch_size=8, block_size=64, sampling="epoch")  # opens: sample passes
    with pytest.raises(FinegptError) as e:
        for step in range(loader.n_windows // 8 + 1):
            loader.get_batch(step)
    assert str(e.value) == (
        f"data_dir='{data}': the train batch of step {step} holds token id 999, outside its vocab of 257. "
        "A shard is damaged: `finegpt check` names it; rerun `finegpt prepare` with --overwrite."
    )


NO_DIRECTORY_FLOCK = """
import errno, fcntl, os, stat, sys
real = fcntl.flock
def flock(fd, flags):  # as on NFS: a directory cannot be flocked
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        raise OSError(errno.EBADF, "Bad file descriptor")
    return real(fd, flags)
fcntl.flock = flock
"""


def test_where_a_directory_cannot_be_flocked_the_lock_file_carries_the_lock(tmp_path, monkeypatch):
    from finegpt import folders

    monkeypatch.setattr(folders.fcntl, "flock", folders.fcntl.flock)  # the real one comes back afterwards
    exec(NO_DIRECTORY_FLOCK, {})  # patches fcntl.flock in this process
    probe = NO_DIRECTORY_FLOCK + "from finegpt.folders import lock_holder\nprint(lock_holder(sys.argv[1]))\n"
    with folders.FolderLock(tmp_path, "out", "finegpt train"):
        done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert done.stdout.startswith(f"PID {os.getpid()} on "), done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
    assert done.stdout == "None\n", done.stderr
