"""Tiny prepared data and configs for the training tests: bytes-tokenized English from the stdlib."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def english_text(n_chars: int) -> str:
    from pydoc_data.topics import topics  # ~465k chars of English that ship with Python

    return "".join(topics[k] for k in sorted(topics))[:n_chars]


def make_data(data_dir: Path, n_train: int = 40_000, n_val: int = 6_000) -> Path:
    """Bytes-tokenized shards (train, val) made by `finegpt.data.prepare` from a local text file."""
    from finegpt.data import prepare

    source = data_dir.parent / f"{data_dir.name}.txt"
    source.write_text(english_text(n_train + n_val), encoding="utf-8")
    prepare(str(source), out=data_dir, tokenizer="bytes", tokens=n_train + n_val, val_tokens=n_val, progress=False)
    return data_dir


TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0, bias=True)
TINY_TRAIN = dict(
    batch_size=8,
    gradient_accumulation_steps=2,
    learning_rate=3e-3,
    min_lr=3e-4,
    warmup_iters=2,
    lr_decay_iters=40,
    eval_iters=2,
    log_interval=1,
    device="cpu",
    dtype="float32",
    deterministic=True,
    seed=7,
)


def overrides(values: dict) -> list[str]:
    return [f"--{k}={v!r}" if isinstance(v, str) else f"--{k}={v}" for k, v in values.items()]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and do not fight parallel test workers for cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- multi-process runs (DDP, FSDP): launch, read back, compare with one process -------------------------

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "finegpt"]


def run(cmd: list[str], cwd) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def metrics(out_dir) -> tuple[dict, dict]:
    """({step: train loss}, {step: val loss}) from a run's metrics.jsonl."""
    rows = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
    return (
        {r["step"]: r["loss"] for r in rows if "loss" in r},
        {r["step"]: r["val/loss"] for r in rows if "val/loss" in r},
    )


def assert_same_training(single_dir, multi_dir, steps: int) -> None:
    """Losses within 1e-5 relative at every step and weights at `steps` within tolerance: a 2-process
    run and the one-process run with the same tokens per step."""
    from finegpt.train import load_checkpoint

    single_train, single_val = metrics(single_dir)
    multi_train, multi_val = metrics(multi_dir)
    assert sorted(multi_train) == list(range(1, steps + 1))
    for step, loss in multi_train.items():
        assert loss == pytest.approx(single_train[step], rel=1e-5), step
    for step in (0, steps):
        assert multi_val[step] == pytest.approx(single_val[step], rel=1e-5), step
    single_at_k = load_checkpoint(Path(single_dir) / f"ckpt_{steps:07d}.pt")["model"]
    multi_weights = load_checkpoint(multi_dir)["model"]
    assert multi_weights.keys() == single_at_k.keys()
    for name, w in multi_weights.items():  # Adam magnifies float noise in near-zero gradients
        torch.testing.assert_close(w, single_at_k[name], rtol=1e-4, atol=1e-5)


def spy_on_step(monkeypatch) -> list[str]:
    """Record each call of finegpt.step's phases (the functions the trainer's loop calls)."""
    from finegpt import step

    calls = []
    for name in ("forward_backward", "optimizer_step", "eval_loss"):
        real = getattr(step, name)
        monkeypatch.setattr(step, name, lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw))
    return calls


# ---- hostile situations: child processes, file snapshots, the CLI in-process --------------------------


def file_hashes(root, skip=(".lock",)) -> dict:
    """{relative path: sha256} of every file under root. The lock file is left out: it names whichever
    process last locked the folder."""
    import hashlib

    root = Path(root)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def spawn(command: list[str], cwd, preexec_fn=None) -> subprocess.Popen:
    """`python -m finegpt <command>` as a child process whose stdout is read line by line. Ctrl-C reaches it
    as at a terminal, even when this process ignores SIGINT (as a test worker may)."""
    import signal

    def preexec():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if preexec_fn is not None:
            preexec_fn()

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "finegpt", *command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,
    )


def read_until(proc: subprocess.Popen, prefix: str) -> list[str]:
    """Read the child's stdout until a line starts with prefix (the condition a test waits on)."""
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    proc.wait()
    raise AssertionError(f"no line starting {prefix!r}; rc {proc.returncode}:\n{''.join(lines)}{proc.stderr.read()}")


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """(exit code, the rest of stdout, stderr) once the child has exited."""
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def run_cli(args: list[str], cwd, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `finegpt <args>` run in this process, in cwd."""
    from finegpt.cli import main

    before = os.getcwd()
    os.chdir(cwd)
    capsys.readouterr()
    try:
        rc = main(args)
    finally:
        os.chdir(before)
    return rc, capsys.readouterr().err
