"""`finegpt quickstart`: the README's first command. Offline, on a laptop CPU, in a few minutes:
the embedded Shakespeare -> byte-level shards -> a tiny GPT -> text, before and after training.

Entry point: quickstart(). The same steps by hand are `finegpt prepare`, `finegpt train`, `finegpt sample`.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import replace
from pathlib import Path

import torch

from finegpt import folders, step
from finegpt.config import ModelConfig, TrainConfig, tokens_per_step
from finegpt.errors import bad
from finegpt.files import atomic_write_text
from finegpt.run import run_config
from finegpt.train.preflight import check_ranges

# A byte-level model like nanoGPT's shakespeare_char on CPU (its README's laptop settings), run longer:
# time-boxed to QUICKSTART_MINUTES of training (the loop sets max_iters from its own speed; about 3000 steps
# x 1024 tokens on 2 free cores), or a fixed number of steps with max_iters.
QUICKSTART_MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False)
QUICKSTART_TRAIN = dict(
    batch_size=16,
    gradient_accumulation_steps=1,
    max_iters=3000,
    learning_rate=2e-3,
    min_lr=2e-4,
    warmup_iters=100,
    weight_decay=0.1,
    beta2=0.99,
    eval_interval=500,
    eval_iters=20,
    log_interval=250,
    device="cpu",
    dtype="float32",
    compile=False,
    keep_checkpoints=1,
)
QUICKSTART_MINUTES = 5.0
PROMPT = "ROMEO:\n"
MARKER = ".finegpt-quickstart"


def _sample(model, tokenizer, seed: int) -> str:
    from finegpt.sample import generate_text

    # printable: an untrained model emits NUL, ESC and half characters, shown as \x00, \x1b and U+FFFD
    return generate_text(model, tokenizer, PROMPT, max_new_tokens=300, temperature=0.8, top_k=None, seed=seed)[0]


# ---- the estimate: a short timed warm-up of the same model and batches on this machine -------------------


def _seconds_per_step(parts: step.Parts, batches: step.Prefetch, gas: int, grad_clip: float, budget_s: float) -> float:
    """finegpt.step's training step, as the loop runs it: one untimed step for the allocations, then steps
    until budget_s has passed, at least two."""

    def one(k: int) -> None:
        step.train_step(parts, batches, k, gas, grad_clip)

    one(0)
    t0, n = time.perf_counter(), 0
    while n < 2 or time.perf_counter() - t0 < budget_s:
        n += 1
        one(n)
    return (time.perf_counter() - t0) / n


def warm_up(model_cfg: ModelConfig, train_cfg: TrainConfig, budget_s: float = 1.0) -> dict:
    """Time training steps and eval forwards of this model on this machine, with all cores and with one
    thread, and keep the faster for the run: on a busy machine, threads that wait on each other can be
    ten times slower than one. Returns {"threads", "step_s", "eval_forward_s", "step_s_by_threads"}."""
    from finegpt.data import BatchLoader

    c = train_cfg
    loader = BatchLoader(c.data_dir, "train", c.batch_size, model_cfg.block_size, seed=c.seed)
    run = run_config(replace(c, dtype="float32"), device="cpu")  # the run the trainer resolves on this CPU
    optim = dict(weight_decay=c.weight_decay, learning_rate=c.learning_rate, betas=(c.beta1, c.beta2))
    parts = step.build(model_cfg, run, torch.device("cpu"), **optim)
    batches = step.Prefetch(loader, parts.device)
    by_threads = {}
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
        torch.set_num_threads(threads)
        by_threads[threads] = _seconds_per_step(parts, batches, c.gradient_accumulation_steps, c.grad_clip, budget_s)
    threads = min(by_threads, key=by_threads.get)
    torch.set_num_threads(threads)
    step.eval_loss(parts, loader, 1)  # eval batches have the training batch's shape (eval_batch_size 0)
    t0 = time.perf_counter()
    step.eval_loss(parts, loader, 3)
    eval_forward_s = (time.perf_counter() - t0) / 3
    return {
        "threads": threads,
        "step_s": by_threads[threads],
        "eval_forward_s": eval_forward_s,
        "step_s_by_threads": by_threads,
    }


def estimate_s(timing: dict, train_cfg: TrainConfig, sample_s: float) -> float:
    """Seconds from here to the end: the steps, the evals (each eval_iters forwards on both splits, at
    iter 0, every eval_interval and at the end) and the closing sample, as long as the opening one took.
    A time-boxed run (max_minutes) takes its minutes."""
    c = train_cfg
    if c.max_minutes:
        return 60 * c.max_minutes + sample_s
    evals = c.max_iters // c.eval_interval + 1 + (c.max_iters % c.eval_interval > 0)
    return c.max_iters * timing["step_s"] + evals * 2 * c.eval_iters * timing["eval_forward_s"] + sample_s


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} minutes"


# ---- the command ----------------------------------------------------------------------------------------


def quickstart(out: str | Path = "out-quickstart", max_iters: int | None = None, seed: int = 1337) -> dict:
    """Prepare, train (QUICKSTART_MINUTES, time-boxed; or max_iters steps) and sample; returns {"val_loss",
    "before", "after", "seconds", "estimate_s", "timing"}.
    Before training it prints how long the whole run will take on this machine, from a timed warm-up.
    Rerun in the same folder, it replaces its earlier output only once the new one is complete."""
    out = folders.check_path("out", out, "--out out-quickstart")
    check_ranges(*_configs(out, max_iters, seed))  # a bad --seed or --max_iters fails before anything is made
    folders.check_unlocked(out, "out")
    mine = [p for p in out.iterdir() if p.name != folders.LOCK] if out.is_dir() else []
    if out.exists() and not (out / MARKER).exists() and (mine or not out.is_dir()):
        raise bad("out", str(out), "exists and was not made by the quickstart", "Pass another --out")
    out.mkdir(parents=True, exist_ok=True)
    with folders.FolderLock(out, "out", "finegpt quickstart"):
        folders.recover(out, "quickstart", _made_by_quickstart(out))  # a rerun cut short while replacing
        # A previous quickstart's files stay until this one has finished; then they are replaced.
        work = folders.fresh_stage(out) if any(p.name != folders.LOCK for p in out.iterdir()) else out
        (work / MARKER).touch()
        threads = torch.get_num_threads()
        try:
            result = _run(work, max_iters, seed, final=out)
        finally:
            torch.set_num_threads(threads)  # the warm-up may have picked one thread for this run only
        made = sorted({p.name for p in work.iterdir()} - {folders.LOCK, folders.STAGING} | {MARKER})
        atomic_write_text(work / MARKER, json.dumps({"files": made}) + "\n")  # what a rerun may replace
        if work != out:
            folders.commit(work, out, "quickstart", _made_by_quickstart(out))
    return result


def _made_by_quickstart(out: Path):
    """stale(name) for a rerun: the entries the earlier quickstart listed in its marker as its own; a
    student's notes or plots beside them are never touched. An unlisted (older) marker: finegpt's names."""
    try:
        listed = set(json.loads((out / MARKER).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        from finegpt.train.rundir import is_run_file

        return lambda name: is_run_file(name) or name in ("data", MARKER)
    return listed.__contains__


def _configs(out: Path, max_iters: int | None, seed: int) -> tuple[ModelConfig, TrainConfig]:
    """The quickstart's model and training settings, writing into `out`."""
    steps = max_iters or QUICKSTART_TRAIN["max_iters"]
    box = 0.0 if max_iters else QUICKSTART_MINUTES  # time-boxed unless a number of steps was asked for
    model_cfg = ModelConfig(**QUICKSTART_MODEL, vocab_size=320)  # 257 bytes + EOT, padded to a multiple of 64
    train_cfg = TrainConfig(
        **{**QUICKSTART_TRAIN, "max_iters": steps, "lr_decay_iters": steps, "max_minutes": box},
        out_dir=str(out),
        data_dir=str(out / "data"),
        seed=seed,
    )
    return model_cfg, train_cfg


