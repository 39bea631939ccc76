"""Notebook 04's exercises: the learning-rate schedule, and one optimizer step with gradient
accumulation and clipping.

check_lr_schedule(lr_at), check_optimizer_step(optimizer_step).
References: finegpt.train.get_lr, and finegpt.step's forward_backward + optimizer_step (the trainer's step).
Both are computed first; the student's code then gets its own copies.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch

from finegpt import step
from finegpt.config import ModelConfig, TrainConfig
from finegpt.exercises.check import Hint, checker, number, student
from finegpt.model import GPT
from finegpt.train import get_lr

# ---- 4.1 the learning-rate schedule ---------------------------------------------------------------

LR_CONFIGS = [
    TrainConfig(learning_rate=6e-4, min_lr=6e-5, warmup_iters=10, lr_decay_iters=100),
    TrainConfig(learning_rate=1e-3, min_lr=2e-4, warmup_iters=0, lr_decay_iters=50),
    TrainConfig(learning_rate=3e-4, decay_lr=False),
]


def _iters(cfg: TrainConfig) -> range:
    return range(cfg.lr_decay_iters + 30 if cfg.decay_lr else 30)


def _ok(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)


def _accepted(it: int, cfg: TrainConfig, got: float) -> bool:
    """get_lr, or build-nanogpt's warmup, learning_rate * (it + 1) / warmup_iters (full rate one step sooner)."""
    w = cfg.warmup_iters
    return _ok(got, get_lr(it, cfg)) or (cfg.decay_lr and it < w and _ok(got, cfg.learning_rate * (it + 1) / w))


@checker("learning-rate schedule")
def check_lr_schedule(lr_at):
    want = {id(cfg): [get_lr(it, cfg) for it in _iters(cfg)] for cfg in LR_CONFIGS}  # finegpt's, first
    wrong = []  # (it, cfg, got) where the student's rate is no accepted form
    for cfg in LR_CONFIGS:
        got = [number("the learning rate", student(lr_at, it, cfg)) for it in _iters(cfg)]
        wrong += [(it, cfg, g) for it, g in zip(_iters(cfg), got) if not _accepted(it, cfg, g)]
    if not wrong:
        return (
            "warmup, cosine decay to min_lr, flat after lr_decay_iters, constant with decay_lr=False: equal to get_lr"
        )
    for hint, variant in _lr_mistakes().items():
        if all(_ok(g, variant(it, cfg)) for it, cfg, g in wrong):
            raise Hint(hint)
    it, cfg, g = wrong[0]
    _lr_region(it, cfg, g, want[id(cfg)][it])


def _cosine(it: int, cfg: TrainConfig, lo: float | None = None, start: int | None = None, half=0.5, sign=1.0):
    lr, lo = cfg.learning_rate, cfg.min_lr if lo is None else lo
    w = cfg.warmup_iters if start is None else start
    ratio = (it - w) / max(1, cfg.lr_decay_iters - w)
    return lo + half * (1 + sign * math.cos(math.pi * ratio)) * (lr - lo)


