"""Popularity: score every item by its training count, the same for every user (a floor)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from elastic_edu.data.sequences import PAD


class Popularity(nn.Module):
    """Counts items in the training sequences. Exposes the same scoring API as the models."""

    objectives: tuple[str, ...] = ()

    def __init__(self, num_items: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(num_items + 1))

    @classmethod
    def from_train(cls, train: list[np.ndarray], num_items: int) -> Popularity:
        model = cls(num_items)
        counts = np.bincount(np.concatenate(train), minlength=num_items + 1).astype(np.float32)
        counts[PAD] = 0.0
        model.counts.copy_(torch.from_numpy(counts))
        return model

    @property
    def device(self) -> torch.device:
        return self.counts.device

    def user_repr(self, items: torch.Tensor) -> torch.Tensor:
        """(b, 1) of ones: every user gets the same ranking."""
        return torch.ones(items.shape[0], 1, device=items.device)

    def item_repr(self) -> torch.Tensor:
        """(i, 1): the training count of each item."""
        return self.counts[:, None]

    def score(self, items: torch.Tensor) -> torch.Tensor:
        scores = self.user_repr(items) @ self.item_repr().T
        scores[:, PAD] = float("-inf")
        return scores
