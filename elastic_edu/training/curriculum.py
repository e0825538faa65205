"""A curriculum over distance for the long-range recall task, as a training callback.

`DistanceCurriculum` decides how much of a window's noise the sampler keeps (`keep`): it starts
with windows whose noise is thinned to `stages[0]` and moves to the next stage when the training
accuracy over the last `window` batches reaches `threshold`. It is a `Callback` of
`elastic_edu.training.fit`: after every step it scores the step's batch (without gradients) and
records the accuracy; the study's sampler reads `keep` when it builds the next batch.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from elastic_edu.training.callbacks import Callback, Run


class DistanceCurriculum(Callback):
    """A curriculum over the distance of `long_range_task`: train on thinned windows first.

    Finding one key among 2048 positions is hard to learn from scratch: at initialisation every
    attention weight is about 1/N, so the key's share of the gradient is tiny (ELASTIC at
    N = 2048 stayed at chance for 6 CPU minutes, 581 steps: see the README's synthetic studies).
    Trained first on windows whose noise is thinned to `stages[0]` (about 1/32 of the events),
    a model learns to find the key, and the skill carries over to longer windows.

    The curriculum moves to the next stage when the training accuracy over the last `window`
    batches reaches `threshold` (mastery), and jumps to the full task (the last stage) once
    `full_after` seconds have passed, so a model that cannot learn a stage still spends the rest
    of its budget on the task it is tested on. The last stage stays.
    """

    def __init__(
        self,
        stages: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0),
        threshold: float = 0.9,
        window: int = 30,
        full_after: float = float("inf"),
    ):
        stages = tuple(float(s) for s in stages)
        if not stages or any(not 0.0 < s <= 1.0 for s in stages):
            raise ValueError(f"stages={stages}: need at least one keep fraction in (0, 1]")
        if list(stages) != sorted(stages) or stages[-1] != 1.0:
            raise ValueError(f"stages={stages} must rise and end at 1.0 (the full task)")
        if not 0.0 < threshold <= 1.0 or window < 1 or full_after < 0:
            raise ValueError(
                f"threshold={threshold} must lie in (0, 1], window={window} >= 1, "
                f"full_after={full_after} >= 0"
            )
        self.stages, self.threshold, self.window = stages, threshold, window
        self.full_after = full_after
        self.stage, self.hits = 0, deque(maxlen=window)
        self.log: list[dict] = []  # one entry per stage change: when and why

    @property
    def keep(self) -> float:
        """The keep fraction of the current stage (1.0: the full task)."""
        return self.stages[self.stage]

    def record(self, accuracy: float, now: float, step: int) -> bool:
        """Record one batch's training accuracy, `now` seconds after training began, at
        step `step`; True when the stage moved."""
        last = len(self.stages) - 1
        if self.stage == last:
            return False
        self.hits.append(float(accuracy))
        mastered = len(self.hits) == self.window and np.mean(self.hits) >= self.threshold
        timed_out = now >= self.full_after
        if not (mastered or timed_out):
            return False
        self.stage = self.stage + 1 if mastered else last
        self.hits.clear()
        self.log.append(
            {
                "step": step,
                "seconds": round(now, 2),
                "keep": self.keep,
                "reason": "mastered" if mastered else "time",
            }
        )
        return True

    def on_step_end(self, run: Run) -> None:
        """Score the batch just trained on and record its accuracy (stage changes go to log)."""
        inputs, targets = run.batch
        if targets.dim() != 1:
            raise ValueError("DistanceCurriculum needs one target per history (objective 'cut')")
        with torch.no_grad():
            scores = run.model.score(inputs)
        accuracy = (scores.argmax(dim=1) == targets).float().mean().item()
        if self.record(accuracy, run.train_seconds, run.step):
            change = self.log[-1]
            print(
                f"  {run.model.name} step {run.step} ({change['seconds']:.0f} s): keep "
                f"{change['keep']:.4g} of the noise ({change['reason']})",
                flush=True,
            )
