"""Notebook 04's checkers: each typical mistake gets a hint naming it, and the correct alternatives pass
(build-nanogpt's warmup, gradients zeroed at the start of the step, one backward over the mean)."""

import math

import pytest
import torch

from finegpt import exercises as ex
from finegpt.train import get_lr
from tests.exercise_support import assert_hint, ids, verdict

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# ---- 4.1 the learning-rate schedule ---------------------------------------------------------------


def _lr(warmup=None, decay=None, after=None, ignore_decay_lr=False):
    """get_lr with one region replaced, as a student's slip."""

    def lr_at(it, cfg):
        if not cfg.decay_lr and not ignore_decay_lr:
            return cfg.learning_rate
        w, end, lr, lo = cfg.warmup_iters, cfg.lr_decay_iters, cfg.learning_rate, cfg.min_lr
        if it < w:
            return warmup(it, cfg) if warmup else lr * (it + 1) / (w + 1)
        if it > end:
            return after(it, cfg) if after else lo
        if decay:
            return decay(it, cfg)
        return lo + 0.5 * (1 + math.cos(math.pi * (it - w) / (end - w))) * (lr - lo)

    return lr_at


def _ratio(it, cfg):
    return (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)


LR = [
    (_lr(warmup=lambda it, cfg: cfg.learning_rate * it / cfg.warmup_iters), "iteration 0 gets a learning rate of 0"),
    (
        _lr(
            after=lambda it, cfg: (
                cfg.min_lr + 0.5 * (1 + math.cos(math.pi * _ratio(it, cfg))) * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "yours goes on along the cosine",
    ),  # fmt: skip
    (
        _lr(decay=lambda it, cfg: cfg.min_lr + (1 - _ratio(it, cfg)) * (cfg.learning_rate - cfg.min_lr)),
        "a linear decay",
    ),
    (
        _lr(decay=lambda it, cfg: 0.5 * (1 + math.cos(math.pi * _ratio(it, cfg))) * cfg.learning_rate),
        "the cosine ends at 0",
    ),
    (
        _lr(
            decay=lambda it, cfg: (
                cfg.min_lr + 0.5 * (1 + math.cos(math.pi * it / cfg.lr_decay_iters)) * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "the decay must start where warmup ends",
    ),  # fmt: skip
    (
        _lr(
            decay=lambda it, cfg: (
                cfg.min_lr + 0.5 * (1 - math.cos(math.pi * _ratio(it, cfg))) * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "your cosine rises",
    ),  # fmt: skip
    (
        _lr(
            decay=lambda it, cfg: (
                cfg.min_lr + (1 + math.cos(math.pi * _ratio(it, cfg))) * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "coeff lacks its 0.5",
    ),  # fmt: skip
    (_lr(ignore_decay_lr=True), "with decay_lr=False the rate is learning_rate at every iteration"),
    (_lr(after=lambda it, cfg: cfg.learning_rate), "the rate stays at min_lr, not learning_rate"),
    (
        _lr(
            decay=lambda it, cfg: cfg.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * _ratio(it, cfg)))),
            after=lambda it, cfg: cfg.learning_rate / 10,
        ),
        "min_lr is hard-coded as learning_rate / 10",
    ),  # fmt: skip
    (lambda it, cfg: get_lr(it, cfg) * 1.01 if it == 20 else get_lr(it, cfg), "at it=20, in the cosine decay"),
    (
        _lr(
            decay=lambda it, cfg: cfg.min_lr + 0.5 * (1 + math.cos(_ratio(it, cfg))) * (cfg.learning_rate - cfg.min_lr)
        ),
        "cos takes radians",
    ),  # fmt: skip
    (lambda it, cfg: get_lr(it + 1, cfg), "your schedule runs one iteration ahead"),
    (lambda it, cfg: cfg.learning_rate, "the rate is constant"),
]


@pytest.mark.parametrize("answer,hint", LR, ids=ids(LR))
def test_lr_schedule_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_lr_schedule, answer, hint)


def test_build_nanogpts_warmup_is_accepted(capsys):
    """build-nanogpt: lr = max_lr * (it + 1) / warmup_steps, which notebook 04 cites."""
    answer = _lr(warmup=lambda it, cfg: cfg.learning_rate * (it + 1) / cfg.warmup_iters)
    assert verdict(capsys, ex.check_lr_schedule, answer).startswith("✓ ")


# ---- 4.2 one optimizer step -----------------------------------------------------------------------


def _step(divide=True, zero="after", clip="norm", clip_each=False, ret="mean", steps_each=False, lr=None, twice=False):
    def optimizer_step(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
        G, losses = gradient_accumulation_steps, []
        if zero == "before":
            optimizer.zero_grad(set_to_none=True)
        for k in range(G):
            if zero == "inside":
                optimizer.zero_grad()
            _, loss = model(*get_batch(k))
            scaled = loss / G if divide else loss
            (scaled / G if twice else scaled).backward()
            losses.append(loss.item())
            if clip_each:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if steps_each:
                optimizer.step()
            if zero == "end of each":
                optimizer.zero_grad()
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        elif clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
        if lr is not None:
            optimizer.param_groups[0]["lr"] = lr
        if not steps_each:
            optimizer.step()
        if zero == "after":
            optimizer.zero_grad(set_to_none=True)
        return {"mean": sum(losses) / G, "sum": sum(losses), "last": losses[-1], "twice": sum(losses) / G / G}[ret]

    return optimizer_step


def _off_by_one_batches(model, optimizer, get_batch, gradient_accumulation_steps, grad_clip):
    G = gradient_accumulation_steps
    for k in range(1, G + 1):
        (model(*get_batch(k))[1] / G).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return 0.0


STEP = [
    (_step(divide=False), "the loss is not divided by gradient_accumulation_steps"),
    (_step(zero="inside"), "zero_grad runs inside the loop"),
    (_step(zero="end of each"), "the gradients were zeroed before optimizer.step() could use them"),
    (_step(zero=None), "the second step's gradients include the first step's"),
    (_step(clip=None), "the gradients are not clipped"),
    (_step(clip=None, clip_each=True), "clipped after every micro-batch"),
    (_step(clip="value"), "clip_grad_value_ clamps each number"),
    (_step(twice=True), "divided by gradient_accumulation_steps twice"),
    (_step(steps_each=True), "optimizer.step() ran 3 times in one call"),
    (_step(ret="sum"), "you returned the sum of the micro-batch losses"),
    (_step(ret="last"), "you returned the last micro-batch's loss only"),
    (_step(ret="twice"), "the returned loss is divided by G twice"),
    (_step(lr=1.0), "not optimizer.step()'s update"),
    (_off_by_one_batches, "get_batch(3) was asked: the micro-batches are numbered 0..2"),
]


@pytest.mark.parametrize("answer,hint", STEP, ids=ids(STEP))
def test_optimizer_step_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_optimizer_step, answer, hint)


def test_zeroing_the_gradients_at_the_start_of_the_step_is_accepted(capsys):
    assert verdict(capsys, ex.check_optimizer_step, _step(zero="before")).startswith("✓ ")
