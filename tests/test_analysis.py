"""Tests for elastic_edu.analysis: NMI against a slow reference, assignments, slot counts."""

import math

import numpy as np
import pytest
import torch

from elastic_edu.analysis import (
    expert_assignments,
    nmi,
    shuffled_nmi,
    slot_counts,
    usage_stats,
)
from elastic_edu.config import ModelConfig
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


def test_assignments_and_slot_counts():
    torch.manual_seed(0)
    cfg = ModelConfig(
        model="elastic",
        num_items=30,
        max_len=12,
        dim=16,
        heads=2,
        layers=1,
        dropout=0.0,
        experts=4,
        subkeys=4,
        candidates=4,
        key_dim=8,
    )
    model = build_model(cfg)
    hist = [np.arange(1, 8), np.arange(5, 20)]
    assign = expert_assignments(model, hist)
    assert [len(a) for a in assign] == [7, 12]
    assert all(((a >= 0) & (a < 4)).all() for a in assign)
    counts = slot_counts(model, hist)
    assert counts.shape == (16,) and counts.sum() == 2 * 4
    stats = usage_stats(counts)
    assert 0 < stats["fraction_used"] <= 0.5 and 0 < stats["relative_entropy"] <= 1
