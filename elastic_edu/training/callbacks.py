"""What `elastic_edu.training.fit` does around its loop, one small class each (minGPT-style hooks).

A callback sees the `Run` (model, optimizer, epoch, step, history, best so far) at four moments:
`on_fit_start`, `on_step_end` (after every optimizer step), `on_epoch_end` (after validation)
and `on_fit_end`; it stops training with `run.stop(reason)`. `fit` always uses the first four
below, built from the TrainConfig; pass more (a curriculum, a logger) with ``callbacks=``.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from elastic_edu.config import TrainConfig
from elastic_edu.files import write_or_keep
from elastic_edu.training.checkpoint import atomic_save, last_path


@dataclass
class Run:
    """The state of one training run, shared with the callbacks, and what `fit` returns once it
    ends: the (best) model, the history, the best validation, the time, why it stopped and
    where it ran."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
    rng: np.random.Generator | None = None  # draws the epochs' batches
    epoch: int = 0
    step: int = 0
    steps_per_epoch: int = 0
    loss: float = math.nan
    batch: tuple | None = None  # the (inputs, targets) of the latest step
    history: list[dict] = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    best_state: dict | None = None
    improved: bool = False
    partial: bool = False  # the latest epoch was cut short (a signal, the clock)
    stopped: str | None = None
    agreed: str | None = None  # the reason to stop that every rank has seen (`agree_to_stop`)
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None  # when fit returned: the clock stops
    seconds_before: float = 0.0  # training time of the run this one resumes
    rank_rng: list | None = None  # under torchrun: every rank's torch generator state
    is_main: bool = True  # rank 0 (or the only process): validates, checkpoints, reports
    device: str = "cpu"
    world_size: int = 1
    write_errors: list[str] = field(default_factory=list)  # checkpoints that could not be written

    @property
    def train_seconds(self) -> float:
        """Training time: so far, or until fit returned."""
        now = time.perf_counter() if self.ended is None else self.ended
        return self.seconds_before + now - self.started

    def stop(self, reason: str) -> None:
        """Ask the loop to stop after the current step (the first reason given stays)."""
        self.stopped = self.stopped or reason

    def record_validation(self, valid: dict) -> None:
        """Keep a copy of the weights when validation NDCG@10 improves."""
        self.improved = valid["NDCG@10"] > self.best_score
        if self.improved:
            self.best_score, self.best_epoch, self.best_valid = valid["NDCG@10"], self.epoch, valid
            state = self.model.state_dict()
            self.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in state.items()})


class Callback:
    """Base class: override the moments you need."""

    def on_fit_start(self, run: Run) -> None: ...
    def on_step_end(self, run: Run) -> None: ...
    def on_epoch_end(self, run: Run) -> None: ...
    def on_fit_end(self, run: Run) -> None: ...


class EarlyStopping(Callback):
    """Stop after `patience` validations without a better validation NDCG@10."""

    def __init__(self, patience: int):
        self.patience, self.bad = patience, 0

    def on_fit_start(self, run: Run) -> None:  # a resumed run keeps its count
        validated = [row["epoch"] for row in run.history if "valid_NDCG@10" in row]
        self.bad = sum(1 for epoch in validated if epoch > run.best_epoch) if validated else 0

    def on_epoch_end(self, run: Run) -> None:
        if "valid_NDCG@10" not in run.history[-1]:
            return
        self.bad = 0 if run.improved else self.bad + 1
        if self.bad >= self.patience:
            run.stop("early stopping")


class TimeBudget(Callback):
    """Stop when training has used `minutes` of wall-clock time, checked after every step."""

    def __init__(self, minutes: float):
        self.seconds = 60.0 * minutes

    def on_step_end(self, run: Run) -> None:
        if run.train_seconds > self.seconds:
            run.stop("time budget")


