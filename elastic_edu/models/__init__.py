"""Sequential recommenders: SASRec (baseline), ELASTIC, LDA-only (ablation), popularity."""

from __future__ import annotations

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput, SequentialRecommender
from elastic_edu.models.popularity import Popularity
from elastic_edu.models.sasrec import SASRec


def build_model(config: ModelConfig) -> SequentialRecommender:
    """The model named by `config.model` (``popularity`` is built by `Popularity.from_train`)."""
    if config.model == "sasrec":
        return SASRec(config)
    from elastic_edu.models.elastic import ELASTIC, LDAOnly

    classes = {"elastic": ELASTIC, "lda": LDAOnly}
    if config.model not in classes:
        raise ValueError(
            f"model={config.model!r} has no neural network; popularity is built from the "
            "training counts with Popularity.from_train"
        )
    return classes[config.model](config)


__all__ = ["EncoderOutput", "Popularity", "SASRec", "SequentialRecommender", "build_model"]
