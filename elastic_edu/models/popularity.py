"""Popularity: score every item by its training count, the same for every user (a floor)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from einops import rearrange

from elastic_edu.config import ModelConfig
from elastic_edu.histories import PAD
from elastic_edu.models.base import Recommender
from elastic_edu.models.registry import register


@register
class Popularity(Recommender):
    """Training counts: every user gets the same ranking (the floor any model must beat)."""

    name = "popularity"

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.register_buffer("counts", torch.zeros(config.num_items + 1))

    def count(self, train: Sequence[np.ndarray]) -> Popularity:
        """Set the scores to the item counts of the training sequences; returns self."""
        counts = np.bincount(np.concatenate(train), minlength=self.config.num_items + 1)
        counts = counts.astype(np.float32)
        counts[PAD] = 0.0
        self.counts.copy_(torch.from_numpy(counts[: self.config.num_items + 1]))
        return self

    def final_state(self, items: torch.Tensor) -> torch.Tensor:
        """(b, 1) of ones: every user gets the same ranking."""
        return torch.ones(items.shape[0], 1, device=items.device)

    def item_repr(self) -> torch.Tensor:
        """(i, 1): the training count of each item."""
        return rearrange(self.counts, "i -> i 1")
