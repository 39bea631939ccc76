"""One training step's memory over time: the live bytes after every op of finegpt's own step, with the
forward, backward and optimizer phases marked, measured on the CPU (or under FakeTensorMode).

Entry point: memory_timeline(model_cfg, run, device="cpu"|"fake", seed=0) -> Timeline.
It runs the step `measure()` runs (measurement.build, then finegpt.step's train_step: forward_backward and
optimizer_step) under LiveBytes, a dispatch mode, with its history on: op by op, with the phases marked by
hooks on the model. It stays on LiveBytes, not on the profiler's allocator events (ProfiledBytes, which
measure() reads on CPU), because it needs the op boundaries and the hook marks in one order, which a dispatch
mode gives and the profiler's clock does not line up with. The cost: it cannot see what a kernel allocates
inside itself (CPU flash attention's workspace, oneDNN's matmul scratch, checkpoints' RNG states), and a tied
embedding's gradients are summed out of place under it (one V x C gradient more). Where the peak is not at
such a moment (tests/test_diagrams.py's config) its peak equals measure()'s training-step peak to the byte;
elsewhere, read the peak from measure().
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from finegpt import step
from finegpt.config import ModelConfig
from finegpt.memory.measurement import LiveBytes, RandomBatches, build
from finegpt.run import RunConfig


@dataclass
class Timeline:
    """live_bytes[i]: bytes allocated right after op i (ops[i]) of the second training step (the first
    creates the optimizer state). phases: (name, first op, end op) in order, e.g. ("forward 1", 0, 80)."""

    live_bytes: list[int]
    ops: list[str]
    phases: list[tuple[str, int, int]]
    start_bytes: int  # alive before the step: weights, optimizer state, buffers

    @property
    def peak_index(self) -> int:
        return max(range(len(self.live_bytes)), key=self.live_bytes.__getitem__)

    @property
    def peak_bytes(self) -> int:
        return self.live_bytes[self.peak_index]

    @property
    def peak_phase(self) -> str:
        i = self.peak_index
        return next(name for name, start, end in self.phases if start <= i < end)


def memory_timeline(model_cfg: ModelConfig, run: RunConfig, device: str = "cpu", seed: int = 0) -> Timeline:
    """Record the second of two training steps op by op. Phase boundaries come from hooks on the real
    objects: a micro-step's forward starts when the model is called and ends when it returns the loss; its
    backward (during which the next batch is prefetched) ends when the last gradient is accumulated; the
    optimizer phase (unscale, clip, step, zero_grad) runs from there to the end."""
    if device not in ("cpu", "fake"):
        raise ValueError(f"device={device!r}: the timeline is measured on 'cpu' or 'fake'. Use one of those.")
    torch.manual_seed(seed)
    tracker, marks = LiveBytes(), []  # marks: (event, index of the next op in the history)
    now = lambda: len(tracker.history) if tracker.history is not None else 0  # noqa: E731
    G = run.gradient_accumulation_steps

    if device == "fake":
        from torch._subclasses.fake_tensor import FakeTensorMode

        fake = FakeTensorMode()
    else:
        fake = nullcontext()
    with fake, tracker:
        parts = build(model_cfg, run, torch.device("cpu"))
        model = parts.raw_model
        model.register_forward_pre_hook(lambda module, args: marks.append(("forward", now())))
        model.register_forward_hook(lambda module, args, out: marks.append(("backward", now())))
        for p in model.parameters():
            p.register_post_accumulate_grad_hook(lambda p: marks.append(("grad", now())))
        batches = step.Prefetch(RandomBatches(model_cfg, run.batch_size), parts.device)
        step.train_step(parts, batches, 0, G)
        marks.clear()
        tracker.history = []
        start_bytes = tracker.now_bytes
        step.train_step(parts, batches, 1, G)
        del parts, model, batches
    live = [b for _, b in tracker.history]
    return Timeline(live, [op for op, _ in tracker.history], _phases(marks, len(live)), start_bytes)


def _phases(marks: list[tuple[str, int]], n_ops: int) -> list[tuple[str, int, int]]:
    """(event, op index) marks -> consecutive (phase, start, end) spans covering every op."""
    starts, k = [], 0
    for event, at in marks:
        if event == "forward":
            k += 1
            starts.append((f"forward {k}", at))
        elif event == "backward":
            starts.append((f"backward {k}", at))
    starts.append(("optimizer", max(at for event, at in marks if event == "grad")))  # after the last gradient
    starts[0] = (starts[0][0], 0)  # the step's first ops (its loss accumulator) open the first forward
    if k == 1:  # one micro-step: plain names
        starts = [(name.split()[0], at) for name, at in starts]
    ends = [at for _, at in starts[1:]] + [n_ops]
    return [(name, at, end) for (name, at), end in zip(starts, ends)]
