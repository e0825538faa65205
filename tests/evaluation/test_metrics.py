"""Full-ranking metrics: hand-computed rankings (ties against the model), masking, batch size."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from elastic_edu.data.sequences import EvalSet
from elastic_edu.evaluation.metrics import (
    evaluate,
    metrics_from_ranks,
    rank_targets,
    ranks_from_scores,
)
from elastic_edu.models import NonFiniteScores
from tests.conftest import counted_popularity, diverged_sasrec, tiny_sasrec


def rank_reference(scores, target, exclude=()):
    """1 + number of other real items scoring at least the target's score (plain loops)."""
    return 1 + sum(
        1
        for j in range(1, len(scores))
        if j != target and j not in exclude and scores[j] >= scores[target]
    )


def test_ranks_by_hand_with_ties():
    scores = torch.tensor(
        [
            [float("-inf"), 0.9, 0.5, 0.5, 0.1],  # target 2 ties with 3 -> rank 3
            [float("-inf"), 0.1, 0.2, 0.3, 0.4],  # target 4 is best -> rank 1
            [float("-inf"), 0.7, 0.7, 0.7, 0.7],  # all tied -> rank 4
        ]
    )
    targets = torch.tensor([2, 4, 1])
    assert ranks_from_scores(scores, targets).tolist() == [3, 1, 4]
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[0, 1] = True  # mask the item that beat the target
    assert ranks_from_scores(scores, targets, exclude)[0].item() == 2


def test_metrics_by_hand():
    m = metrics_from_ranks(np.array([1, 3, 11, 60]), ks=(10, 50))
    assert m["HR@10"] == pytest.approx(2 / 4)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert m["MRR@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert m["HR@50"] == pytest.approx(3 / 4)
    assert m["MRR@50"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 4)
    with pytest.raises(ValueError, match="empty"):
        metrics_from_ranks([])


def _eval_set(num_items=40, users=23, seed=0):
    rng = np.random.default_rng(seed)
    hist = [rng.integers(1, num_items + 1, size=rng.integers(1, 12)) for _ in range(users)]
    return EvalSet(hist, rng.integers(1, num_items + 1, size=users), np.arange(users))


@pytest.mark.parametrize("mask", [False, True])
def test_rank_targets_matches_reference_and_ignores_batching(mask):
    model, es = tiny_sasrec(), _eval_set()
    ranks = rank_targets(model, es, mask_history=mask, batch_size=5)
    with torch.no_grad():
        scores = model.score(es.histories).numpy()
    expected = [
        rank_reference(s, t, set(h.tolist()) - {t} if mask else ())
        for s, t, h in zip(scores, es.targets, es.histories)
    ]
    assert ranks.tolist() == expected
    a = evaluate(model, es, mask_history=mask, batch_size=1)
    b = evaluate(model, es, mask_history=mask, batch_size=256)
    assert a == b


def test_popularity_ranks_by_counts():
    train = [np.array([1, 2, 2, 3]), np.array([2, 3, 3, 3])]
    pop = counted_popularity(train, num_items=5)
    es = EvalSet([np.array([1])], np.array([3]), np.array([0]))
    assert rank_targets(pop, es).tolist() == [1]


def test_evaluation_refuses_non_finite_scores_counting_users_and_items():
    # NaN scores used to rank every target first (nothing compares >= NaN): HR@10 = 1
    rng = np.random.default_rng(0)
    hist = [rng.integers(10, 41, size=rng.integers(1, 9)) for _ in range(23)]
    es = EvalSet(hist, rng.integers(10, 41, size=23), np.arange(23))
    with pytest.raises(NonFiniteScores, match="23 of 23 users and 4 of 40 items") as err:
        evaluate(diverged_sasrec(), es, batch_size=256)
    assert "diverged" in str(err.value) and "users 0..22" in str(err.value)
    with pytest.raises(NonFiniteScores, match="5 of 5 users"):  # the first batch of 5
        rank_targets(diverged_sasrec(), es, batch_size=5)
    scores = torch.zeros(3, 6)
    scores[:, 0] = float("-inf")  # padding may be -inf
    scores[1, 2] = float("inf")
    with pytest.raises(NonFiniteScores, match="1 of 3 users and 1 of 5 items"):
        ranks_from_scores(scores, torch.tensor([1, 2, 3]))
