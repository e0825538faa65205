"""ELASTIC (Deng et al., arXiv 2408.09380) and its "LDA only" ablation.

    ELASTIC:  embed history -> retrieve k experts from the product-key interest memory
              -> L dispatcher blocks (experts read the history, positions read the experts)
              -> LayerNorm -> state at the final position . item embeddings
    LDAOnly:  the same with k plain learned experts shared by every user (no memory).

The experts read the whole history, so the state at position t depends on items after t: both
models are not causal and train with the ``cut`` objective only (docs/DESIGN.md,
"Causality and the training objective as built").
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput, SequentialRecommender
from elastic_edu.nn.dispatcher import DispatcherBlock
from elastic_edu.nn.product_keys import ProductKeyMemory


class DispatcherEncoder(SequentialRecommender):
    """Shared body: config.layers dispatcher blocks over experts given by `initial_experts`."""

    objectives = ("cut",)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(
            DispatcherBlock(config.dim, config.heads, config.dropout) for _ in range(config.layers)
        )

    def initial_experts(
        self, x: torch.Tensor, pad: torch.Tensor, experts: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x (b, n, d), pad (b, n) -> experts (b, e, d), slots (b, e) or None, scores or None.

        experts: how many to retrieve, when the model retrieves them (None: config.experts).
        """
        raise NotImplementedError

    def encode(
        self, items: torch.Tensor, return_weights: bool = False, experts: int | None = None
    ) -> EncoderOutput:
        """items (b, n) left-padded ids -> EncoderOutput; per-layer weights when asked.

        experts: for ELASTIC, retrieve this many experts instead of the trained k (inspection).
        """
        x, pad = self.embed(items)
        experts, slots, scores = self.initial_experts(x, pad, experts)
        aggregate, dispatch = [], []
        for block in self.blocks:
            out = block(x, experts, pad, return_weights)
            x, experts = out.x, out.experts
            if return_weights:
                aggregate.append(out.aggregate)
                dispatch.append(out.dispatch)
        return EncoderOutput(
            hidden=self.norm(x),
            pad=pad,
            aggregate=aggregate,
            dispatch=dispatch,
            slots=slots,
            slot_scores=scores,
        )

    def memory_parameters(self) -> list[nn.Parameter]:
        """Parameters that want the memory learning rate (config.memory_lr_scale)."""
        return []


class ELASTIC(DispatcherEncoder):
    """Interest memory retrieval of k experts per user, then linear dispatcher attention."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.memory = ProductKeyMemory(
            config.dim, config.key_dim, config.subkeys, config.experts, config.candidates
        )

    def initial_experts(self, x, pad, experts=None):
        # the retrieval query reads the embedded history
        r = self.memory(x, pad, experts)
        return r.experts, r.slots, r.scores

    def memory_parameters(self) -> list[nn.Parameter]:
        return self.memory.memory_parameters()


class LDAOnly(DispatcherEncoder):
    """Ablation: k learned experts, the same for every user, no interest memory."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.experts = nn.Parameter(torch.randn(config.experts, config.dim) * config.dim**-0.5)

    def initial_experts(self, x, pad, experts=None):
        if experts is not None and experts != self.config.experts:
            raise ValueError("LDA-only has a fixed set of learned experts: experts must be None")
        return repeat(self.experts, "e d -> b e d", b=x.shape[0]), None, None