def _lr_mistakes() -> dict:
    """Each typical mistake as a whole schedule, right everywhere but in its own region."""

    def region(warmup=None, decay=None, after=None):
        def lr(it, cfg):
            if not cfg.decay_lr:
                return cfg.learning_rate
            if it < cfg.warmup_iters and warmup:
                return warmup(it, cfg)
            if it > cfg.lr_decay_iters and after:
                return after(it, cfg)
            if it >= cfg.warmup_iters and decay and it <= cfg.lr_decay_iters:
                return decay(it, cfg)
            return get_lr(it, cfg)

        return lr

    full = region(after=_cosine)
    return {
        "with decay_lr=False the rate is learning_rate at every iteration: check cfg.decay_lr first": lambda it, cfg: (
            get_lr(it, replace(cfg, decay_lr=True))
        ),
        "iteration 0 gets a learning rate of 0, so the first step does nothing: use learning_rate * (it + 1) / "
        "(warmup_iters + 1) (or / warmup_iters, as build-nanogpt)": region(
            warmup=lambda it, cfg: cfg.learning_rate * it / cfg.warmup_iters
        ),
        "there is no warmup: for it < warmup_iters the rate rises linearly, learning_rate * (it + 1) / "
        "(warmup_iters + 1)": region(warmup=lambda it, cfg: _cosine(it, cfg)),
        "after lr_decay_iters the rate stays at min_lr; yours goes on along the cosine": full,
        "after lr_decay_iters the rate stays at min_lr, not learning_rate": region(
            after=lambda it, cfg: cfg.learning_rate
        ),
        "a linear decay; nanoGPT's is a cosine: coeff = 0.5 * (1 + cos(pi * decay_ratio)), from 1 to 0": region(
            decay=lambda it, cfg: (
                cfg.min_lr
                + (1 - (it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters))
                * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "the cosine ends at 0; it must end at min_lr: min_lr + coeff * (learning_rate - min_lr)": region(
            decay=lambda it, cfg: _cosine(it, cfg, lo=0.0)
        ),
        "min_lr is hard-coded as learning_rate / 10: use cfg.min_lr": region(
            decay=lambda it, cfg: _cosine(it, cfg, lo=cfg.learning_rate / 10),
            after=lambda it, cfg: cfg.learning_rate / 10,
        ),
        "the decay must start where warmup ends: decay_ratio = (it - warmup_iters) / (lr_decay_iters - "
        "warmup_iters)": region(decay=lambda it, cfg: _cosine(it, cfg, start=0)),
        "your cosine rises: coeff = 0.5 * (1 + cos(pi * decay_ratio)) goes from 1 at the end of warmup to 0 "
        "(a minus sign where the plus is?)": region(decay=lambda it, cfg: _cosine(it, cfg, sign=-1.0)),
        "cos takes radians: coeff = 0.5 * (1 + math.cos(math.pi * decay_ratio)), with the π": region(
            decay=lambda it, cfg: (
                cfg.min_lr
                + 0.5
                * (1 + math.cos((it - cfg.warmup_iters) / (cfg.lr_decay_iters - cfg.warmup_iters)))
                * (cfg.learning_rate - cfg.min_lr)
            )
        ),
        "your schedule runs one iteration ahead: lr_at(it) is the rate of iteration it, from 0": lambda it, cfg: get_lr(
            it + 1, cfg
        ),
        "your schedule runs one iteration behind: lr_at(it) is the rate of iteration it, from 0": lambda it, cfg: (
            get_lr(max(it - 1, 0), cfg)
        ),
        "the rate is constant: with decay_lr=True it warms up over warmup_iters, then follows the cosine to min_lr": (
            lambda it, cfg: cfg.learning_rate
        ),
        "coeff lacks its 0.5: 0.5 * (1 + cos(pi * decay_ratio)) runs from 1 to 0, 1 + cos from 2 to 0": region(
            decay=lambda it, cfg: _cosine(it, cfg, half=1.0)
        ),
    }


def _lr_region(it: int, cfg: TrainConfig, got: float, want: float) -> None:
    setting = (
        f"learning_rate={cfg.learning_rate:g}, min_lr={cfg.min_lr:g}, warmup_iters={cfg.warmup_iters}, "
        f"lr_decay_iters={cfg.lr_decay_iters}"
    )
    if not cfg.decay_lr:
        raise Hint(
            f"with decay_lr=False the rate is learning_rate={cfg.learning_rate:g}; at it={it} yours is {got:.6g}"
        )
    region = (
        "warmup (a linear rise)"
        if it < cfg.warmup_iters
        else "the flat end at min_lr"
        if it > cfg.lr_decay_iters
        else "the cosine decay"
    )
    raise Hint(f"at it={it}, in {region}, with {setting}: expected {want:.6g}, got {got:.6g}")


# ---- 4.2 one optimizer step -----------------------------------------------------------------------

CFG = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32, bias=True)
B, G, CLIP = 4, 3, 1.0  # finegpt's step clips at 1.0
STEPS = 2  # two steps in a row: the second shows whether the first one's gradients were cleared


def _setup(scale: float, seed: int):
    """A tiny GPT whose gradient norm is set by ln_f's scale (0.1: well under the clip, 10: well over),
    an SGD optimizer, and STEPS × G fixed micro-batches."""
    torch.manual_seed(seed)
    model = GPT(CFG)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(scale)
    g = torch.Generator().manual_seed(seed)
    batches = [
        [(torch.randint(32, (B, 8), generator=g), torch.randint(32, (B, 8), generator=g)) for _ in range(G)]
        for _ in range(STEPS)
    ]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), batches


