"""What every sequential recommender here shares: embeddings, next-item scores, the loss.

A model encodes a left-padded history (b, n) of item ids into states (b, n, d); the state at the
final position is the user's representation, and the next-item score of item i is its dot product
with the (tied) item embedding: scores = user (b, d) . items (i, d).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.data.sequences import PAD


@dataclass
class EncoderOutput:
    """What a forward pass returns; the weights only when asked for (for plots and widgets).

    hidden: (b, n, d) states. pad: (b, n) True at padding.
    attention: per layer (b, h, n, n) causal attention weights (SASRec).
    aggregate: per layer (b, h, e, n) expert-reads-history weights (ELASTIC, LDA).
    dispatch: per layer (b, h, n, e) position-reads-experts weights (ELASTIC, LDA).
    slots, slot_scores: (b, e) retrieved memory slots and their scores (ELASTIC).
    """

    hidden: torch.Tensor
    pad: torch.Tensor
    attention: list[torch.Tensor] = field(default_factory=list)
    aggregate: list[torch.Tensor] = field(default_factory=list)
    dispatch: list[torch.Tensor] = field(default_factory=list)
    slots: torch.Tensor | None = None
    slot_scores: torch.Tensor | None = None


class SequentialRecommender(nn.Module):
    """Base class: item and position embeddings, encoder (subclass), tied output scores.

    Positions are counted from the end of the history (0 = most recent item), so left padding
    and left truncation never change which embedding an item receives.
    """

    objectives: tuple[str, ...] = ("cut",)

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.num_items < 1:
            raise ValueError("config.num_items must be set to the catalogue size (>= 1)")
        self.config = config
        self.item_emb = nn.Embedding(config.num_items + 1, config.dim, padding_idx=PAD)
        self.pos_emb = nn.Embedding(config.max_len, config.dim)
        self.drop = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    @property
    def device(self) -> torch.device:
        return self.item_emb.weight.device

    def embed(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (b, n) -> inputs (b, n, d) and pad mask (b, n)."""
        b, n = items.shape
        if n > self.config.max_len:
            items = items[:, -self.config.max_len :]
            n = self.config.max_len
        pad = items == PAD
        if pad.all(dim=1).any():
            raise ValueError("a history in the batch is empty (all padding)")
        pos = torch.arange(n - 1, -1, -1, device=items.device)  # distance from the end
        x = self.item_emb(items) * self.config.dim**0.5 + self.pos_emb(pos)
        x = self.drop(x) * rearrange(~pad, "b n -> b n 1")
        return x, pad

    def encode(self, items: torch.Tensor, return_weights: bool = False) -> EncoderOutput:
        """items (b, n) left-padded ids -> EncoderOutput with hidden (b, n, d)."""
        raise NotImplementedError

    def user_repr(self, items: torch.Tensor) -> torch.Tensor:
        """items (b, n) -> (b, d): the state at the final position (the latest item)."""
        return self.encode(items).hidden[:, -1]

    def item_repr(self) -> torch.Tensor:
        """(i, d): one vector per item id, row 0 (padding) included."""
        return self.item_emb.weight

    def score(self, items: torch.Tensor) -> torch.Tensor:
        """items (b, n) -> next-item scores (b, i); padding id 0 scores -inf."""
        scores = einsum(self.user_repr(items), self.item_repr(), "b d, i d -> b i")
        scores[:, PAD] = float("-inf")
        return scores

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, objective: str) -> torch.Tensor:
        """Full-softmax cross-entropy over all items.

        objective ``all``: targets (b, n), one next item per position (causal models only).
        objective ``cut``: targets (b,), the item after each history.
        """
        if objective not in self.objectives:
            raise ValueError(self._objective_error(objective))
        items = self.item_repr()
        if objective == "all":
            hidden = self.encode(inputs).hidden
            logits = einsum(hidden, items, "b n d, i d -> b n i")
            logits = rearrange(logits, "b n i -> (b n) i")
            targets = rearrange(targets, "b n -> (b n)")
        else:
            logits = einsum(self.encode(inputs).hidden[:, -1], items, "b d, i d -> b i")
        logits = logits.float()
        logits[:, PAD] = float("-inf")
        return F.cross_entropy(logits, targets, ignore_index=PAD)

    def _objective_error(self, objective: str) -> str:
        if objective == "all":
            return (
                f"{type(self).__name__} is not causal: its experts read the whole history, so "
                "the state at position t already saw the items after t. Training every position "
                "would leak the future. Use objective='cut' (history -> next item)."
            )
        return f"objective={objective!r}: {type(self).__name__} supports {self.objectives}"