def _run(out: Path, max_iters: int | None, seed: int, final: Path) -> dict:
    """The three steps, writing into `out`; `final` is where the files will be once complete."""
    from finegpt.data import get_tokenizer, prepare
    from finegpt.model import GPT
    from finegpt.train import train

    t0 = time.time()

    print("1/3 preparing the embedded Shakespeare (38 plays) with the bytes tokenizer ...", flush=True)
    stats = prepare("shakespeare", out / "data", "bytes")
    tokenizer = get_tokenizer("bytes")
    print(f"    {stats['documents']} plays, {stats['tokens']:,} tokens in {len(stats['shards'])} shards", flush=True)

    model_cfg, train_cfg = _configs(out, max_iters, seed)
    steps, box = train_cfg.max_iters, train_cfg.max_minutes
    timing = warm_up(model_cfg, train_cfg)
    torch.manual_seed(seed)
    t_sample = time.time()
    before = _sample(GPT(model_cfg).eval(), tokenizer, seed)
    print(f"\nbefore training, the model writes:\n{'-' * 60}\n{before}\n{'-' * 60}\n", flush=True)
    total_s = time.time() - t0 + estimate_s(timing, train_cfg, time.time() - t_sample)
    step_tokens = tokens_per_step(train_cfg.batch_size, model_cfg.block_size, train_cfg.gradient_accumulation_steps)
    threads = f"{timing['threads']} thread" + ("s" if timing["threads"] > 1 else "")
    rate = f"{step_tokens / timing['step_s']:,.0f} tokens/s on {threads}, timed in a warm-up just now"
    length = (
        f"{box:g} minutes of training, about {60 * box / timing['step_s']:,.0f} steps" if box else f"{steps:,} steps"
    )
    print(f"estimate: about {_minutes(total_s)} in all on this CPU ({length} at {rate})\n", flush=True)
    what = f"for {box:g} minutes (time-boxed: max_minutes={box:g})" if box else f"for {steps} steps"
    print(f"2/3 training {model_cfg.n_layer} layers x {model_cfg.n_embd} wide {what} on the CPU ...", flush=True)
    result = train(model_cfg, train_cfg, overwrite=True)

    print("\n3/3 sampling from the trained model ...", flush=True)
    after = _sample(result["model"].eval(), tokenizer, seed)
    seconds = time.time() - t0
    print(f"\nafter training, the model writes:\n{'-' * 60}\n{after}\n{'-' * 60}")
    print(
        f"final val loss {result['final_val_loss']:.4f} (bytes; a uniform guess is "
        f"{torch.log(torch.tensor(257.0)):.2f}) | checkpoint {final / 'ckpt.pt'}"
    )
    print(
        f"took {_minutes(seconds)} on this CPU; the estimate was {_minutes(total_s)} "
        f"({100 * (seconds - total_s) / total_s:+.0f} %)"
    )
    print(f"next: finegpt sample --ckpt {shlex.quote(str(final))} --prompt 'JULIET:'")
    return {
        "val_loss": result["final_val_loss"],
        "before": before,
        "after": after,
        "seconds": seconds,
        "estimate_s": total_s,
        "timing": timing,
    }
