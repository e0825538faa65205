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
    seqs: Sequence[Sequence[int] | np.ndarray], keep: int, width: int | None = None
) -> torch.Tensor:
    """The last `keep` items of each sequence, left-padded with 0 to `width` columns.

    Returns a LongTensor (b, width), or (b, the longest kept sequence) without `width`; a width
    below `keep` cuts the older items too. Raises ValueError for an empty history (there is
    nothing to encode).
    """
    if keep < 1:
        raise ValueError(f"keep={keep} must be at least 1")
    if len(seqs) == 0:
        raise ValueError("no histories to pad")
    kept = [np.asarray(s[-keep:], dtype=np.int64) for s in seqs]
    for j, s in enumerate(kept):
        if len(s) == 0:
            raise ValueError(f"history {j} is empty: a model needs at least one item to encode")
    n = width if width is not None else max(len(s) for s in kept)
    out = np.zeros((len(kept), n), dtype=np.int64)
    for j, s in enumerate(kept):
        s = s[-n:]
        out[j, n - len(s) :] = s
    return torch.from_numpy(out)


def is_int_id(value) -> bool:
    """Whether `value` is an integer id: a Python or NumPy integer, or a 0-d integer tensor."""
    if torch.is_tensor(value):
        return value.ndim == 0 and _integer_dtype(value.dtype)
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _integer_dtype(dtype: torch.dtype) -> bool:
    return not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)


def item_ids(values, num_items: int, what: str = "history") -> torch.Tensor:
    """`values` (a sequence, array or tensor of item ids) as an int64 tensor (n,) of ids in
    1..num_items: the one check of ids that come from a user (`recommend`, streaming).

    Only integer ids pass: Python and NumPy integers, integer arrays and tensors (an integer
    tensor stays on its device). Floats, bools and strings raise ValueError naming their
    positions and values (``3.7`` is not item 3, ``True`` not item 1); so do ids outside
    1..num_items (0 is padding, not an item). `what` names the argument in the message.
    """
    if torch.is_tensor(values) and _integer_dtype(values.dtype):
        ids = values.detach()
    elif isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        ids = torch.from_numpy(values.astype(np.int64))
    else:
        ids = torch.as_tensor(_integers(values, what), dtype=torch.long)
    if ids.ndim != 1:
        raise ValueError(f"{what} must be a 1-d sequence of item ids, got {tuple(ids.shape)}")
    ids = ids.long()
    outside = (ids < 1) | (ids > num_items)
    if outside.any():  # one check on the ids' device; the offenders only when there are some
        raise ValueError(f"{what} has item ids outside 1..{num_items}: {ids[outside][:5].tolist()}")
    return ids


def _integers(values, what: str) -> list[int]:
    """`values` as Python ints; anything but an integer raises ValueError naming it."""
    if torch.is_tensor(values):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray) and values.ndim != 1:
        raise ValueError(f"{what} must be a 1-d sequence of item ids, got {values.shape}")
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{what} must be a sequence of item ids, got {values!r}") from None
    bad = [(j, v) for j, v in enumerate(values) if not is_int_id(v)]
    if bad:
        shown = ", ".join(f"{what}[{j}]={v!r} ({type(v).__name__})" for j, v in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(f"{what} must hold integer item ids; not integers: {shown}{more}")
    return [int(v) for v in values]
