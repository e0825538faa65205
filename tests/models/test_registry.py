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


@pytest.mark.parametrize("name", list(REGISTRY))
def test_a_model_carries_its_facts(name):
    """The registry hands on the class's facts; each fact matches what the model holds."""
    spec, model = get_spec(name), build_model(make_tiny_config(name))
    assert spec.cls is type(model) and spec.has_memory == model.has_memory
    assert model.has_memory == hasattr(model, "memory")  # the interest memory, if any
    assert model.encodes == hasattr(model, "encode") and model.streams == hasattr(model, "step")
    assert bool(model.backends) == ("attention" in spec.uses)
    assert model.has_experts == ("num_experts" in spec.uses)
    assert model.memory_parameters() == ([model.memory.values.weight] if model.has_memory else [])


@pytest.mark.parametrize("name", ["lda-bidir", "elastic-bidir", "lda-causal", "elastic-causal"])
def test_each_dispatcher_model_is_an_encoder_and_an_experts_source(name):
    """Two encoders x two sources, one `initial_experts(x, pad, num_experts)`."""
    from elastic_edu.models import CausalDispatcherEncoder, DispatcherEncoder, LearnedExperts
    from elastic_edu.nn import ProductKeyMemory

    model = build_model(make_tiny_config(name)).eval()
    encoder = CausalDispatcherEncoder if model.causal else DispatcherEncoder
    assert isinstance(model, encoder)
    source = model.memory if model.has_memory else model.experts
    assert isinstance(source, ProductKeyMemory if model.has_memory else LearnedExperts)
    x, pad = torch.randn(3, 5, 16), torch.zeros(3, 5, dtype=torch.bool)
    retrieval = model.initial_experts(x, pad)
    assert retrieval.experts.shape == (3, 4, 16)
    assert (retrieval.slots is not None) == model.has_memory


@pytest.mark.parametrize("name", list(REGISTRY))
def test_the_window_and_the_context_are_named_once(name):
    """`prepare` keeps `context` older items and a `window` of N; only ELASTIC-causal's
    retrieval reads older items."""
    model = build_model(make_tiny_config(name, max_len=4, context=3))
    assert model.window == 4
    assert model.context == (3 if model.causal and model.has_memory else 0)
    items = model.prepare([list(range(1, 13))])
    if "cloze" in model.objectives:  # the last window - 1 items, then [MASK]
        assert items.tolist() == [[10, 11, 12, model.mask_token]]
    else:
        assert items.tolist() == [list(range(13 - model.window - model.context, 13))]
