"""Sampled-negative ranking (for comparison only): hand-checked ranks, fixed negatives per seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.data.sequences import EvalSet
from elastic_edu.evaluation.metrics import (
    NonFiniteScores,
    evaluate,
    evaluate_sampled,
    rank_targets,
    rank_targets_sampled,
)
from elastic_edu.models import Popularity, build_model
from tests.conftest import make_tiny_config


def popularity(counts) -> Popularity:
    model = build_model(make_tiny_config("popularity", num_items=len(counts) - 1))
    model.counts.copy_(torch.as_tensor(counts, dtype=torch.float32))
    return model


def test_sampled_rank_counts_only_the_drawn_negatives():
    # item i scores i; target 5 of 20 items: full rank 16 (items 6..20 and ties beat it)
    model = popularity([0.0, *range(1, 21)])
    eval_set = EvalSet(histories=[np.array([1, 2])], targets=np.array([5]), users=np.array([0]))
    assert rank_targets(model, eval_set).tolist() == [16]
    rng = np.random.default_rng(3)
    allowed = np.setdiff1d(np.arange(1, 21), [1, 2, 5])
    negatives = rng.choice(allowed, size=10, replace=False)  # what the function draws
    rank = rank_targets_sampled(model, eval_set, 10, seed=3)
    assert rank.tolist() == [1 + int((negatives >= 5).sum())]
    assert not set(negatives) & {1, 2, 5}  # never the history or the target


def test_sampled_metrics_flatter_and_repeat_with_the_seed():
    rng = np.random.default_rng(0)
    counts = [0.0, *rng.random(300)]
    model = popularity(counts)
    histories = [rng.choice(np.arange(1, 301), size=5, replace=False) for _ in range(50)]
    targets = np.array([int(rng.integers(1, 301)) for _ in histories])
    histories = [h[h != t] for h, t in zip(histories, targets)]
    eval_set = EvalSet(histories=histories, targets=targets, users=np.arange(50))
    full, sampled = evaluate(model, eval_set), evaluate_sampled(model, eval_set, 100)
    assert sampled["HR@10"] > full["HR@10"]  # 100 negatives are easier than 300 items
    assert (rank_targets_sampled(model, eval_set) <= rank_targets(model, eval_set)).all()
    again = evaluate_sampled(model, eval_set, 100)
    assert again == sampled
    with pytest.raises(ValueError, match="unseen items"):
        evaluate_sampled(model, eval_set, 299)


def test_sampled_ranking_refuses_non_finite_scores():
    # a NaN target used to beat every negative (nothing compares >= NaN): rank 1
    model = popularity([0.0, *range(1, 20), float("nan")])
    eval_set = EvalSet(histories=[np.array([1])], targets=np.array([20]), users=np.array([0]))
    with pytest.raises(NonFiniteScores, match="1 of 1 users and 1 of 20 items"):
        rank_targets_sampled(model, eval_set, 10)
