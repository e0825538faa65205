"""The raw interaction log every reader returns: one row per event, in file order."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Interactions:
    """An implicit-feedback log.

    users, items: raw ids as they appear in the source (int64 or str arrays), shape (events,).
    timestamps: float64, shape (events,). Row order is file order; it breaks timestamp ties.
    item_info: raw item id -> {"title": str, "genres": list[str]} where the source has it.
    labels: optional int64 ground-truth interest label per event (synthetic data).
    name: a short label for tables and plots (``ml-100k``, ``synthetic``...).
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    name: str = "interactions"
    item_info: dict = field(default_factory=dict)
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        if len(self.items) != n or len(self.timestamps) != n:
            raise ValueError(
                f"{self.name}: users ({n}), items ({len(self.items)}) and timestamps "
                f"({len(self.timestamps)}) must have the same length"
            )
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{self.name}: labels must have one entry per event")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def num_users(self) -> int:
        return len(np.unique(self.users))

    @property
    def num_items(self) -> int:
        return len(np.unique(self.items))

    def summary(self) -> dict:
        """Counts for a quick look: users, items, interactions."""
        return {"users": self.num_users, "items": self.num_items, "interactions": len(self)}
