"""Recommenders, each registered by name and each carrying its own facts: SASRec, GRU4Rec,
ELASTIC and LDA-only (the paper's non-causal reading and our causal form), popularity.

    base.py               what every model shares: its facts, prepare -> encode -> score, losses
    registry.py           names -> classes (the only place that knows a name)
    sasrec, gru4rec, popularity
    experts.py            the experts sources (learned, the interest memory), one dispatcher body
    dispatcher.py         the bidirectional encoder: elastic-bidir, lda-bidir
    causal_dispatcher.py  the causal encoder: elastic-causal, lda-causal (streaming)
    recommend.py          inference for one new history
    search_space.py       what `tune` may vary, declared by each model

`build_model(config)` builds any of them; `get_spec(name)` gives a model's facts.
"""

from elastic_edu.models import (  # noqa: F401 - register
    causal_dispatcher,
    dispatcher,
    gru4rec,
    popularity,
    sasrec,
)
from elastic_edu.models.base import (
    CausalRecommender,
    EncoderOutput,
    NonFiniteScores,
    Recommender,
    SequentialRecommender,
    check_finite,
)
from elastic_edu.models.causal_dispatcher import (
    CausalDispatcherEncoder,
    ELASTICCausal,
    LDACausal,
    StreamState,
)
from elastic_edu.models.dispatcher import ELASTIC, DispatcherEncoder, LDAOnly
from elastic_edu.models.experts import DispatcherModel, LearnedExperts
from elastic_edu.models.gru4rec import GRU4Rec
from elastic_edu.models.popularity import Popularity
from elastic_edu.models.recommend import recommend
from elastic_edu.models.registry import (
    ALIASES,
    REGISTRY,
    ModelSpec,
    build_model,
    check_objective,
    get_spec,
    model_names,
    name_in,
)
from elastic_edu.models.sasrec import SASRec

__all__ = [
    "ALIASES",
    "CausalRecommender",
    "CausalDispatcherEncoder",
    "DispatcherEncoder",
    "DispatcherModel",
    "ELASTIC",
    "ELASTICCausal",
    "EncoderOutput",
    "GRU4Rec",
    "LDACausal",
    "LDAOnly",
    "LearnedExperts",
    "ModelSpec",
    "NonFiniteScores",
    "Popularity",
    "REGISTRY",
    "Recommender",
    "SASRec",
    "SequentialRecommender",
    "StreamState",
    "build_model",
    "check_finite",
    "check_objective",
    "get_spec",
    "model_names",
    "name_in",
    "recommend",
]