def _flat_grads(model) -> torch.Tensor:
    return torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten() for p in model.parameters()])


def _watch(model, optimizer) -> dict:
    """What the steps did: the loss of each forward, and the gradients at each optimizer.step()."""
    seen = {"losses": [], "grads": [], "params": []}

    def on_forward(m, args, out):
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], torch.Tensor) and out[1].numel() == 1:
            seen["losses"].append(out[1].item())

    model.register_forward_hook(on_forward)
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen["grads"].append(_flat_grads(model)))
    optimizer.register_step_post_hook(lambda opt, args, kwargs: seen["params"].append(_flat_params(model)))
    return seen


def _flat_params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class _Batches:
    """The G micro-batches of one step, as get_batch(k): fresh copies each time, and a note of any k
    outside 0..G-1 (the reference prefetches k = G, which it never uses)."""

    def __init__(self, batches: list, strict: bool):
        self.batches, self.strict, self.odd = batches, strict, None

    def get_batch(self, k: int):
        if self.strict and not (isinstance(k, int) and 0 <= k < len(self.batches)):
            self.odd = self.odd or (
                f"get_batch({k!r}) was asked: the micro-batches are numbered 0..{len(self.batches) - 1}, "
                f"for k in range(gradient_accumulation_steps)"
            )
        return tuple(t.clone() for t in self.batches[int(k) % len(self.batches)])


