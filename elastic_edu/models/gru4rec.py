"""GRU4Rec: session-based recommendation with recurrent networks (Hidasi et al., ICLR 2016).

Item embeddings -> dropout -> GRU -> linear -> tied next-item scores, trained on every position
with full-softmax cross-entropy (as RecBole trains it). Linear in the history length, like
ELASTIC, and the model a practitioner would try first on short, dense data.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import CausalRecommender, EncoderOutput
from elastic_edu.models.registry import register
from elastic_edu.models.search_space import SHARED


def align_right(items: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each row of x (b, n, ...) left by shift (b,): left padding becomes right padding."""
    n = items.shape[1]
    index = (torch.arange(n, device=items.device) + rearrange(shift, "b -> b 1")) % n  # (b, n)
    if items.dim() == 3:
        index = repeat(index, "b n -> b n d", d=items.shape[2])
    return items.gather(1, index)


@register
class GRU4Rec(CausalRecommender):
    """GRU over the history (Hidasi et al. 2016): the recurrent linear-time baseline."""

    name = "gru4rec"
    positions = False  # the recurrence knows the order
    final_norm = False  # as RecBole's: GRU -> dropout -> linear
    search_space = SHARED  # dim is the GRU's hidden size, layers its stacked GRUs

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.gru = nn.GRU(config.dim, config.dim, num_layers=config.layers, batch_first=True,
                          dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.out = nn.Linear(config.dim, config.dim)

    def encode(self, items: torch.Tensor, return_weights: bool = False) -> EncoderOutput:
        """items (b, n) left-padded -> hidden (b, n, d); padded positions hold zeros.

        The GRU runs over each history from its first item (padding never enters the state).
        """
        x, pad = self.embed(items)
        lengths = (~pad).sum(dim=1)  # (b,)
        shift = pad.shape[1] - lengths
        packed = nn.utils.rnn.pack_padded_sequence(
            align_right(x, shift), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        hidden = align_right(out, -shift)  # back to left padding
        hidden = self.out(self.drop(hidden)) * rearrange(~pad, "b n -> b n 1")
        return EncoderOutput(hidden=hidden, pad=pad)
