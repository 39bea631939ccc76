"""Time-boxed training (max_minutes): after a short warm-up the loop measures its own step, then sets
max_iters and lr_decay_iters so that the run, its evals and checkpoints included, ends within the budget,
with warmup + cosine laid over those steps so the last one runs at min_lr.

Entry points: TimeBox (the loop's clock: warm-up timing, then one plan, printed, and revised at each of
REVISE_AT's shares of the budget from the speed since the last plan), plan_iters (the arithmetic, pure),
apply_plan (a plan onto a TrainConfig; a resumed run applies the checkpoint's), agree (rank 0's plan for all).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from finegpt.config import TrainConfig

SAFETY = 0.97  # plan to 97 % of the budget: the step time drifts a little (thermals, other processes)
WARMUP_SHARE = 0.05  # time the warm-up for 5 % of the budget ...
WARMUP_MAX_S = 20.0  # ... but at most 20 s
WARMUP_MIN_STEPS = 3  # and at least 3 timed steps
REVISE_AT = (0.3, 0.7)  # at 30 % and 70 % of the budget, max_iters is set again from the steps since the last
# plan (a busy machine's speed drifts), keeping the warmup; the cosine then bends a little
CHECKPOINT_BYTES_PER_S = 200e6  # a checkpoint written and fsynced: a laptop SSD or a cloud disk
CHECKPOINT_FIXED_S = 0.05  # open, fsync, rename, prune: a few file operations


def checkpoint_s(n_params: int) -> float:
    # weights + AdamW's two moments in fp32 = 12 bytes per parameter, written at a disk's speed
    return CHECKPOINT_FIXED_S + 12 * n_params / CHECKPOINT_BYTES_PER_S


def evals_between(first: int, last: int, eval_interval: int) -> int:
    """Evals at iterations first+1 .. last (multiples of eval_interval), plus the one at `last` (the end)."""
    between = last // eval_interval - first // eval_interval
    return between + (last % eval_interval != 0)


def plan_iters(iter_num: int, left_s: float, step_s: float, eval_s: float, eval_interval: int) -> int:
    """The largest max_iters whose remaining steps and evals (each eval_s, its checkpoint included) fit in
    left_s seconds; at least iter_num + 1."""
    cost = lambda n: (n - iter_num) * step_s + evals_between(iter_num, n, eval_interval) * eval_s  # noqa: E731
    lo, hi = iter_num + 1, iter_num + 2
    while cost(hi) <= left_s:  # cost grows with n: double, then bisect
        lo, hi = hi, iter_num + 2 * (hi - iter_num)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(mid) <= left_s else (lo, mid)
    return lo


@dataclass
class Plan:
    """What a time box chose; saved in every checkpoint as 'time_box' so a resumed run keeps it."""

    max_iters: int
    lr_decay_iters: int
    warmup_iters: int
    max_minutes: float
    step_s: float
    eval_s: float
    revised: int = 0  # 0: chosen after the warm-up; k: the k-th revision (REVISE_AT[k - 1])

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def summary(self, iter_num: int, elapsed_s: float, eval_interval: int) -> str:
        evals = evals_between(iter_num, self.max_iters, eval_interval)
        end_s = elapsed_s + (self.max_iters - iter_num) * self.step_s + evals * self.eval_s
        when = (
            f"re-planned at {REVISE_AT[self.revised - 1]:.0%} of the budget"
            if self.revised
            else "planned after warm-up"
        )
        return (
            f"time box ({when}): {self.max_minutes:g} min -> max_iters {self.max_iters:,} (lr_decay_iters "
            f"{self.lr_decay_iters:,}, warmup_iters {self.warmup_iters}): {1000 * self.step_s:.1f} ms/iter measured, "
            f"{evals} more eval(s) at {self.eval_s:.2f} s with checkpoint; ends at about "
            f"{end_s:.0f} s of {60 * self.max_minutes:.0f}"
        )


def agree(box: TimeBox, chosen: Plan | None, d, device) -> Plan | None:
    """Under torchrun every rank times its own steps, but all must stop at the same iteration: rank 0's
    decision, sent to every rank after each step until the plan is final. Alone: the decision itself."""
    if not d.enabled:
        return chosen
    if box.agreed is not None and box.agreed.revised == len(REVISE_AT):  # final on every rank: no more messages
        return None
    import torch

    from finegpt.train.distributed import all_mean

    p = chosen if d.rank == 0 else None
    fields = (p.max_iters, p.lr_decay_iters, p.warmup_iters, p.step_s, p.eval_s, float(p.revised)) if p else (0.0,) * 6
    mine = torch.tensor([float(p is not None), *fields], dtype=torch.float64, device=device)
    shared = (all_mean(mine if d.rank == 0 else torch.zeros_like(mine), d) * d.world_size).tolist()
    if not shared[0]:
        box.plan = box.agreed  # this rank's own decision is not the run's
        return None
    n, decay, warmup, step_s, eval_s, revised = shared[1:]
    box.plan = box.agreed = Plan(
        round(n), round(decay), round(warmup), box.cfg.max_minutes, step_s, eval_s, round(revised)
    )
    return box.plan


def apply_plan(cfg: TrainConfig, plan: dict | Plan) -> TrainConfig:
    """cfg with the plan's max_iters, lr_decay_iters and warmup_iters."""
    p = plan if isinstance(plan, dict) else plan.to_dict()
    return replace(cfg, max_iters=p["max_iters"], lr_decay_iters=p["lr_decay_iters"], warmup_iters=p["warmup_iters"])