def _reference(model, batches: list) -> dict:
    """finegpt's own step (finegpt.step, as the trainer runs it), STEPS times, in fp32."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, cpu = _watch(model, optimizer), torch.device("cpu")
    parts = step.Parts(model, model, optimizer, torch.amp.GradScaler("cpu", enabled=False), cpu, torch.float32)
    for micro in batches:
        step.forward_backward(parts, step.Prefetch(_Batches(micro, strict=False), cpu), 0, G)
        step.optimizer_step(parts, CLIP)
    return seen


@checker("optimizer step")
def check_optimizer_step(optimizer_step):
    for scale in (0.1, 10.0):  # gradients under, then over, the clip
        model, opt, batches = _setup(scale, seed=int(scale * 10))
        expected = _reference(copy.deepcopy(model), batches)  # finegpt's, first, on its own copy
        seen = _watch(model, opt)
        for n, micro in enumerate(batches):
            loader = _Batches(micro, strict=True)
            steps_before, losses_before = len(seen["grads"]), len(seen["losses"])
            loss = student(optimizer_step, model, opt, loader.get_batch, G, CLIP, shared=(0, 1, 2))
            loss = number("the returned loss", loss)
            if loader.odd:
                raise Hint(loader.odd)
            if len(seen["grads"]) - steps_before != 1:
                raise Hint(
                    f"optimizer.step() ran {len(seen['grads']) - steps_before} times in one call: step once, "
                    f"after the last micro-batch"
                )
            if not torch.allclose(seen["grads"][n], expected["grads"][n], rtol=1e-4, atol=1e-7):
                if n == 1:
                    raise Hint(
                        "the second step's gradients include the first step's: zero them once per step, "
                        "optimizer.zero_grad(set_to_none=True) after optimizer.step() (or before the first "
                        "micro-batch)"
                    )
                _grad_mistake(seen["grads"][n], expected["grads"][n], scale)
            if not torch.allclose(_flat_params(model), expected["params"][n], rtol=1e-4, atol=1e-6):
                raise Hint(
                    "the gradients were right, but the weights after the step are not optimizer.step()'s update: "
                    "let the given optimizer do the update, as it is (its lr, its state), and leave the weights alone"
                )
            _loss_mistake(loss, expected["losses"][n * G : (n + 1) * G], seen["losses"][losses_before:])
    return f"gradients averaged over {G} micro-batches, clipped to norm {CLIP:g}, one step, zeroed after"


def _grad_mistake(got: torch.Tensor, want: torch.Tensor, scale: float) -> None:
    """Compare with the gradients each typical mistake would have stepped with (the first step)."""
    model, _, batches = _setup(scale, seed=int(scale * 10))
    per_batch = []  # each micro-batch's own gradient
    for x, y in batches[0]:
        model.zero_grad(set_to_none=True)
        model(x, y)[1].backward()
        per_batch.append(_flat_grads(model))
    clip = lambda g: g * min(1.0, CLIP / (g.norm() + 1e-6))  # noqa: E731
    clipped_each = torch.zeros_like(got)
    for g in per_batch:
        clipped_each = clip(clipped_each + g / G)
    mean = sum(per_batch) / G
    mistakes = {
        "the loss is not divided by gradient_accumulation_steps: the gradients add up to G times the "
        "batch's mean. Use (loss / gradient_accumulation_steps).backward()": clip(sum(per_batch)),
        "only the last micro-batch's gradient reached the step: zero_grad runs inside the loop, wiping the "
        "earlier ones. Zero once per step, before the loop or after optimizer.step()": clip(per_batch[-1] / G),
        "only the last micro-batch's gradient, and not divided by G: zero_grad runs inside the loop": clip(
            per_batch[-1]
        ),
        "the gradients were zeroed before optimizer.step() could use them: zero_grad goes after the step, "
        "or before the first micro-batch": torch.zeros_like(got),
        f"the gradients are not clipped: call torch.nn.utils.clip_grad_norm_(model.parameters(), {CLIP:g}) after "
        "the last backward, before optimizer.step()": mean,
        "clipped after every micro-batch: clip once, when all G gradients have been added": clipped_each,
        "clip_grad_value_ clamps each number; finegpt clips the norm of all gradients together: clip_grad_norm_": (
            mean.clamp(-CLIP, CLIP)
        ),
        "the loss is divided by gradient_accumulation_steps twice: once, before backward": clip(mean / G),
    }
    for hint, wrong in mistakes.items():
        if torch.allclose(got, wrong, rtol=1e-4, atol=1e-7):
            raise Hint(hint)
    i = int((~torch.isclose(got, want, rtol=1e-4, atol=1e-7)).nonzero()[0])
    where = "under" if scale < 1 else "over"
    raise Hint(
        f"the gradients at optimizer.step() differ from the mean over the micro-batches, clipped to norm {CLIP:g} "
        f"(a step whose gradients are {where} the clip): element {i} of the flattened gradients, in "
        f"model.parameters() order, is {got[i]:.6g}, expected {want[i]:.6g} (norms {got.norm():.4g} and "
        f"{want.norm():.4g})"
    )


def _loss_mistake(got: float, losses: list[float], seen: list[float]) -> None:
    mean = sum(losses) / len(losses)
    if math.isclose(got, mean, rel_tol=1e-5):
        return
    if math.isclose(got, sum(losses), rel_tol=1e-5):
        raise Hint("you returned the sum of the micro-batch losses; return their mean, the loss of the whole batch")
    if math.isclose(got, losses[-1], rel_tol=1e-5) or math.isclose(got, losses[-1] / G, rel_tol=1e-5):
        raise Hint("you returned the last micro-batch's loss only; return the mean over all G micro-batches")
    if math.isclose(got, mean / G, rel_tol=1e-5):
        raise Hint("the returned loss is divided by G twice: add up loss / G (or average the losses), once")
    raise Hint(f"return the step's loss, the mean over its {G} micro-batches: {mean:.5f}; got {got:.5f}")
