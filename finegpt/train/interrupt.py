"""Ctrl-C and SIGTERM during training: the first finishes the step, saves a checkpoint and stops with one
line saying how to resume; a second stops at once, leaving the last good checkpoint as it was.

Entry points: GracefulStop (a context manager around training), TrainingInterrupted.
Handlers are installed only in the main thread (Python allows no other); elsewhere Ctrl-C works as usual.
"""

from __future__ import annotations

import os
import signal
import threading

import torch

SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; what schedulers (SLURM, Kubernetes) send before a kill


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by a signal. str(e) is the line to show; exit_code is 128 + the signal's number."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class GracefulStop:
    """with GracefulStop(last_good, resume_hint) as stop: ... stop.arm() when the loop starts; after each
    step `if stop.requested(d, device): save, then raise stop.stopped(iter_num, checkpoint)`.

    last_good() -> the newest complete checkpoint or None; resume_hint: 'Resume with `...`'."""

    def __init__(self, last_good, resume_hint: str):
        self.last_good, self.resume_hint = last_good, resume_hint
        self.signum, self.armed, self.previous = None, False, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # `nohup`, or `&` in a script: keep ignoring it
                    self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def arm(self) -> None:
        """From here a first signal waits for the step to end; before, there is no step to finish."""
        self.armed = True

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is None and self.armed:
            self.signum = signum
            # os.write, not print: a handler may run while the main thread is inside print
            os.write(
                1, f"\n{name}: finishing this step, then saving a checkpoint (send it again to stop at once)\n".encode()
            )
            return
        last = self.last_good()
        if last is None:
            raise TrainingInterrupted(f"stopped at once by {name}; no checkpoint was saved yet.", signum)
        raise TrainingInterrupted(
            f"stopped at once by {name}; the last good checkpoint is {str(last)!r}. {self.resume_hint}.", signum
        )

    def requested(self, d, device) -> bool:
        """Whether a signal asked to stop; under DDP true on every rank once any rank got one, so all stop
        after the same step (torchrun forwards the signal to each worker, not at the same instant)."""
        if not d.enabled:
            return self.signum is not None
        import torch.distributed as dist

        flag = torch.tensor(float(self.signum is not None), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def stopped(self, iter_num: int, checkpoint) -> TrainingInterrupted:
        signum = self.signum or signal.SIGTERM  # another rank's signal under DDP
        name = signal.Signals(signum).name
        return TrainingInterrupted(
            f"stopped at iter {iter_num} by {name}: checkpoint saved to {str(checkpoint)!r}. {self.resume_hint}.",
            signum,
        )
