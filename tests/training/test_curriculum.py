"""DistanceCurriculum: stages move on mastery or on the clock, and it runs as a fit callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.config import TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.models import build_model
from elastic_edu.training import Callback, DistanceCurriculum, Run, fit


def test_curriculum_advances_on_mastery_only():
    cur = DistanceCurriculum((0.25, 0.5, 1.0), threshold=0.9, window=3)
    assert cur.keep == 0.25
    assert not cur.record(1.0, 1.0, 1) and not cur.record(1.0, 2.0, 2)  # window not full yet
    assert cur.record(1.0, 3.0, 3) and cur.keep == 0.5
    assert cur.log == [{"step": 3, "seconds": 3.0, "keep": 0.5, "reason": "mastered"}]
    for step in range(4, 20):  # 0.8 < 0.9: never mastered
        assert not cur.record(0.8, float(step), step)
    assert cur.keep == 0.5
    for step in range(20, 23):
        cur.record(0.95, float(step), step)
    assert cur.keep == 1.0
    assert not any(cur.record(1.0, float(s), s) for s in range(23, 30))  # the last stage stays


def test_curriculum_jumps_to_the_full_task_after_full_after():
    cur = DistanceCurriculum((1 / 32, 1 / 16, 1.0), window=2, full_after=60.0)
    assert not cur.record(0.0, 59.0, 1)
    assert cur.record(0.0, 60.0, 2) and cur.keep == 1.0
    assert cur.log[-1]["reason"] == "time"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"stages": ()},
        {"stages": (0.5, 0.25, 1.0)},  # not rising
        {"stages": (0.25, 0.5)},  # does not end on the full task
        {"stages": (0.0, 1.0)},
        {"threshold": 0.0},
        {"window": 0},
        {"full_after": -1.0},
    ],
)
def test_curriculum_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        DistanceCurriculum(**kwargs)


def test_curriculum_as_a_fit_callback_scores_every_step(tiny_config):
    """In `fit` it records one training accuracy per optimizer step, from the step's batch."""
    split = leave_one_out(load_sequences("synthetic", num_users=20, num_items=40, seq_len=12))
    tc = TrainConfig(objective="cut", epochs=1, batch_size=8, cuts_per_user=2, device="cpu")
    steps = []

    class Steps(Callback):
        def on_step_end(self, run: Run) -> None:
            steps.append(run.step)

    slow = DistanceCurriculum((0.5, 1.0), threshold=1.0, window=1000)  # never mastered
    fit(build_model(tiny_config("lda-bidir")), split, tc, progress=False, callbacks=[slow, Steps()])
    assert len(steps) >= 2 and len(slow.hits) == len(steps)
    assert all(0.0 <= a <= 1.0 for a in slow.hits) and slow.keep == 0.5
    late = DistanceCurriculum((0.5, 1.0), full_after=0.0)  # the clock moves it at step 1
    fit(build_model(tiny_config("lda-bidir")), split, tc, progress=False, callbacks=[late])
    assert late.keep == 1.0 and [(c["step"], c["reason"]) for c in late.log] == [(1, "time")]


def test_curriculum_needs_one_target_per_history(tiny_config):
    model = build_model(tiny_config("sasrec"))
    run = Run(model=model, optimizer=None, config=TrainConfig(), rng=np.random.default_rng(0))
    run.batch = (torch.tensor([[1, 2, 3]]), torch.tensor([[2, 3, 4]]))
    with pytest.raises(ValueError, match="objective 'cut'"):
        DistanceCurriculum().on_step_end(run)
