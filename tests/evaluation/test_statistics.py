"""evaluation.statistics: paired tests, the history-length breakdown, the comparison table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from elastic_edu.evaluation.statistics import (
    by_history_length,
    comparison,
    paired_test,
    sign_test,
    summarise,
)


def test_paired_test_and_sign_test():
    a = np.array([1.0, 0.5, 0.0, 0.2, 0.3])
    b = np.array([0.0, 0.5, 0.0, 0.1, 0.1])
    out = paired_test(a, b, resamples=2000)
    assert out["wins"] == 3 and out["losses"] == 0 and out["users"] == 5
    assert out["mean_diff"] == pytest.approx(0.26)
    assert out["ci95"][0] <= 0.26 <= out["ci95"][1]
    assert out["sign_test_p"] == pytest.approx(0.25)  # 3 wins of 3: 2 * (1/2)^3
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(20, 0) < 1e-5
    with pytest.raises(ValueError, match="users differ"):
        paired_test(a, b[:3])


def fake_run(seed, ranks, lengths):
    metrics = {m: 0.0 for m in ("HR@10", "NDCG@10", "MRR@10")}
    return {"config": {"train": {"seed": seed}}, "ranks": {"test": ranks},
            "history_lengths": lengths, "device_name": "cpu", "torch": "x",
            "test": {**metrics, "NDCG@10": float(np.mean(
                np.where(np.array(ranks) <= 10, 1 / np.log2(np.array(ranks) + 1), 0)))},
            "test_masked": metrics, "train_seconds": 1.0, "epochs": 3,
            "best_epoch": 2, "seconds_per_epoch": 0.3, "seconds_to_best": 0.6}  # fmt: skip


def test_comparison_buckets_by_history_length_and_pairs_every_model():
    lengths = [5, 30, 60, 300]
    runs = {"a": [fake_run(0, [1, 1, 100, 100], lengths), fake_run(1, [1, 3, 100, 100], lengths)],
            "b": [fake_run(0, [100, 100, 1, 1], lengths)]}  # fmt: skip
    table = comparison(runs, seeds=[0, 1])
    buckets = table["by_history_length"]["a"]
    assert buckets["1-20"] == {"users": 1, "NDCG@10": 1.0}
    assert buckets["21-50"]["NDCG@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert buckets[">200"]["NDCG@10"] == 0.0
    pair = table["paired"]["a vs b"]
    assert pair["seeds"] == 1 and pair["wins"] == 2 and pair["losses"] == 2
    assert table["summary"]["a"]["test"]["NDCG@10"]["n"] == 2
    assert "| a |" in table["table"] and table["device_name"] == "cpu"
    assert by_history_length(runs["b"])["51-100"]["NDCG@10"] == 1.0


def test_summary():
    s = summarise([fake_run(0, [1], [3]), fake_run(1, [2], [3])], keys=("test",))
    assert s["test"]["NDCG@10"]["mean"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert s["epochs"] == 3 and s["seconds_per_epoch"] == 0.3
