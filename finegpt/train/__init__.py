"""Training: the loop (AMP, gradient accumulation, LR schedule, eval), crash-safe checkpoints, DDP and FSDP2.

Entry points: train, load_checkpoint, load_model, save_checkpoint, train_from_cli.
"""

from finegpt.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from finegpt.train.interrupt import TrainingInterrupted
from finegpt.train.launch import train_from_cli
from finegpt.train.loop import estimate_loss, get_lr, pick_device, pick_dtype, train

__all__ = [
    "train",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "train_from_cli",
    "estimate_loss",
    "get_lr",
    "pick_device",
    "pick_dtype",
    "TrainingInterrupted",
]
