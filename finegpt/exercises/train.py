"""Notebook 04's exercises: the learning-rate schedule, and one optimizer step with gradient
accumulation and clipping.

check_lr_schedule(lr_at), check_optimizer_step(optimizer_step).
References: finegpt.train.get_lr, and finegpt.step's forward_backward + optimizer_step (the trainer's step).
"""

from __future__ import annotations

import copy
import math

import torch

from finegpt import step
from finegpt.config import ModelConfig, TrainConfig
from finegpt.exercises.check import Hint, attempt, checker
from finegpt.model import GPT
from finegpt.train import get_lr

# ---- 4.1 the learning-rate schedule ---------------------------------------------------------------


@checker("learning-rate schedule")
def check_lr_schedule(lr_at):
    configs = [
        TrainConfig(learning_rate=6e-4, min_lr=6e-5, warmup_iters=10, lr_decay_iters=100),
        TrainConfig(learning_rate=1e-3, min_lr=1e-4, warmup_iters=0, lr_decay_iters=50),
        TrainConfig(learning_rate=3e-4, decay_lr=False),
    ]
    for cfg in configs:
        for it in range(cfg.lr_decay_iters + 30 if cfg.decay_lr else 30):
            got, want = float(attempt(lr_at, it, cfg)), get_lr(it, cfg)
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
                _lr_mistake(lr_at, it, cfg, got, want)
    return "warmup, cosine decay to min_lr, flat after lr_decay_iters, constant with decay_lr=False: equal to get_lr"


def _lr_mistake(lr_at, it: int, cfg: TrainConfig, got: float, want: float) -> None:
    lr, lo, w, end = cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters
    if not cfg.decay_lr:
        raise Hint(
            f"with decay_lr=False the rate is learning_rate={lr:g} at every iteration; at {it} yours is {got:.3g}"
        )
    if it < w:
        if it == 0 and got == 0:
            raise Hint(
                "iteration 0 gets a learning rate of 0, so the first step does nothing: warmup is off by one. "
                "Use learning_rate * (it + 1) / (warmup_iters + 1)"
            )
        if math.isclose(got, lr * (it + 1) / w):
            raise Hint(
                f"warmup reaches the full rate at iteration {w - 1}, one step early: off by one. Use "
                f"learning_rate * (it + 1) / (warmup_iters + 1)"
            )
        raise Hint(
            f"during warmup (it={it} < warmup_iters={w}) the rate rises linearly: expected {want:.4g}, "
            f"got {got:.4g}, learning_rate * (it + 1) / (warmup_iters + 1)"
        )
    if it > end:
        raise Hint(f"after lr_decay_iters={end} the rate stays at min_lr={lo:g}; at it={it} yours is {got:.3g}")
    if lo > 0 and math.isclose(float(lr_at(end, cfg)), 0.0, abs_tol=1e-12):
        raise Hint(f"the cosine ends at 0; it must end at min_lr={lo:g}: min_lr + coeff * (learning_rate - min_lr)")
    ratio = (it - w) / (end - w)
    if math.isclose(got, lo + (1 - ratio) * (lr - lo), rel_tol=1e-6):
        raise Hint("a linear decay; nanoGPT's is a cosine: coeff = 0.5 * (1 + cos(pi * decay_ratio)), from 1 to 0")
    if w and math.isclose(got, lo + 0.5 * (1 + math.cos(math.pi * it / end)) * (lr - lo), rel_tol=1e-6):
        raise Hint(
            "the decay must start where warmup ends: decay_ratio = (it - warmup_iters) / "
            "(lr_decay_iters - warmup_iters)"
        )
    raise Hint(f"in the cosine decay (it={it}): expected {want:.4g}, got {got:.4g}")


# ---- 4.2 one optimizer step -----------------------------------------------------------------------

CFG = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32, bias=True)
B, G, CLIP = 4, 3, 1.0  # finegpt's step clips at 1.0


def _setup(scale: float, seed: int):
    """A tiny GPT whose gradient norm is set by ln_f's scale (0.1: well under the clip, 10: well over),
    an SGD optimizer, and G fixed micro-batches."""
    torch.manual_seed(seed)
    model = GPT(CFG)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(scale)
    g = torch.Generator().manual_seed(seed)
    batches = [(torch.randint(32, (B, 8), generator=g), torch.randint(32, (B, 8), generator=g)) for _ in range(G)]
    return model, torch.optim.SGD(model.parameters(), lr=0.1), batches


def _watch(model, optimizer):
    """What a step did: the losses of each forward, and the gradients at each optimizer.step()."""
    seen = {"losses": [], "grads": []}
    model.register_forward_hook(lambda m, args, out: seen["losses"].append(out[1].item()))
    optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: seen["grads"].append(
            torch.cat([torch.zeros(p.numel()) if p.grad is None else p.grad.flatten() for p in model.parameters()])
        )
    )
    return seen


