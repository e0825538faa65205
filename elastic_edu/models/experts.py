"""Where a dispatcher model's k experts come from: learned (LDA-only) or retrieved (ELASTIC).

Both return a `Retrieval` (elastic_edu.nn.product_keys): the experts (b, e, d), and for the
memory the slots, their scores and the sub-key balance loss.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.nn.product_keys import ProductKeyMemory, Retrieval


class LearnedExperts(nn.Module):
    """k learned experts shared by every user: the LDA-only ablation (no memory)."""

    def __init__(self, num_experts: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_experts, dim) * dim**-0.5)

    def forward(self, batch: int, num_experts: int | None = None) -> Retrieval:
        """The same k experts for each of `batch` users: experts (b, e, d)."""
        if num_experts is not None and num_experts != self.weight.shape[0]:
            raise ValueError(
                "LDA-only has a fixed set of learned experts: num_experts must be None"
            )
        return Retrieval(experts=repeat(self.weight, "e d -> b e d", b=batch))


def interest_memory(config: ModelConfig) -> ProductKeyMemory:
    """The product-key interest memory a model's config describes (k experts, M = m*m slots)."""
    m = config.memory
    return ProductKeyMemory(config.dim, m.key_dim, m.subkeys, config.num_experts, m.candidates)
