"""Experiment tracking: `<out_dir>/metrics.jsonl` always; Weights & Biases and TensorBoard when asked.

Entry point: open_trackers(train_cfg, out_dir, config) -> Trackers with .log() / .close().
A tracker that fails (package missing, no login, no network) warns once and is dropped; training goes on.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path


def _plain(value):
    """A JSON-safe scalar: tensors and numpy numbers become floats/ints, NaN/inf become None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlTracker:
    """One JSON object per line: {"step": ..., **metrics}. Appends, so a resumed run continues the file."""

    name = "jsonl"

    def __init__(self, out_dir: str | Path):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(out_dir) / "metrics.jsonl"
        self.file = open(self.path, "a", encoding="utf-8")

    def log(self, step: int, metrics: dict) -> None:
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()  # a crashed or killed run still leaves every line it logged

    def close(self) -> None:
        self.file.close()


class WandbTracker:
    """W&B run named by wandb_project / wandb_run_name. WANDB_MODE=offline writes <out_dir>/wandb/ only."""

    name = "wandb"

    def __init__(self, train_cfg, out_dir: str | Path, config: dict):
        import wandb  # lazy: an optional dependency

        self.wandb = wandb
        self.run = wandb.init(
            project=train_cfg.wandb_project, name=train_cfg.wandb_run_name, config=config, dir=str(out_dir), reinit=True
        )  # finish a run left open

    def log(self, step: int, metrics: dict) -> None:
        self.run.log({k: _plain(v) for k, v in metrics.items() if _plain(v) is not None}, step=int(step))

    def close(self) -> None:
        self.run.finish()
        self.wandb.teardown()  # wait until the run's files are written, not just queued


class TensorboardTracker:
    """Scalars under <out_dir>/tensorboard; view with `tensorboard --logdir <out_dir>/tensorboard`."""

    name = "tensorboard"

    def __init__(self, out_dir: str | Path):
        from torch.utils.tensorboard import SummaryWriter  # lazy: needs the tensorboard package

        self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))

    def log(self, step: int, metrics: dict) -> None:
        for key, value in metrics.items():
            value = _plain(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step=int(step))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


_INSTALL = {
    "wandb": "pip install wandb, then `wandb login` (or set WANDB_MODE=offline)",
    "tensorboard": "pip install tensorboard",
}


class Trackers:
    """Fan-out to every open tracker. A tracker that raises is warned about once and dropped."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.trackers]

    def _drop(self, tracker, what: str, err: Exception) -> None:
        warnings.warn(
            f"{tracker.name} tracking stopped ({what}: {type(err).__name__}: {err}); "
            f"training continues and metrics.jsonl is still written.",
            RuntimeWarning,
            stacklevel=3,
        )
        self.trackers.remove(tracker)

    def log(self, step: int, metrics: dict) -> None:
        for tracker in list(self.trackers):
            try:
                tracker.log(step, metrics)
            except Exception as err:  # noqa: BLE001 -- a tracker must never stop training
                self._drop(tracker, "log", err)

    def close(self) -> None:
        for tracker in list(self.trackers):
            try:
                tracker.close()
            except Exception as err:  # noqa: BLE001
                self._drop(tracker, "close", err)
        self.trackers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _try_open(name: str, make):
    try:
        return make()
    except Exception as err:  # noqa: BLE001 -- ImportError, no login, no network: all the same to training
        hint = f" To use it: {_INSTALL[name]}." if isinstance(err, ImportError) else ""
        warnings.warn(
            f"{name} tracking disabled ({type(err).__name__}: {err}).{hint} "
            f"Training continues; metrics go to metrics.jsonl.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def open_trackers(train_cfg, out_dir: str | Path, config: dict) -> Trackers:
    """Open the trackers train_cfg asks for (rank 0 only, under torchrun)."""
    trackers = [JsonlTracker(out_dir)]
    if getattr(train_cfg, "wandb_log", False):
        os.environ.setdefault("WANDB_SILENT", "true")  # no banner between the training lines
        trackers.append(_try_open("wandb", lambda: WandbTracker(train_cfg, out_dir, config)))
    if getattr(train_cfg, "tensorboard", False):
        trackers.append(_try_open("tensorboard", lambda: TensorboardTracker(out_dir)))
    return Trackers([t for t in trackers if t is not None])
