"""Recommenders, each registered by name: SASRec, GRU4Rec, ELASTIC and LDA-only (the paper's
non-causal reading and our causal form), popularity.

`build_model(config)` builds any of them; `REGISTRY` tells their objectives and what they use.
"""

from __future__ import annotations

from elastic_edu.models import causal, elastic, gru4rec, popularity, sasrec  # noqa: F401 - register
from elastic_edu.models.base import EncoderOutput, Recommender, SequentialRecommender
from elastic_edu.models.causal import ELASTICCausal, LDACausal, StreamState
from elastic_edu.models.elastic import ELASTIC, LDAOnly
from elastic_edu.models.gru4rec import GRU4Rec
from elastic_edu.models.popularity import Popularity
from elastic_edu.models.registry import (
    ALIASES,
    REGISTRY,
    ModelSpec,
    build_model,
    check_objective,
    get_spec,
    model_names,
)
from elastic_edu.models.sasrec import SASRec

__all__ = [
    "ALIASES",
    "ELASTIC",
    "ELASTICCausal",
    "EncoderOutput",
    "GRU4Rec",
    "LDACausal",
    "LDAOnly",
    "ModelSpec",
    "Popularity",
    "REGISTRY",
    "Recommender",
    "SASRec",
    "SequentialRecommender",
    "StreamState",
    "build_model",
    "check_objective",
    "get_spec",
    "model_names",
]
