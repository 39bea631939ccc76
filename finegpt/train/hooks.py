"""A notebook's own code in finegpt's training loop: notebook 04 trains with the model classes, the
learning-rate schedule and the optimizer step a student wrote and checked (finegpt.lab.student).

Hooks(make_model, get_lr, step); train(..., hooks=Hooks(...)). Each is optional: None keeps finegpt's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Hooks:
    # model_cfg -> an nn.Module with GPT's interface and state-dict names, built instead of GPT(model_cfg)
    make_model: Callable | None = None
    # (iteration, TrainConfig) -> learning rate, instead of finegpt.train.get_lr
    get_lr: Callable | None = None
    # (parts, batches, first micro-step index, accumulation steps, grad_clip) -> the step's mean loss (a number);
    # runs forward, backward and optimizer.step() itself, instead of step.forward_backward + step.optimizer_step
    step: Callable | None = None
