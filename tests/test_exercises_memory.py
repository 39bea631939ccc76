"""Notebook 03's checkers: each typical mistake, written as a student would, gets a hint naming it."""

import pytest

from finegpt import exercises as ex
from finegpt.model import count_params, param_breakdown
from tests.exercise_support import assert_hint, ids, verdict

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

# ---- 3.1 the optimizer step -----------------------------------------------------------------------


def _step_bytes(adamw_moments=2, grads=True, temporaries=True, size=None, bf16_size=4, fused_temps=False,
                temps_all=False, sgd_buffer=False, embedding=True, embeddings_decayed=True):  # fmt: skip
    def optimizer_step_bytes(cfg, optimizer, dtype):
        n = count_params(cfg, non_embedding=not embedding)
        width = size or (2 if dtype == "pure_bf16" else bf16_size if dtype == "bf16" else 4)
        decayed = n - param_breakdown(cfg)["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * cfg.bias
        decayed -= 0 if embeddings_decayed else (cfg.vocab_size + cfg.block_size) * cfg.n_embd
        states = {"adamw_fused": adamw_moments, "adamw_foreach": adamw_moments, "sgd_momentum": 1}.get(
            optimizer, 1 if sgd_buffer else 0
        )
        temps = (n if temps_all else decayed) if temporaries and optimizer == "adamw_foreach" else 0
        temps += decayed if fused_temps and optimizer == "adamw_fused" else 0
        return width * ((1 + grads + states) * n + temps)

    return optimizer_step_bytes


OPTIMIZER_BYTES = [
    (_step_bytes(grads=False), "the gradients are missing"),
    (_step_bytes(adamw_moments=1), "AdamW keeps two moments"),
    (_step_bytes(temporaries=False), "foreach AdamW's temporaries are missing"),
    (_step_bytes(size=4), "pure_bf16 keeps weights, gradients and states in bf16"),
    (_step_bytes(bf16_size=2), "bf16 autocast keeps fp32 master weights"),
    (_step_bytes(fused_temps=True), "the fused AdamW kernel updates in place"),
    (_step_bytes(temps_all=True), "foreach's temporaries cover the decayed group only"),
    (_step_bytes(sgd_buffer=True), "plain SGD keeps none"),
    (_step_bytes(embedding=False), "count_params(cfg) leaves out the position embedding"),
    (_step_bytes(embeddings_decayed=False), "the embeddings are 2-D tensors too"),
    (lambda c, o, d: _step_bytes()(c, o, d) // 2**20, "those are MiB: return bytes"),
    (lambda c, o, d: _step_bytes()(c, o, d) + 2 * count_params(c, False) * (d == "bf16"), "autocast's bf16 copies"),
]


@pytest.mark.parametrize("answer,hint", OPTIMIZER_BYTES, ids=ids(OPTIMIZER_BYTES))
def test_optimizer_step_bytes_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_optimizer_step_bytes, answer, hint)


# ---- 3.2 the logits and the cross-entropy ---------------------------------------------------------

PER_SCORE = {"fp32": 16, "bf16": 14, "fp16": 14, "pure_bf16": 8}


def _padded(V):
    return -(-V // 64) * 64


LOGITS = [
    (lambda B, T, V, d: 16 * B * T * V, "under autocast the logits leave the matmul in 16-bit"),
    (lambda B, T, V, d: 4 * B * T * V, "that is the logits alone"),
    (lambda B, T, V, d: PER_SCORE[d] // 2 * B * T * V, "that is the end of the forward"),
    (lambda B, T, V, d: PER_SCORE[d] * B * V, "n counts tokens, batch_size × block_size"),
    (lambda B, T, V, d: PER_SCORE[d] * V, "that is one token's bytes"),
    (lambda B, T, V, d: PER_SCORE[d] * B * T * _padded(V), "you padded vocab_size=50257 to 50304"),
    (lambda B, T, V, d: 8 * PER_SCORE[d] * B * T * V, "that is bits, not bytes"),
    (lambda B, T, V, d: PER_SCORE[d] * B * T * V / 2**30, "those are GiB: return bytes"),
    (lambda B, T, V, d: {"pure_bf16": 14}.get(d, PER_SCORE[d]) * B * T * V, "pure bf16 makes all four tensors bf16"),
    (lambda B, T, V, d: {"fp32": 14}.get(d, PER_SCORE[d]) * B * T * V, "in fp32 each of the four tensors"),
]


@pytest.mark.parametrize("answer,hint", LOGITS, ids=ids(LOGITS))
def test_logits_bytes_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_logits_bytes, answer, hint)


# ---- 3.3 the largest micro-batch ------------------------------------------------------------------


def _halving(fits, limit=4096):
    lo, hi = 0, limit  # lo fits (or is 0), the answer is in [lo, hi]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _scanning(fits, limit=4096):
    b = 0
    while b < limit and fits(b + 1):
        b += 1
    return b


def _doubling_only(fits, limit=4096):
    b = 1 if fits(1) else 0
    while b and 2 * b <= limit and fits(2 * b):
        b *= 2
    return b


def _doubling_past_limit(fits, limit=4096):
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while fits(hi):  # no stop at limit
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return min(lo, limit)


def _limit_never_tried(fits, limit=4096):
    lo, hi = 0, limit  # hi taken as "does not fit": limit is never asked
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _float_midpoint(fits, limit=4096):
    lo, hi = 0, limit + 1
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return int(lo)


def _asks_zero(fits, limit=4096):
    fits(0)
    return _halving(fits, limit)


def _never_ending_bisection(fits, limit=4096):
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi) // 2  # rounds down: with hi = lo + 1 and fits(lo), mid stays lo forever
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


LARGEST = [
    (_scanning, "right answer, but fits() ran"),
    (
        lambda fits, limit=4096: min(_halving(fits, limit) + 1, limit) if _halving(fits, limit) else 0,
        "return the last b",
    ),
    (lambda fits, limit=4096: max(1, _halving(fits, limit)), "batch_size=1 does not fit here, so the answer is 0"),
    (_doubling_past_limit, "past limit=4096: never ask beyond limit"),
    (_doubling_only, "fits too: the search stopped early"),
    (_limit_never_tried, "limit itself may be the answer"),
    (_float_midpoint, "a batch size is an int (use // for the midpoint"),
    (_asks_zero, "fits(0) was asked: batch sizes start at 1"),
    (lambda fits, limit=4096: float(_halving(fits, limit)), "return an int (a batch size), got a float"),
]


@pytest.mark.parametrize("answer,hint", LARGEST, ids=ids(LARGEST))
def test_largest_batch_names_each_mistake(answer, hint, capsys):
    assert_hint(capsys, ex.check_largest_batch, answer, hint)


def test_a_bisection_that_never_ends_is_stopped_and_its_line_named(capsys):
    line = verdict(capsys, ex.check_largest_batch, _never_ending_bisection, time_limit_s=0.5)
    assert (
        line.startswith("✗ largest micro-batch: your code did not finish in 0.5 s (line ")
        and "of _never_ending_bisection" in line
    ), line


def test_resetting_the_predicates_counter_does_not_hide_a_scan(capsys):
    def scan_and_reset(fits, limit=4096):
        answer = _scanning(fits, limit)
        fits.calls = 0  # a counter attribute, as a student might guess it
        return answer

    assert_hint(capsys, ex.check_largest_batch, scan_and_reset, "right answer, but fits() ran")
