"""Inference for one new history: the top-k items, through the model's own `score`.

The same path evaluation ranks with (`Recommender.score`), so a recommendation is what the
reported metrics measured. Streaming models also carry a state event by event
(`elastic_edu.models.causal_dispatcher`: `start`, `step`, `score_state`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from elastic_edu.histories import is_int_id, item_ids
from elastic_edu.models.base import check_finite


def _few_left(left: int, k: int, num_items: int, history: np.ndarray, excluded: bool) -> str:
    """Why `recommend` returns `left` < `k` items: how many the history and -inf scores took."""
    in_history = len(np.unique(history)) if excluded else 0
    scored_out = num_items - left - in_history
    why = [f"excluding the {in_history} in the history"] if in_history else []
    why += [f"{scored_out} the model scores -inf"] if scored_out else []
    return (
        f"only {left} of the {num_items} items are left to recommend ({', '.join(why)}); "
        f"returning {left}, not k={k}"
    )


@torch.no_grad()
def recommend(
    model, history, k: int = 10, *, exclude_history: bool = True
) -> list[tuple[int, float]]:
    """Top-`k` (item id, score) for one new history (a sequence of integer item ids 1..I).

    exclude_history drops items the user already has; when fewer than `k` items are left to
    recommend, a warning says how many and those are returned. Raises ValueError for an empty
    history, ids that are not integers (floats, bools, strings) or outside the
    catalogue, and a `k` that is not an integer in 1..I.
    """
    num_items = model.item_repr().shape[0] - 1
    history = item_ids(history, num_items).cpu().numpy()
    if history.size == 0:
        raise ValueError("history is empty: give at least one item id")
    if not is_int_id(k) or not 1 <= k <= num_items:
        raise ValueError(f"k={k!r} must be an integer in 1..{num_items}")
    was_training = model.training
    model.eval()
    try:
        scores = model.score([history])
    finally:
        model.train(was_training)
    check_finite(scores, " to this history")
    scores = scores[0]
    if exclude_history:
        scores[torch.as_tensor(history, device=scores.device)] = -math.inf
    left = int(torch.isfinite(scores).sum())
    if left < k:
        warnings.warn(_few_left(left, k, num_items, history, exclude_history), stacklevel=3)
        k = left
    top = scores.topk(int(k))
    return [(int(i), float(s)) for i, s in zip(top.indices.tolist(), top.values.tolist())]
