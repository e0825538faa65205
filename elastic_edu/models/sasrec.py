"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

Item + learned position embeddings -> L causal transformer blocks -> tied next-item scores.
Causal, so it trains on every position (objective ``all``) or on random cuts (``cut``).
"""

from __future__ import annotations

import torch
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import CausalRecommender, EncoderOutput
from elastic_edu.models.registry import register
from elastic_edu.models.search_space import HEADS, SHARED
from elastic_edu.nn.attention import TransformerBlock
from elastic_edu.nn.flops import feedforward_flops, self_attention_flops


@register
class SASRec(CausalRecommender):
    """Causal transformer (Kang & McAuley 2018); --attention picks naive N x N or fused sdpa."""

    name = "sasrec"
    backends = ("naive", "sdpa")
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

    def flops(self, batch: int, n: int, context: int = 0) -> int:
        """L (self-attention + feed-forward): quadratic in n."""
        c = self.config
        layer = self_attention_flops(batch, n, c.dim)
        return c.layers * (layer + feedforward_flops(batch, n, c.dim))

    def attention_numbers(self, batch: int) -> int:
        """Naive attention keeps every layer's (b, h, n, n) scores, weights and their gradient;
        the fused kernel keeps none of them."""
        c = self.config
        if c.attention != "naive":
            return 0
        return 3 * batch * c.heads * self.window * self.window * c.layers