class ProgressBar(Callback):
    """One bar over all steps, with the epoch, the loss and the best validation NDCG@10."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar = desc, enabled, None

    def on_step_end(self, run: Run) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            total = run.steps_per_epoch * run.config.epochs
            self.bar = tqdm(total=total, initial=run.step - 1, desc=self.desc, unit="step")
        self.bar.update(1)
        if run.step % 10 == 0:
            self.bar.set_postfix_str(self._status(run), refresh=False)

    def on_epoch_end(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self._status(run))

    def on_fit_end(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self._status(run) + f" ({run.stopped})")
            self.bar.close()

    @staticmethod
    def _status(run: Run) -> str:
        best = f" best NDCG@10 {run.best_score:.4f}" if run.best_epoch else ""
        return f"epoch {run.epoch}/{run.config.epochs} loss {run.loss:.3f}{best}"


class Checkpointing(Callback):
    """Save the best weights to `path` and, after every whole epoch, a resume checkpoint beside it.

    The resume checkpoint (`elastic_edu.training.checkpoint.last_path`) holds the optimizer, the
    history, the best weights so far and the random generators, so `fit(resume=True)` continues
    exactly. Both record `data` (`elastic_edu.training.checkpoint.data_fingerprint`). A write that
    fails (a full disk) does not stop training: it is said at once and tried again at the end,
    and a file that still cannot be written is kept in the temporary folder; `run.write_errors`
    says where.
    """

    def __init__(self, path: str | Path, data: dict | None = None):
        self.path, self.data = Path(path), data
        self.pending: dict[Path, dict] = {}  # files whose latest write failed: their payload

    def on_epoch_end(self, run: Run) -> None:
        if not run.is_main:
            return
        if run.improved:
            self._save(self.path, best_payload(run, self.data))
        if not run.partial:  # resuming repeats a cut-short epoch from its start
            self._save(last_path(self.path), resume_payload(run, self.data))

    def on_fit_end(self, run: Run) -> None:
        if not run.is_main:
            return
        if run.best_state is not None:
            self.pending[self.path] = best_payload(run, self.data)
        for path, payload in self.pending.items():
            what = "checkpoint" if path == self.path else "resume checkpoint"
            _, error = write_or_keep(lambda p, payload=payload: atomic_save(payload, p), path, what)
            if error:
                run.write_errors.append(error)
        self.pending.clear()

    def _save(self, path: Path, payload: dict) -> None:
        try:
            atomic_save(payload, path)
            self.pending.pop(path, None)
        except OSError as err:
            if path not in self.pending:
                reason = err.strerror or err
                print(f"warning: {path} could not be written ({reason}); training goes on and "
                      "tries again at the end", file=sys.stderr, flush=True)  # fmt: skip
            self.pending[path] = copy.deepcopy(payload)  # training goes on changing the state


def best_payload(run: Run, data: dict | None = None) -> dict:
    """The best weights so far with the configs (`elastic_edu.training.checkpoint.save_checkpoint`'s
    format) and the data they were trained on."""
    return {
        "model_config": run.model.config.to_dict(),
        "train_config": run.config.to_dict(),
        "state_dict": run.best_state,
        "best_epoch": run.best_epoch,
        "data": data,
    }


def resume_payload(run: Run, data: dict | None = None) -> dict:
    """Everything `fit` needs to continue `run` after its last completed epoch (and the data it
    ran on, which a resumed run must share)."""
    return {
        "model_config": run.model.config.to_dict(),
        "train_config": run.config.to_dict(),
        "data": data,
        "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
        "optimizer": run.optimizer.state_dict(),
        "epoch": run.epoch,
        "step": run.step,
        "seconds": run.train_seconds,
        "history": run.history,
        "best": {
            "score": run.best_score,
            "epoch": run.best_epoch,
            "valid": run.best_valid,
            "state_dict": run.best_state,
        },  # fmt: skip
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": run.rng.bit_generator.state,
            "torch_ranks": run.rank_rng,
        },  # fmt: skip
    }
