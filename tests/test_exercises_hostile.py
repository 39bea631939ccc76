"""The checkers cannot be broken: for every checker, an answer that raises, returns None or a string,
never ends, calls sys.exit or changes its input gets a one-line verdict saying so, within the time
limit; a real Ctrl-C still stops the cell; a crash in the checker's own code is reported as its own."""

import os
import signal
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn as nn

from finegpt import exercises as ex
from finegpt.data.shards import make_header
from finegpt.model import MLP, Block, CausalSelfAttention, LayerNorm, count_params
from tests.exercise_support import verdict

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

CHECKS = [name for name in ex.__all__ if name.startswith("check_")]
CLASSES = {"check_mlp": MLP, "check_block": Block}


def _answer(name, body):
    """An answer of the right form for the checker `name` (a function, or a class whose forward is
    `body`) that does `body(*args)` when called."""
    if name not in CLASSES:
        return lambda *args: body(*args)
    parts = CLASSES[name]

    class Hostile(nn.Module):
        def __init__(self, config):
            super().__init__()
            ref = parts(config)  # finegpt's own parts under nanoGPT's names, so the shapes check passes
            for key, module in ref.named_children():
                setattr(self, key, module)

        def forward(self, x):
            return body(x)

    return Hostile


def _loop(*args):
    n = 0
    while True:
        n += 1


def _exit(*args):
    sys.exit(1)


def _boom(*args):
    raise ValueError("boom")


def _keyboard(*args):
    raise KeyboardInterrupt


def _generator_exit(*args):
    raise GeneratorExit


HOSTILE = [
    (_boom, "your code raised ValueError: boom (line "),
    (lambda *args: None, "returned None: is its `return` missing?"),
    (lambda *args: "42", "string '42'"),
    (_loop, "your code did not finish in 0.5 s (line "),
    (_exit, "your code called sys.exit(1)"),
    (_keyboard, "your code raised KeyboardInterrupt"),
    (_generator_exit, "your code raised GeneratorExit"),
]


@pytest.mark.parametrize("body,said", HOSTILE, ids=["raises", "none", "string", "loop", "exit", "ctrl-c", "genexit"])
@pytest.mark.parametrize("name", CHECKS)
def test_a_hostile_answer_gets_one_line_within_the_time_limit(name, body, said, capsys):
    line = verdict(capsys, getattr(ex, name), _answer(name, body), time_limit_s=0.5)
    assert line.startswith("✗ ") and said in line, line


def test_the_timer_and_the_signal_handlers_are_put_back(capsys):
    alarm, sigint = signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGINT)
    verdict(capsys, ex.check_lr_schedule, _loop, time_limit_s=0.2)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is alarm and signal.getsignal(signal.SIGINT) is sigint


def test_global_settings_changed_by_the_students_code_are_put_back(capsys):
    def top_k_filter(logits, k):
        torch.set_grad_enabled(False)
        torch.set_default_dtype(torch.float64)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - left open, as a student might
        raise ValueError("later")

    line = verdict(capsys, ex.check_top_k, top_k_filter)
    assert line.startswith("✗ top-k filter: your code raised ValueError: later")
    assert torch.is_grad_enabled() and torch.get_default_dtype() == torch.float32


def test_an_outer_alarm_is_given_back(capsys):
    previous = signal.signal(signal.SIGALRM, lambda *args: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 100.0)
        verdict(capsys, ex.check_lr_schedule, _loop, time_limit_s=0.2)
        assert 99.0 < signal.getitimer(signal.ITIMER_REAL)[0] < 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_loop_that_swallows_every_exception_is_still_stopped(capsys):
    def lr_at(it, cfg):
        while True:
            try:
                while True:
                    pass
            except BaseException:  # noqa: BLE001 - what a student may write
                pass

    trace = sys.gettrace()
    line = verdict(capsys, ex.check_lr_schedule, lr_at, time_limit_s=0.3)
    assert "did not finish in 0.3 s" in line, line
    assert sys.gettrace() is trace and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_check_outside_the_main_thread_is_stopped_by_its_time_limit(capsys):
    thread = threading.Thread(target=ex.check_top_k, args=(_loop,), kwargs={"time_limit_s": 0.3})
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "✗ top-k filter: your code did not finish in 0.3 s (line " in capsys.readouterr().out


def test_a_real_ctrl_c_still_stops_the_cell():
    def lr_at(it, cfg):
        os.kill(os.getpid(), signal.SIGINT)  # as the user pressing Ctrl-C while the code runs
        while True:
            pass

    with pytest.raises(KeyboardInterrupt):
        ex.check_lr_schedule(lr_at, time_limit_s=5)


def test_a_not_implemented_error_from_inside_a_library_is_a_crash_not_a_gap(capsys):
    line = verdict(capsys, ex.check_top_k, lambda logits, k: nn.Module()(logits))
    assert line.startswith("✗ top-k filter: your code raised NotImplementedError"), line


def test_a_crash_in_the_checkers_own_code_is_reported_as_the_checkers(monkeypatch, capsys):
    def broken():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("finegpt.exercises.train._lr_mistakes", broken)
    line = verdict(capsys, ex.check_lr_schedule, lambda it, cfg: 1.0)
    assert line.startswith("✗ learning-rate schedule: finegpt's checker failed (ZeroDivisionError"), line
    assert "not your mistake" in line and "your code raised" not in line


