"""Notebook 03's exercises: the optimizer step's bytes, the logits and cross-entropy bytes, and the
largest micro-batch by bisection.

check_optimizer_step_bytes(fn), check_logits_bytes(fn), check_largest_batch(fn).
References: finegpt.memory.estimate (its peaks and phase_terms) and finegpt.memory.max_micro_batch.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from finegpt.config import ModelConfig, count_params, param_breakdown
from finegpt.exercises.check import Hint, checker, integer, kind, number, student
from finegpt.memory import RunConfig, estimate, fits, max_micro_batch
from finegpt.run import OPTIMIZERS

GPT2 = ModelConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304, bias=False)
TINY = ModelConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=320, bias=True)

# ---- 3.1 the optimizer step -----------------------------------------------------------------------


@checker("optimizer-step bytes")
def check_optimizer_step_bytes(optimizer_step_bytes):
    cases = [(TINY, opt, dtype) for dtype in ("fp32", "bf16", "pure_bf16") for opt in OPTIMIZERS]
    cases += [(GPT2, "adamw_foreach", "fp32"), (GPT2, "adamw_fused", "pure_bf16"), (GPT2, "sgd_momentum", "bf16")]
    want = [
        _step_bytes(estimate(cfg, RunConfig(batch_size=1, optimizer=opt, dtype=dtype))) for cfg, opt, dtype in cases
    ]
    got = [number("the bytes", student(optimizer_step_bytes, cfg, opt, dtype)) for cfg, opt, dtype in cases]
    if got == want:
        return "weights + gradients + optimizer state + temporaries, for AdamW (fused, foreach) and SGD, in 3 dtypes"
    _units(got, want)
    got = [integer("the bytes", g) for g in got]
    for hint, wrong in _step_mistakes().items():
        if all(g == w + wrong(cfg, opt, dtype) for g, w, (cfg, opt, dtype) in zip(got, want, cases)):
            raise Hint(hint)
    g, w, (cfg, opt, dtype) = next((g, w, case) for g, w, case in zip(got, want, cases) if g != w)
    N = count_params(cfg, non_embedding=False)
    raise Hint(
        f"for optimizer={opt!r}, dtype={dtype!r} and {N:,} parameters: expected {w:,} bytes "
        f"({w / N:.2f} per parameter), got {g:,} ({g / N:.2f} per parameter)"
    )


def _step_bytes(report) -> int:
    """The optimizer peak less the loop's prefetched batch: alive then too, but no part of the step's own state."""
    return report.peaks["optimizer"] - report.phase_terms["optimizer"].get("next batch (prefetched)", 0)


def _step_mistakes() -> dict:
    """Each typical mistake as what it adds to the right answer, per (config, optimizer, dtype)."""
    n = lambda cfg: count_params(cfg, non_embedding=False)  # noqa: E731
    size = lambda dtype: 2 if dtype == "pure_bf16" else 4  # noqa: E731
    decayed = lambda cfg: n(cfg) - param_breakdown(cfg)["layernorm"] - cfg.n_layer * 9 * cfg.n_embd * cfg.bias  # noqa: E731
    states = {"adamw_fused": 2, "adamw_foreach": 2, "sgd_momentum": 1, "sgd": 0}
    return {
        "the gradients are missing: the step reads them, so they are alive (one per parameter, in the "
        "parameter's dtype)": lambda c, o, d: -n(c) * size(d),
        "AdamW keeps two moments per parameter (exp_avg and exp_avg_sq), not one": lambda c, o, d: (
            -n(c) * size(d) * o.startswith("adamw")
        ),
        "SGD with momentum keeps one buffer per parameter; plain SGD keeps none": lambda c, o, d: (
            n(c) * size(d) * (o == "sgd")
        ),
        "foreach AdamW's temporaries are missing: it builds one param-sized temporary per decayed (2-D) "
        "tensor, group by group": lambda c, o, d: -decayed(c) * size(d) * (o == "adamw_foreach"),
        "the fused AdamW kernel updates in place: no temporaries (only foreach builds them)": lambda c, o, d: (
            decayed(c) * size(d) * (o == "adamw_fused")
        ),
        "foreach's temporaries cover the decayed group only (the 2-D tensors), not biases and norms": lambda c, o, d: (
            (n(c) - decayed(c)) * size(d) * (o == "adamw_foreach")
        ),
        "pure_bf16 keeps weights, gradients and states in bf16: 2 bytes each": lambda c, o, d: (
            ((2 + states[o]) * n(c) * 2 + decayed(c) * 2 * (o == "adamw_foreach")) * (d == "pure_bf16")
        ),
        "autocast's bf16 copies of the weights live in the forward and backward only: during the step the fp32 "
        "weights, gradients and states are alive": lambda c, o, d: 2 * n(c) * (d == "bf16"),
        "bf16 autocast keeps fp32 master weights (and fp32 grads and states): 4 bytes each, not 2": lambda c, o, d: (
            -((2 + states[o]) * n(c) * 2 + decayed(c) * 2 * (o == "adamw_foreach")) * (d == "bf16")
        ),
        "the embeddings are 2-D tensors too, so they are decayed and foreach builds temporaries for them: every "
        "tensor with dim >= 2": lambda c, o, d: (
            -(c.vocab_size + c.block_size) * c.n_embd * size(d) * (o == "adamw_foreach")
        ),
        "count_params(cfg) leaves out the position embedding: use non_embedding=False, every parameter has "
        "its weight, gradient and state": lambda c, o, d: (
            -c.block_size * c.n_embd * size(d) * (2 + states[o] + (o == "adamw_foreach"))
        ),
    }


# ---- 3.2 the logits and the cross-entropy ---------------------------------------------------------


@checker("logits + cross-entropy bytes")
def check_logits_bytes(logits_bytes):
    cases = [(4, 128, 50304, d) for d in ("fp32", "bf16", "fp16", "pure_bf16")]
    cases += [(3, 64, 320, "fp32"), (2, 32, 50257, "bf16")]
    for B, T, V, dtype in cases:
        cfg = ModelConfig(n_layer=1, n_head=1, n_embd=8, block_size=T, vocab_size=V)
        # the count the lesson teaches: PyTorch's eager step as the CPU build runs it (a GPU's measured count,
        # calibration.json's eager_cuda, may differ by a copy)
        run = RunConfig(batch_size=B, dtype=dtype, device="cpu")
        want = estimate(cfg, run).phase_terms["train"]["logits + cross-entropy"]  # finegpt's, first
        got = number("the bytes", student(logits_bytes, B, T, V, dtype))
        if got != want:
            _units([got], [want])
        got = integer("the bytes", got)
        if got != want:
            _logits_mistake(got, want, B, T, V, dtype)
    return "4 tensors of n·V scores at the start of backward, in each dtype's sizes, as estimate() counts them"


def _units(got: list[float], want: list[int]) -> None:
    """A Hint when every answer is the right one in MiB, GiB, MB or GB (exact, or rounded to a whole one)."""
    for unit, size in (("MiB", 2**20), ("GiB", 2**30), ("MB", 10**6), ("GB", 10**9)):
        # a whole number of units (rounded either way) where the bytes make one or more, else the exact fraction
        near = [
            abs(g - w / size) < 1 and (w >= size or g in (0, 1) or math.isclose(g, w / size)) for g, w in zip(got, want)
        ]
        if all(near) and any(got):
            raise Hint(f"those are {unit}: return bytes, the whole number, and convert only to print")


def _logits_mistake(got: int, want: int, B: int, T: int, V: int, dtype: str) -> None:
    per, want_per = got / (B * T * V), want / (B * T * V)  # bytes per score: theirs, estimate()'s
    setting = f"batch_size={B}, block_size={T}, vocab_size={V}, dtype={dtype!r}"
    autocast = dtype in ("bf16", "fp16")
    if got == want // T:
        raise Hint(f"n counts tokens, batch_size × block_size = {B * T:,}, not sequences ({setting})")
    if got == want // (B * T):
        raise Hint(f"that is one token's bytes: multiply by the n = batch_size × block_size = {B * T:,} tokens")
    if V % 64 and got == want // V * (V + 64 - V % 64):
        raise Hint(
            f"you padded vocab_size={V} to {V + 64 - V % 64}: the V given is the model's own (already padded "
            f"when the config pads it); count V as given"
        )
    if got == want * 8:
        raise Hint("that is bits, not bytes: a float32 is 4 bytes (32 bits), a bf16 2")
    alone = {"fp32": 4, "bf16": 2, "fp16": 2, "pure_bf16": 2}[dtype]
    hints = [
        (per == alone, "that is the logits alone; at the start of backward cross-entropy also holds its "
         "log-softmax, and the gradients of both are being made: 4 tensors of n × V"),
        (per == want_per / 2, "that is the end of the forward (logits + log-softmax); at the start of "
         "backward their two gradients are alive too"),
        (autocast and per == 16, "under autocast the logits leave the matmul in 16-bit (2 bytes); only "
         "cross-entropy works in fp32: 2 + 4 + 4 + 4 = 14 bytes per score"),
        (autocast and per == 8, "autocast runs cross-entropy in fp32: only the logits are 16-bit, 2 + 4 + 4 + 4"),
        (dtype == "fp32" and per == 14, "in fp32 each of the four tensors takes 4 bytes per score: 16"),
        (dtype == "pure_bf16" and per in (14, 16), "pure bf16 makes all four tensors bf16, cross-entropy too: 2 bytes "
         "each, 8 per score"),
    ]  # fmt: skip
    for matches, hint in hints:
        if matches:
            raise Hint(hint)
    raise Hint(f"for {setting}: expected {want:,} bytes ({want_per:g} per score), got {got:,} ({per:g})")


# ---- 3.3 the largest micro-batch ------------------------------------------------------------------


class _Counted:
    """A fits(b) predicate that counts its calls and remembers a question it should not be asked. The
    counts live in a closure, so that the student's code cannot reset them by setting an attribute."""

    def __init__(self, fits_fn, limit: int):
        record = {"calls": 0, "odd": None}
        self.record, self.fits = lambda: dict(record), fits_fn

        def ask(b) -> bool:
            record["calls"] += 1
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
                record["odd"] = record["odd"] or (
                    f"fits({b!r}) was asked: a batch size is an int (use // for the midpoint, not /)"
                    if isinstance(b, float)
                    else f"fits({str(b)[:40]!r}) was asked: pass it a batch size, an int"
                )
                return False
            if b < 1 or b > limit:
                record["odd"] = record["odd"] or (
                    f"fits({b}) was asked: batch sizes start at 1 (when fits(1) is False, return 0)"
                    if b < 1
                    else f"fits({b}) was asked, past limit={limit}: never ask beyond limit"
                )
                return False
            return bool(fits_fn(int(b)))

        self.ask = ask


