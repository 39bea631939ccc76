"""Interrupts and full disks, for real: SIGINT / SIGTERM sent to a training child process, a second
Ctrl-C, a disk that fills up while a run writes (a small tmpfs; where none can be mounted, RLIMIT_FSIZE
makes the write fail instead), and a pre-flight space check that counts keep_checkpoints.
Each test asserts the exit code, the one line, and that every earlier file is byte-identical afterwards."""

import contextlib
import os
import resource
import shutil
import signal
import subprocess

import pytest
import torch
from reliability_scenarios import assert_scenario
from train_fixtures import (  # noqa: F401
    TINY_MODEL,
    TINY_TRAIN,
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

SETTINGS = {**TINY_MODEL, **TINY_TRAIN, "eval_interval": 3, "eval_iters": 1, "keep_checkpoints": 10, "dropout": 0.1}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("shared") / "data", n_train=20_000, n_val=2_000)


def train_args(data, out="run", **extra) -> list[str]:
    return ["train", *overrides({**SETTINGS, **extra}), f"--data_dir={data}", f"--out_dir={out}"]


def same_weights(a, b) -> bool:
    a, b = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@contextlib.contextmanager
def small_disk(path, size: str):
    """A tmpfs of `size` mounted at path (root only); skips where it cannot be mounted."""
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the rlimit variant covers the failing write")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# ---- signals --------------------------------------------------------------------------------------------


def test_sigint_saves_the_step_and_resume_is_bitwise_identical(tmp_path, data, capsys):
    assert run_cli(train_args(data, "full", max_iters=12), tmp_path, capsys)[0] == 0
    child = spawn(train_args(data, max_iters=12), tmp_path)
    read_until(child, "iter 7: loss")  # checkpoints of iters 3 and 6 are on disk
    os.kill(child.pid, signal.SIGSTOP)
    rewritten = ("ckpt.pt", "latest", "metrics.jsonl", "run.json")  # run.json lists the run's files at each save
    earlier = file_hashes(tmp_path / "run", skip=rewritten)
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    os.kill(child.pid, signal.SIGINT)
    os.kill(child.pid, signal.SIGCONT)
    rc, out, err = finish(child)
    assert rc == 130
    stopped = int(assert_scenario("sigint", err, out="run")["iter"])
    assert "SIGINT: finishing this step, then saving a checkpoint (send it again to stop at once)" in out
    assert load_checkpoint(tmp_path / "run")["iter_num"] == stopped < 12
    after = file_hashes(tmp_path / "run", skip=rewritten)
    assert {k: v for k, v in after.items() if k in earlier} == earlier
    assert (tmp_path / "run" / "metrics.jsonl").read_text().startswith(metrics)

    assert run_cli(["train", "--resume", "--out_dir=run"], tmp_path, capsys)[0] == 0
    assert same_weights(tmp_path / "run", tmp_path / "full")  # as if never interrupted


def test_sigterm_during_overwrite_keeps_the_earlier_run_until_the_resumed_one_finishes(tmp_path, data, capsys):
    assert run_cli(train_args(data, max_iters=3), tmp_path, capsys)[0] == 0
    before = file_hashes(tmp_path / "run")
    child = spawn([*train_args(data, max_iters=9), "--overwrite"], tmp_path)
    read_until(child, "iter 4: loss")
    child.send_signal(signal.SIGTERM)
    rc, _, err = finish(child)
    assert rc == 143
    assert_scenario("sigterm", err, out="run")
    assert {k: v for k, v in file_hashes(tmp_path / "run").items() if not k.startswith(STAGING)} == before

    rc, _ = run_cli(["train", "--resume", f"--out_dir=run/{STAGING}"], tmp_path, capsys)
    assert rc == 0
    assert load_checkpoint(tmp_path / "run")["iter_num"] == 9 and not (tmp_path / "run" / STAGING).exists()
    assert run_cli(train_args(data, "full", max_iters=9), tmp_path, capsys)[0] == 0
    assert same_weights(tmp_path / "run", tmp_path / "full")


