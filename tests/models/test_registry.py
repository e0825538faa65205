"""The registry: every model built by name, objectives declared once, clear refusals."""

from __future__ import annotations

import pytest
import torch

from elastic_edu.models import REGISTRY, build_model, check_objective, get_spec
from elastic_edu.models.base import OBJECTIVES
from tests.conftest import make_tiny_config


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_model_builds_and_scores(name):
    model = build_model(make_tiny_config(name)).eval()
    assert model.name == name
    scores = model.score([[1, 2, 3], [4]])
    assert scores.shape == (2, 41) and torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_declared_objectives_are_known_and_the_default_is_one(name):
    spec = get_spec(name)
    assert set(spec.objectives) <= set(OBJECTIVES)
    assert spec.default_objective in spec.objectives or not spec.trainable
    assert spec.summary and not spec.summary.startswith("**")


def test_non_causal_models_refuse_all_positions_with_the_reason():
    for name, spec in REGISTRY.items():
        if spec.trainable and not spec.causal:
            with pytest.raises(ValueError, match="leak the future"):
                check_objective(name, "all")


def test_causal_models_are_the_ones_that_train_on_every_position():
    causal = {n for n, s in REGISTRY.items() if s.causal}
    assert causal == {n for n, s in REGISTRY.items() if "all" in s.objectives}
    assert {"sasrec", "gru4rec", "elastic-causal", "lda-causal"} <= causal


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="choose one of .*sasrec"):
        get_spec("transformer")
    with pytest.raises(ValueError, match="is not trained"):
        check_objective("popularity", "all")
