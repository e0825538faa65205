"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Item + learned position embeddings -> L causal transformer blocks -> tied next-item scores.
Causal, so it trains on every position (objective ``all``) or on random cuts (``cut``).
"""

from __future__ import annotations

import torch
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput, SequentialRecommender
from elastic_edu.models.registry import register
from elastic_edu.nn.attention import TransformerBlock
from elastic_edu.search_space import HEADS, SHARED


@register
class SASRec(SequentialRecommender):
    """Causal transformer (Kang & McAuley 2018); --attention picks naive N x N or fused sdpa."""

    name = "sasrec"
    objectives = ("all", "cut")
    default_objective = "all"
    causal = True
    uses = ("attention",)
    search_space = (*SHARED, HEADS)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.dim, config.heads, config.dropout, config.attention)
            for _ in range(config.layers)
        )

    def encode(self, items: torch.Tensor, return_weights: bool = False) -> EncoderOutput:
        x, pad = self.embed(items)
        weights = []
        for block in self.blocks:
            x, w = block(x, pad, return_weights)
            if return_weights:
                weights.append(w)
        return EncoderOutput(hidden=self.norm(x), pad=pad, attention=weights)