def test_second_sigint_stops_at_once_with_the_last_good_checkpoint_intact(tmp_path, data):
    # steps of a few hundred milliseconds: the second signal lands inside the step the first one waits for
    slow = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, gradient_accumulation_steps=2)
    child = spawn(train_args(data, max_iters=1000, eval_interval=2, **slow), tmp_path)
    read_until(child, "iter 3: loss")  # the checkpoint of iter 2 is on disk
    os.kill(child.pid, signal.SIGSTOP)
    before = file_hashes(tmp_path / "run", skip=("metrics.jsonl",))
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    os.kill(child.pid, signal.SIGINT)
    os.kill(child.pid, signal.SIGCONT)
    read_until(child, "SIGINT: finishing this step")
    os.kill(child.pid, signal.SIGINT)
    rc, out, err = finish(child)
    assert rc == 130
    assert_scenario("second_sigint", err, out="run")
    assert "saved checkpoint iter 4" not in out and "iter 4: loss" not in out
    assert file_hashes(tmp_path / "run", skip=("metrics.jsonl",)) == before  # no temp file either
    assert (tmp_path / "run" / "metrics.jsonl").read_text().startswith(metrics)
    assert load_checkpoint(tmp_path / "run")["iter_num"] == 2


def test_interrupt_inside_a_save_removes_its_temp_file_and_keeps_the_old_one(tmp_path):
    from finegpt.train.checkpoint import save_checkpoint

    save_checkpoint({"iter_num": 1, "w": torch.ones(10)}, tmp_path, keep=1)
    before = file_hashes(tmp_path, skip=())
    state = {"iter_num": 2, "w": torch.zeros(64 * 2**20 // 4)}  # 64 MiB: the alarm fires while it is written

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.002)
    try:
        with pytest.raises(KeyboardInterrupt):  # not torch's "unexpected pos" RuntimeError
            save_checkpoint(state, tmp_path, keep=1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert file_hashes(tmp_path, skip=()) == before  # no temp file, the old checkpoint untouched


# ---- full disks ---------------------------------------------------------------------------------------------


def _fill(disk, leave_bytes: int) -> None:
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(free - leave_bytes, 0))


def _no_bigger_files(limit_bytes: int):
    def preexec():  # in the child: a write past the limit fails with EFBIG instead of killing it (SIGXFSZ)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return preexec


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_a_save_that_finds_no_space_leaves_no_temp_file_and_names_the_space_needed(how, tmp_path, data, capsys):
    args = dict(max_iters=8, eval_interval=2, keep_checkpoints=1)
    skip = ("metrics.jsonl", ".lock")  # the log goes on growing; the lock names the latest process
    with contextlib.ExitStack() as stack:
        if how == "tmpfs":  # another program fills the disk while the run goes on
            stack.enter_context(small_disk(tmp_path / "disk", "4m"))
            out = "disk/run"
            child = spawn(train_args(data, out, **args), tmp_path)
            read_until(child, "saved checkpoint iter 2")
            os.kill(child.pid, signal.SIGSTOP)
            _fill(tmp_path / "disk", leave_bytes=64 * 1024)
            before = file_hashes(tmp_path / out, skip=skip)
            os.kill(child.pid, signal.SIGCONT)
        else:  # no file may grow past 100 kB: the checkpoint's write fails with EFBIG
            out = "run"
            assert run_cli(train_args(data, out, **{**args, "max_iters": 2}), tmp_path, capsys)[0] == 0
            before = file_hashes(tmp_path / out, skip=skip)
            resume = ["train", "--resume", f"--out_dir={out}", "--max_iters=8"]
            child = spawn(resume, tmp_path, preexec_fn=_no_bigger_files(100_000))
        rc, _, err = finish(child)
        assert rc == 2
        assert_scenario("disk_full" if how == "tmpfs" else "file_too_large", err, out=out, iter=4)
        assert not list((tmp_path / out).glob("*.tmp"))
        assert file_hashes(tmp_path / out, skip=skip) == before
        assert load_checkpoint(tmp_path / out)["iter_num"] == 2
        if how == "tmpfs":
            (tmp_path / "disk" / "filler").unlink()  # space freed, as the message asks: the run resumes
        assert run_cli(["train", "--resume", f"--out_dir={out}", "--max_iters=4"], tmp_path, capsys)[0] == 0
        assert load_checkpoint(tmp_path / out)["iter_num"] == 4


def test_preflight_space_check_counts_keep_checkpoints(tmp_path, data, capsys):
    with small_disk(tmp_path / "disk", "1400k"):  # room for three checkpoints of this model, not four
        rc, err = run_cli(train_args(data, "disk/run", max_iters=4, keep_checkpoints=3), tmp_path, capsys)
        assert rc == 2
        assert_scenario("preflight_keep", err, out="disk/run")
        assert not (tmp_path / "disk" / "run").exists()
        assert run_cli(train_args(data, "disk/run", max_iters=4, keep_checkpoints=1), tmp_path, capsys)[0] == 0
