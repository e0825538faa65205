"""Training: the one loop and what runs around it.

fit.py          fit(): AdamW, full-softmax cross-entropy, validation, the best weights
callbacks.py    the Run a loop shares (and returns) and its hooks: early stopping, time
                budget, progress bar, checkpointing
checkpoint.py   weights with their configs, written atomically, read strictly; resuming
distributed.py  torchrun and DistributedDataParallel: every rank stops at the same step
curriculum.py   a curriculum over distance for the long-range recall task, as a callback
"""

from elastic_edu.training.callbacks import Callback, Run
from elastic_edu.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from elastic_edu.training.curriculum import DistanceCurriculum
from elastic_edu.training.fit import FitResult, fit, param_groups, seed_everything

__all__ = [
    "Callback",
    "CheckpointError",
    "DistanceCurriculum",
    "FitResult",
    "Run",
    "fit",
    "load_checkpoint",
    "param_groups",
    "read_checkpoint",
    "save_checkpoint",
    "seed_everything",
]
