"""Where a dispatcher model's k experts come from, and what both dispatcher encoders share.

Two experts sources, one call: ``source(x, pad, num_experts) -> Retrieval`` (experts (b, e, d),
and for the memory the slots, their scores and the sub-key balance loss), where x (b, c, d) are
the states the retrieval query may read and pad (b, c) marks their padding:

    LearnedExperts     k learned experts, the same for every user (LDA-only): x is not read
    ProductKeyMemory   k experts retrieved per user from the interest memory (ELASTIC): the
                       query pools x (`elastic_edu.nn.product_keys`)

`DispatcherModel` is the body both attention families share (`elastic_edu.models.dispatcher`,
`elastic_edu.models.causal_dispatcher`): its blocks, the source its `has_memory` declares, one
`initial_experts`, and the blocks' pass over a window. A registered dispatcher model is then a
declaration: an encoder (one per attention family) and a source.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import repeat
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput, SequentialRecommender
from elastic_edu.nn.flops import retrieval_flops
from elastic_edu.nn.product_keys import ProductKeyMemory, Retrieval


class LearnedExperts(nn.Module):
    """k learned experts shared by every user: the LDA-only ablation (no memory)."""

    def __init__(self, num_experts: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_experts, dim) * dim**-0.5)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, num_experts: int | None = None):
        """The same k experts for each of the b users of x (b, c, d): experts (b, e, d)."""
        if num_experts is not None and num_experts != self.weight.shape[0]:
            raise ValueError(
                "LDA-only has a fixed set of learned experts: num_experts must be None"
            )
        return Retrieval(experts=repeat(self.weight, "e d -> b e d", b=x.shape[0]))


def interest_memory(config: ModelConfig) -> ProductKeyMemory:
    """The product-key interest memory a model's config describes (k experts, M = m*m slots)."""
    m = config.memory
    return ProductKeyMemory(config.dim, m.key_dim, m.subkeys, config.num_experts, m.candidates)


class DispatcherModel(SequentialRecommender):
    """What both dispatcher encoders share: config.layers blocks over the k experts of a window,
    which come from the source `has_memory` declares (created after the blocks: the initial
    weights follow the order of creation)."""

    has_experts = True

    def __init__(self, config: ModelConfig, block: Callable[[], nn.Module]):
        super().__init__(config)
        self.blocks = nn.ModuleList(block() for _ in range(config.layers))
        if self.has_memory:
            self.memory = interest_memory(config)
        else:
            self.experts = LearnedExperts(config.num_experts, config.dim)

    def initial_experts(self, x: torch.Tensor, pad: torch.Tensor, num_experts: int | None = None):
        """x (b, c, d) the states the retrieval query reads, pad (b, c) -> Retrieval: experts
        (b, e, d), and the memory's slots, scores and balance loss (None for learned experts).

        num_experts: how many to retrieve (None: the trained k); learned experts are fixed.
        """
        source = self.memory if self.has_memory else self.experts
        return source(x, pad, num_experts)

    def read_window(self, window, retrieve, return_weights=False) -> EncoderOutput:
        """The blocks over a window of ids (b, n) and the experts `retrieve(x, pad)` returns
        for its embedded states x (b, n, d): each block hands on the states and the experts
        (updated, or fixed for the window).

        The window is embedded here, not by the caller, so that no caller keeps its input
        states alive while the blocks run (one (b, n, d) tensor less at the memory peak)."""
        x, pad = self.embed(window)
        retrieval = retrieve(x, pad)
        experts, aggregate, dispatch = retrieval.experts, [], []
        for block in self.blocks:
            out = block(x, experts, pad, return_weights)
            x, experts = out.x, out.experts
            if return_weights:
                aggregate.append(out.aggregate)
                dispatch.append(out.dispatch)
        return EncoderOutput(hidden=self.norm(x), pad=pad, aggregate=aggregate,
                             dispatch=dispatch, slots=retrieval.slots,
                             slot_scores=retrieval.scores, balance=retrieval.balance)  # fmt: skip

    def retrieval_flops(self, batch: int, pooled: int) -> int:
        """The memory's retrieval for a query that pools `pooled` positions (0 without one)."""
        if not self.has_memory:
            return 0
        m = self.config.memory
        return retrieval_flops(batch, pooled, self.config.dim, m.key_dim, m.subkeys)