class _Fixed:
    """The G micro-batches as a loader; the step prefetches one past the last, which it never uses."""

    def __init__(self, batches: list):
        self.batches = batches

    def get_batch(self, k: int):
        return self.batches[k % len(self.batches)]


def _reference_step(model, optimizer, batches: list) -> None:
    """finegpt's own step (finegpt.step, as the trainer runs it) over the same micro-batches, in fp32."""
    cpu = torch.device("cpu")
    parts = step.Parts(model, model, optimizer, torch.amp.GradScaler("cpu", enabled=False), cpu, torch.float32)
    step.forward_backward(parts, step.Prefetch(_Fixed(batches), cpu), 0, G)
    step.optimizer_step(parts, CLIP)


@checker("optimizer step")
def check_optimizer_step(optimizer_step):
    for scale in (0.1, 10.0):  # gradients under, then over, the clip
        model, opt, batches = _setup(scale, seed=int(scale * 10))
        ref = copy.deepcopy(model)
        ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1)
        expected, seen = _watch(ref, ref_opt), _watch(model, opt)
        loss = attempt(optimizer_step, model, opt, batches.__getitem__, G, CLIP)
        _reference_step(ref, ref_opt, batches)
        if len(seen["grads"]) != 1:
            raise Hint(f"optimizer.step() ran {len(seen['grads'])} times: step once, after the last micro-batch")
        if not torch.allclose(seen["grads"][0], expected["grads"][0], rtol=1e-4, atol=1e-7):
            _grad_mistake(seen["grads"][0], scale)
        if any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()):
            raise Hint(
                "after the step the gradients are still there: call optimizer.zero_grad(set_to_none=True) "
                "after optimizer.step(), or the next step adds onto them (and they hold memory meanwhile)"
            )
        _loss_mistake(float(loss), expected["losses"])
    return f"gradients averaged over {G} micro-batches, clipped to norm {CLIP:g}, one step, zeroed after"


def _grad_mistake(got: torch.Tensor, scale: float) -> None:
    """Compare with the gradients each typical mistake would have stepped with."""
    model, _, batches = _setup(scale, seed=int(scale * 10))
    per_batch = []  # each micro-batch's own gradient
    for x, y in batches:
        model.zero_grad(set_to_none=True)
        model(x, y)[1].backward()
        per_batch.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    clip = lambda g: g * min(1.0, CLIP / (g.norm() + 1e-6))  # noqa: E731
    clipped_each = torch.zeros_like(got)
    for g in per_batch:
        clipped_each = clip(clipped_each + g / G)
    mistakes = {
        "the loss is not divided by gradient_accumulation_steps: the gradients add up to G times the "
        "batch's mean. Use (loss / gradient_accumulation_steps).backward()": clip(sum(per_batch)),
        "only the last micro-batch's gradient reached the step: zero_grad runs inside the loop, wiping the "
        "earlier ones. Zero once, after optimizer.step()": clip(per_batch[-1] / G),
        "only the last micro-batch's gradient, and not divided by G: zero_grad runs inside the loop": clip(
            per_batch[-1]
        ),
        f"the gradients are not clipped: call torch.nn.utils.clip_grad_norm_(model.parameters(), {CLIP:g}) after "
        "the last backward, before optimizer.step()": sum(per_batch) / G,
        "clipped after every micro-batch: clip once, when all G gradients have been added": clipped_each,
        "clip_grad_value_ clamps each number; finegpt clips the norm of all gradients together: clip_grad_norm_": (
            sum(per_batch) / G
        ).clamp(-CLIP, CLIP),
    }
    for hint, wrong in mistakes.items():
        if torch.allclose(got, wrong, rtol=1e-4, atol=1e-7):
            raise Hint(hint)
    raise Hint("the gradients at optimizer.step() differ from the mean over the micro-batches, clipped to norm 1")


def _loss_mistake(got: float, losses: list[float]) -> None:
    mean = sum(losses) / len(losses)
    if math.isclose(got, mean, rel_tol=1e-5):
        return
    if math.isclose(got, sum(losses), rel_tol=1e-5):
        raise Hint("you returned the sum of the micro-batch losses; return their mean, the loss of the whole batch")
    if math.isclose(got, losses[-1], rel_tol=1e-5) or math.isclose(got, losses[-1] / G, rel_tol=1e-5):
        raise Hint("you returned the last micro-batch's loss only; return the mean over all G micro-batches")
    raise Hint(f"return the step's loss, the mean over its micro-batches: {mean:.5f}; got {got:.5f}")
