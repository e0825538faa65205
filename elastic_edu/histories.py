"""Item ids and histories, shared by data, models and metrics (the ground floor).

Items are numbered 1..I; id 0 is padding. A model trained with the cloze objective also knows a
[MASK] token, id I + 1, which never appears in data. A history is a time-ordered sequence of
item ids; batches hold histories left-padded to one width, the latest item last.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

PAD = 0


def mask_id(num_items: int) -> int:
    """The [MASK] token of a catalogue of `num_items` items: one past the last item."""
    return num_items + 1


def pad_left(
    seqs: Sequence[Sequence[int] | np.ndarray], max_len: int, width: int | None = None
) -> torch.Tensor:
    """Left-truncate each sequence to its last `max_len` items and left-pad with 0.

    Returns a LongTensor (b, n) with n = `width` or the longest kept sequence.
    Raises ValueError for an empty history (there is nothing to encode).
    """
    if max_len < 1:
        raise ValueError(f"max_len={max_len} must be at least 1")
    if len(seqs) == 0:
        raise ValueError("no histories to pad")
    kept = [np.asarray(s[-max_len:], dtype=np.int64) for s in seqs]
    for j, s in enumerate(kept):
        if len(s) == 0:
            raise ValueError(f"history {j} is empty: a model needs at least one item to encode")
    n = width if width is not None else max(len(s) for s in kept)
    out = np.zeros((len(kept), n), dtype=np.int64)
    for j, s in enumerate(kept):
        s = s[-n:]
        out[j, n - len(s) :] = s
    return torch.from_numpy(out)