@checker("largest micro-batch")
def check_largest_batch(largest_batch):
    limit = 4096
    run = RunConfig(batch_size=1, dtype="fp16")
    for gpu in ("T4", "4090", "H100"):  # the estimate on real cards: the answer is finegpt's max_micro_batch
        r = replace(run, gpu=gpu)
        want = max_micro_batch(GPT2, r, gpu, limit=limit)  # finegpt's, first
        pred = _Counted(lambda b, r=r: fits(GPT2, replace(r, batch_size=b), r.gpu), limit)
        _batch_mistake(student(largest_batch, pred.ask, limit, shared=(0,)), pred, limit, want)
    for k in (0, 1, 2, 37, 4095, 4096, 10**6):  # thresholds at the edges: nothing fits, 1, a few, everything
        pred = _Counted(lambda b, k=k: b <= k, limit)
        _batch_mistake(student(largest_batch, pred.ask, limit, shared=(0,)), pred, limit, min(k, limit))
    return "the largest batch that fits, 0 when none does, never past limit, in about 2·log2(answer) calls"


def _batch_mistake(got, pred: _Counted, limit: int, want: int) -> None:
    if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
        raise Hint(f"return an int (a batch size), got {kind(got)}")
    got = int(got)
    record = pred.record()
    if record["odd"]:
        raise Hint(record["odd"])
    check = pred.fits  # the uncounted predicate, for diagnosis
    if got > limit:
        raise Hint(f"returned {got}, past limit={limit}: never search beyond limit")
    if got >= 1 and not check(got):
        if got == 1:
            raise Hint("batch_size=1 does not fit here, so the answer is 0 (nothing fits)")
        raise Hint(
            f"returned {got}, but batch_size={got} does not fit: return the last b that fit, not the first that failed"
        )
    if got == limit - 1 and want == limit:
        raise Hint(f"batch_size={limit} fits too: limit itself may be the answer, so try it (the range is 1..limit)")
    if got < limit and check(got + 1):
        raise Hint(f"batch_size={got + 1} fits too: the search stopped early (the answer is {want})")
    budget = 2 * math.ceil(math.log2(limit)) + 4
    if record["calls"] > budget:
        raise Hint(
            f"right answer, but fits() ran {record['calls']} times: bisect instead (double b until it fails, then "
            f"halve the gap), about 2·log2(answer) calls, at most {budget} here"
        )