class TimeBox:
    """The loop's clock for max_minutes. started() at the top of the loop, eval_took() after each eval,
    step_done() after each step; step_done returns a Plan after the warm-up and at each revision, else None."""

    def __init__(self, cfg: TrainConfig, n_params: int, skip_steps: int = 1):
        self.cfg, self.budget_s = cfg, 60.0 * cfg.max_minutes
        self.ckpt_s = checkpoint_s(n_params)
        self.skip_steps = skip_steps  # untimed: allocations, and compiling with compile=True
        self.t0 = self.timed_from = None
        self.steps = 0
        self.eval_s: float | None = None
        self.plan: Plan | None = None
        self.agreed: Plan | None = None  # under torchrun: rank 0's plan, the one every rank runs (agree)

    def started(self) -> None:
        self.t0 = time.time()

    def elapsed_s(self) -> float:
        return time.time() - self.t0

    def eval_took(self, seconds: float) -> None:
        self.eval_s = seconds if self.eval_s is None else max(self.eval_s, seconds)  # the first may hold a compile
        if self.timed_from is not None:  # eval time is not step time
            self.timed_from += seconds

    def step_done(self, iter_num: int, start_iter: int) -> Plan | None:
        """After each step: the plan when one is chosen (after the warm-up) or revised (at REVISE_AT), else None."""
        if self.plan is not None:
            self.steps += 1
            k = self.plan.revised
            if k == len(REVISE_AT) or self.elapsed_s() < REVISE_AT[k] * self.budget_s:
                return None
            return self._plan(iter_num, (time.time() - self.timed_from) / self.steps, revise=k + 1)
        done = iter_num - start_iter
        if done == self.skip_steps:
            self.timed_from, self.steps = time.time(), 0
            return None
        if done < self.skip_steps:
            return None
        self.steps += 1
        timed_s = time.time() - self.timed_from
        warm_s = min(WARMUP_SHARE * self.budget_s, WARMUP_MAX_S)
        if self.steps < WARMUP_MIN_STEPS or timed_s < warm_s:
            return None
        return self._plan(iter_num, timed_s / self.steps)

    def _plan(self, iter_num: int, step_s: float, revise: int = 0) -> Plan:
        cfg = self.cfg
        # an eval is 2 x eval_iters forwards (a third of a step's work per micro-batch): its time if none was taken
        eval_s = self.eval_s if self.eval_s is not None else step_s * 2 * cfg.eval_iters / 3
        eval_s += self.ckpt_s if cfg.always_save_checkpoint else 0.0
        left_s = SAFETY * self.budget_s - self.elapsed_s()
        max_iters = plan_iters(iter_num, left_s, step_s, eval_s, cfg.eval_interval)
        warmup = min(cfg.warmup_iters, max(0, max_iters // 10))  # warmup inside the run: at most a tenth of it
        if revise:
            warmup = self.plan.warmup_iters  # already run as planned
        decay = max(warmup + 1, max_iters - 1)  # the last step, max_iters - 1, runs at min_lr
        self.plan = Plan(max_iters, decay, warmup, cfg.max_minutes, step_s, eval_s, revised=revise)
        self.timed_from, self.steps = time.time(), 0  # the next revision times the steps from here
        return self.plan
