"""ELASTIC (Deng et al., arXiv 2408.09380) as the paper describes it, and its LDA-only ablation.

    ELASTIC:  embed history -> retrieve k experts from the product-key interest memory
              -> L dispatcher blocks (experts read the history, positions read the experts)
              -> LayerNorm -> state at the [MASK] after the history . item embeddings
    LDAOnly:  the same with k plain learned experts shared by every user (no memory).

The experts read the whole history, so the state at position t depends on items after t: these
encoders are not causal. They train with the ``cloze`` objective (masked items predicted from
both sides, BERT4Rec-style) or ``cut`` (a history predicts the next item), and always read their
prediction at a [MASK] token appended after the history (docs/DESIGN.md, "Training objectives").
The causal forms are in `elastic_edu.models.causal`.
"""

from __future__ import annotations

import torch
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput, SequentialRecommender
from elastic_edu.models.experts import LearnedExperts, interest_memory
from elastic_edu.models.registry import register
from elastic_edu.nn.dispatcher import DispatcherBlock
from elastic_edu.search_space import EXPERTS, HEADS, MEMORY, SHARED


class DispatcherEncoder(SequentialRecommender):
    """Shared body: config.layers dispatcher blocks over experts given by `initial_experts`."""

    objectives = ("cloze", "cut")
    default_objective = "cloze"
    uses = ("num_experts",)
    search_space = (*SHARED, HEADS, EXPERTS)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(
            DispatcherBlock(config.dim, config.heads, config.dropout) for _ in range(config.layers)
        )

    def readout(self, items: torch.Tensor) -> torch.Tensor:
        """items (b, n) -> (b, n') the last max_len - 1 items and a [MASK] to predict at."""
        items = items[:, -(self.config.max_len - 1) :] if self.config.max_len > 1 else items[:, :0]
        mask = torch.full_like(items[:, :1], self.mask_token)
        return torch.cat([items, mask], dim=1)

    def prepare(self, histories) -> torch.Tensor:
        return self.readout(super().prepare(histories))

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, objective: str) -> torch.Tensor:
        if objective == "cut":  # the history before the cut, then the [MASK] that predicts
            inputs = self.readout(inputs)
        return super().loss(inputs, targets, objective)

    def initial_experts(self, x: torch.Tensor, pad: torch.Tensor, num_experts: int | None = None):
        """x (b, n, d), pad (b, n) -> Retrieval: experts (b, e, d), slots and scores or None.

        num_experts: how many to retrieve, when the model retrieves them (None: the trained k).
        """
        raise NotImplementedError

    def encode(
        self, items: torch.Tensor, return_weights: bool = False, num_experts: int | None = None
    ) -> EncoderOutput:
        """items (b, n) left-padded ids -> EncoderOutput; per-layer weights when asked.

        num_experts: for ELASTIC, retrieve this many experts instead of the trained k.
        """
        x, pad = self.embed(items)
        r = self.initial_experts(x, pad, num_experts)
        experts = r.experts
        aggregate, dispatch = [], []
        for block in self.blocks:
            out = block(x, experts, pad, return_weights)
            x, experts = out.x, out.experts
            if return_weights:
                aggregate.append(out.aggregate)
                dispatch.append(out.dispatch)
        return EncoderOutput(hidden=self.norm(x), pad=pad, aggregate=aggregate,
                             dispatch=dispatch, slots=r.slots, slot_scores=r.scores,
                             balance=r.balance)  # fmt: skip


@register
class ELASTIC(DispatcherEncoder):
    """The paper's reading: k experts retrieved from a product-key memory read the whole history."""

    name = "elastic-bidir"
    uses = ("num_experts", "memory")
    search_space = (*SHARED, HEADS, EXPERTS, *MEMORY)  # its query reads the history: no context

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.memory = interest_memory(config)

    def initial_experts(self, x, pad, num_experts=None):
        # the retrieval query reads the embedded history
        return self.memory(x, pad, num_experts)


@register
class LDAOnly(DispatcherEncoder):
    """Ablation: k learned experts, the same for every user, read the whole history."""

    name = "lda-bidir"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.experts = LearnedExperts(config.num_experts, config.dim)

    def initial_experts(self, x, pad, num_experts=None):
        return self.experts(x.shape[0], num_experts)