# ---- answers that change their inputs, and right answers computed before the change -----------------


def _header_then_change(n, tok):
    header = make_header(n, tok)
    tok.eot = 0
    return header


def _ratio_then_append(texts, tok):
    ratio = sum(len(t.encode()) for t in texts) / sum(len(tok.encode(t)) for t in texts)
    texts.append("more")
    return ratio


def _count_then_change(cfg):
    n = count_params(cfg, non_embedding=False)
    cfg.n_layer = 0
    return n


class _MLPThatScalesItsInput(MLP):
    def forward(self, x):
        y = super().forward(x)
        x.mul_(2)
        return y


class _BlockThatZerosItsInput(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1, self.attn = LayerNorm(config.n_embd, bias=config.bias), CausalSelfAttention(config)
        self.ln_2, self.mlp = LayerNorm(config.n_embd, bias=config.bias), MLP(config)

    def forward(self, x):
        h = x + self.attn(self.ln_1(x))
        y = h + self.mlp(self.ln_2(h))
        x.zero_()
        return y


def _attention_then_scale_q(q, k, v):
    from torch.nn import functional as F

    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    q.mul_(0)
    return y


def _bytes_then_change(cfg, optimizer, dtype):
    n = count_params(cfg, non_embedding=False)
    cfg.vocab_size = 1
    return n


def _lr_then_change(it, cfg):
    from finegpt.train import get_lr

    lr = get_lr(it, cfg)
    cfg.learning_rate = 0.0
    return lr


def _top_k_in_place(logits, k):
    kth = logits.topk(min(k, logits.size(-1))).values[:, [-1]]
    return logits.masked_fill_(logits < kth, float("-inf"))


def _top_p_then_sort(logits, p):
    from finegpt.model import top_p_logits

    out = top_p_logits(logits, p)
    logits.copy_(logits.sort(-1).values)
    return out


def _decode_then_zero_cache(attn, x, past_k, past_v):
    from tests.test_exercises import _decode_with_explicit_softmax

    out = _decode_with_explicit_softmax(attn, x, past_k, past_v)
    past_k.zero_()
    return out


def _decode_with_zeroed_weights(attn, x, past_k, past_v):
    """Right for the module it leaves behind: the reference, run first on the checker's own copy, is not fooled."""
    from tests.test_exercises import _decode_with_explicit_softmax

    with torch.no_grad():
        attn.c_proj.weight.zero_()
    return _decode_with_explicit_softmax(attn, x, past_k, past_v)


MUTATING = [
    (ex.check_kv_decode_step, _decode_with_zeroed_weights, "`attn`"),
    (ex.check_bytes_per_token, _ratio_then_append, "`texts`"),
    (ex.check_shard_header, _header_then_change, "`tok`"),
    (ex.check_param_count, _count_then_change, "`cfg`"),
    (ex.check_mlp, _MLPThatScalesItsInput, "`x`"),
    (ex.check_block, _BlockThatZerosItsInput, "`x`"),
    (ex.check_causal_attention, _attention_then_scale_q, "`q`"),
    (ex.check_optimizer_step_bytes, _bytes_then_change, "`cfg`"),
    (ex.check_lr_schedule, _lr_then_change, "`cfg`"),
    (ex.check_top_k, _top_k_in_place, "`logits`"),
    (ex.check_top_p, _top_p_then_sort, "`logits`"),
    (ex.check_kv_decode_step, _decode_then_zero_cache, "`past_k`"),
]


@pytest.mark.parametrize("check,answer,name", MUTATING, ids=[c.__name__ for c, _, _ in MUTATING])
def test_an_answer_that_changes_its_input_cannot_pass(check, answer, name, capsys):
    line = verdict(capsys, check, answer)
    assert line.startswith("✗ ") and f"your code changed its input {name} in place" in line, line


def test_the_reference_is_computed_on_the_checkers_own_copy(capsys):
    """A reader that damages the shard file still gets the right verdict, and no reference sees the damage."""

    def read_and_damage(path):
        tokens = np.fromfile(
            path, dtype=np.uint16 if np.fromfile(path, np.int32, 2)[1] == 1 else np.uint32, offset=1024
        )
        with open(path, "r+b") as f:
            f.seek(1024)
            f.write(b"\xff\xff")
        return tokens

    assert "your code changed the shard file" in verdict(capsys, ex.check_shard_reader, read_and_damage)


@pytest.mark.parametrize("answer", [None, "lr_at", 0.1], ids=["none", "string", "number"])
def test_passing_something_other_than_code_is_named(answer, capsys):
    line = verdict(capsys, ex.check_lr_schedule, answer)
    assert line.startswith("✗ learning-rate schedule: pass your function or class itself, as check_lr_schedule(")


def test_passing_a_module_instead_of_its_class_is_named(capsys):
    from finegpt.config import ModelConfig

    line = verdict(capsys, ex.check_mlp, MLP(ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=4, vocab_size=16)))
    assert "pass your function or class itself" in line and "got a MLP" in line, line
