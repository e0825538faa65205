"""elastic_edu.evaluation.analysis: NMI against a slow reference, assignments, slot counts."""

import math

import numpy as np
import pytest
import torch

from elastic_edu.evaluation.analysis import (
    assignment_entropy,
    expert_assignments,
    nmi,
    per_user_nmi,
    shuffled_nmi,
    shuffled_per_user_nmi,
    slot_assignments,
    slot_counts,
    usage_stats,
)
from elastic_edu.models import build_model


def nmi_reference(a, b):
    """Plain-loop NMI with arithmetic-mean normalisation."""
    n = len(a)
    la, lb = sorted(set(a)), sorted(set(b))
    pa = {x: sum(1 for v in a if v == x) / n for x in la}
    pb = {y: sum(1 for v in b if v == y) / n for y in lb}
    mi = 0.0
    for x in la:
        for y in lb:
            pxy = sum(1 for u, v in zip(a, b) if u == x and v == y) / n
            if pxy > 0:
                mi += pxy * math.log(pxy / (pa[x] * pb[y]))
    ha = -sum(p * math.log(p) for p in pa.values())
    hb = -sum(p * math.log(p) for p in pb.values())
    return mi / ((ha + hb) / 2)


@pytest.mark.parametrize("seed", range(5))
def test_nmi_matches_reference(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=60)
    b = (a + rng.integers(0, 2, size=60)) % 5
    assert nmi(a, b) == pytest.approx(nmi_reference(list(a), list(b)), abs=1e-12)


def test_nmi_extremes_and_errors():
    a = np.array([0, 0, 1, 1, 2, 2])
    assert nmi(a, a + 7) == pytest.approx(1.0)
    assert nmi(a, np.zeros(6)) == 0.0
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 8, 5000), rng.integers(0, 8, 5000)
    assert nmi(x, y) < 0.01
    assert shuffled_nmi(a, a, repeats=20) < 0.9
    with pytest.raises(ValueError, match="equally long"):
        nmi([1, 2], [1])


@pytest.mark.parametrize(
    ("name", "lengths"),
    [("elastic-bidir", [7, 11]), ("elastic-causal", [7, 12]), ("lda-causal", [7, 12])],
)
def test_assignments_cover_the_items_the_model_reads(tiny_config, name, lengths):
    """A non-causal model reads its last max_len - 1 items and a [MASK]; a causal one max_len."""
    torch.manual_seed(0)
    model = build_model(tiny_config(name, max_len=12, num_experts=4))
    assign = expert_assignments(model, [np.arange(1, 8), np.arange(5, 20)])
    assert [len(a) for a in assign] == lengths
    assert all(((a >= 0) & (a < 4)).all() for a in assign)


def test_slot_counts_and_usage(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config("elastic-bidir", max_len=12, num_experts=4))
    counts = slot_counts(model, [np.arange(1, 8), np.arange(5, 20)])
    assert counts.shape == (16,) and counts.sum() == 2 * 4
    stats = usage_stats(counts)
    assert 0 < stats["fraction_used"] <= 0.5 and 0 < stats["relative_entropy"] <= 1


def test_assignment_entropy_counts_the_experts_a_history_uses():
    one = assignment_entropy([np.zeros(10, dtype=int)])
    two = assignment_entropy([np.array([0, 1] * 5)])
    assert one == {"entropy": 0.0, "effective_experts": 1.0}
    assert abs(two["effective_experts"] - 2.0) < 1e-9


def test_per_user_nmi_reads_each_history_on_its_own():
    a = [np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])]  # the ids swap between users
    labels = [np.array([3, 3, 7, 7]), np.array([3, 3, 7, 7])]
    assert per_user_nmi(a, labels) == pytest.approx(1.0)
    assert nmi(np.concatenate(a), np.concatenate(labels)) < 1.0  # pooled, the ids disagree


def test_slot_assignments_name_each_items_memory_slot(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config("elastic-bidir", max_len=12, num_experts=4))
    hist = [np.arange(1, 8), np.arange(5, 20)]
    experts, slots = expert_assignments(model, hist), slot_assignments(model, hist)
    for h, e, s in zip(hist, experts, slots):
        retrieved = model.encode(model.prepare([h])).slots[0].numpy()
        np.testing.assert_array_equal(s, retrieved[e])


def test_shuffled_per_user_nmi_is_near_chance():
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 4, 400) for _ in range(5)]
    assert per_user_nmi(labels, labels) == pytest.approx(1.0)
    assert shuffled_per_user_nmi(labels, labels) < 0.05
