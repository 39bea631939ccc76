"""Training: the loop (LR schedule, eval, checkpoints, logs) over finegpt.step's step; crash-safe checkpoints;
torchrun (DDP, FSDP2). Entry points: train, load_checkpoint, load_model, save_checkpoint, train_from_cli,
get_lr, TrainingInterrupted.
"""

from finegpt.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from finegpt.train.interrupt import TrainingInterrupted
from finegpt.train.launch import train_from_cli
from finegpt.train.loop import get_lr, train

__all__ = [
    "train",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "train_from_cli",
    "get_lr",
    "TrainingInterrupted",
]
