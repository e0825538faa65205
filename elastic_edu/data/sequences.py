"""From an interaction log to per-user item sequences, the leave-one-out split and batches.

Our decisions (see docs/DESIGN.md): every rating is an interaction; a user's items are
sorted by timestamp, ties keep file order; ids are remapped to 1..I with 0 as padding; the last
item is the test target, the second last the validation target, the rest trains; histories are
the last `max_len` items (left-truncated, left-padded).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from elastic_edu.data.interactions import Interactions

PAD = 0


@dataclass
class SequenceData:
    """Time-ordered item sequences, one per user, with ids remapped to 1..I (0 is padding).

    sequences[u]: int64 array of item ids for user row u.
    user_ids[u]: the raw id of user row u. item_ids[j]: the raw id of item j (item_ids[0] is None).
    item_titles[j], item_genres[j]: metadata per item id (``""`` / ``[]`` when unknown).
    labels[u]: planted interest label per event of user u (synthetic data), else None.
    """

    name: str
    sequences: list[np.ndarray]
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_titles: list[str]
    item_genres: list[list[str]]
    labels: list[np.ndarray] | None = None

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sequences], dtype=np.int64)

    def summary(self) -> dict:
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
        }


def kcore_filter(inter: Interactions, k: int) -> Interactions:
    """Keep only users and items with at least `k` interactions, repeated until stable."""
    if k <= 1:
        return inter
    keep = np.ones(len(inter), dtype=bool)
    while True:
        _, u_inv, u_cnt = np.unique(inter.users[keep], return_inverse=True, return_counts=True)
        _, i_inv, i_cnt = np.unique(inter.items[keep], return_inverse=True, return_counts=True)
        ok = (u_cnt[u_inv] >= k) & (i_cnt[i_inv] >= k)
        if ok.all():
            break
        idx = np.flatnonzero(keep)
        keep[idx[~ok]] = False
        if not keep.any():
            raise ValueError(f"{inter.name}: {k}-core filtering removed every interaction")
    labels = None if inter.labels is None else inter.labels[keep]
    return Interactions(
        users=inter.users[keep],
        items=inter.items[keep],
        timestamps=inter.timestamps[keep],
        name=inter.name,
        item_info=inter.item_info,
        labels=labels,
    )


def build_sequences(inter: Interactions, kcore: int = 0) -> SequenceData:
    """Group a log into time-ordered per-user sequences with items remapped to 1..I.

    Ties in timestamp keep file order (a stable sort). Items are numbered in the sorted order of
    their raw ids; users likewise. Optional `kcore` filtering first.
    """
    if len(inter) == 0:
        raise ValueError(f"{inter.name}: the interaction log is empty")
    inter = kcore_filter(inter, kcore)
    user_raw, user_code = np.unique(inter.users, return_inverse=True)
    item_raw, item_code = np.unique(inter.items, return_inverse=True)
    item_code = item_code.astype(np.int64) + 1  # 0 is padding
    # stable: user, then timestamp, then file order
    order = np.lexsort((np.arange(len(inter)), inter.timestamps, user_code))
    user_sorted = user_code[order]
    bounds = np.flatnonzero(np.diff(user_sorted)) + 1
    sequences = np.split(item_code[order], bounds)
    labels = None
    if inter.labels is not None:
        labels = np.split(np.asarray(inter.labels, dtype=np.int64)[order], bounds)
    item_ids = np.empty(len(item_raw) + 1, dtype=object)
    item_ids[0] = None
    item_ids[1:] = item_raw
    titles, genres = [""], [[]]
    for raw in item_raw:
        info = inter.item_info.get(_plain(raw), {})
        titles.append(str(info.get("title", "")))
        genres.append(list(info.get("genres", [])))
    return SequenceData(
        name=inter.name,
        sequences=[s.astype(np.int64) for s in sequences],
        user_ids=user_raw,
        item_ids=item_ids,
        item_titles=titles,
        item_genres=genres,
        labels=labels,
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class EvalSet:
    """Histories and the one held-out target that follows each (leave-one-out)."""

    histories: list[np.ndarray]
    targets: np.ndarray
    users: np.ndarray  # row index into SequenceData.sequences

    def __len__(self) -> int:
        return len(self.targets)


@dataclass
class LOOSplit:
    """Leave-one-out split. `train[u]` is what user u trains on (all users).

    Users with at least 3 items: train = s[:-2]; valid = s[:-2] -> s[-2]; test = s[:-1] -> s[-1]
    (the test history includes the validation item). Users with fewer than 3 items are not
    evaluated; all their items train.
    """

    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    num_items: int
    skipped_users: int = 0


def leave_one_out(data: SequenceData) -> LOOSplit:
    """Split every user's sequence: last item tests, second last validates, the rest trains."""
    train, vh, vt, th, tt, users = [], [], [], [], [], []
    skipped = 0
    for u, seq in enumerate(data.sequences):
        if len(seq) < 3:
            train.append(seq)
            skipped += 1
            continue
        train.append(seq[:-2])
        vh.append(seq[:-2])
        vt.append(seq[-2])
        th.append(seq[:-1])
        tt.append(seq[-1])
        users.append(u)
    users = np.array(users, dtype=np.int64)
    return LOOSplit(
        train=train,
        valid=EvalSet(vh, np.array(vt, dtype=np.int64), users),
        test=EvalSet(th, np.array(tt, dtype=np.int64), users.copy()),
        num_items=data.num_items,
        skipped_users=skipped,
    )


def pad_left(seqs: list[np.ndarray], max_len: int, width: int | None = None) -> torch.Tensor:
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


def all_position_batches(
    train: list[np.ndarray], max_len: int, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Causal training on every position: each window of up to max_len+1 items is a sample.

    Inputs are the window minus its last item, targets the window minus its first item, so
    position t predicts the item after it. A sequence longer than max_len+1 is cut into
    consecutive windows, ending at its last item, so every training item but the first is a
    target exactly once per epoch; the windows are shuffled.
    Yields (inputs (b, n), targets (b, n)), 0 where padded.
    """
    windows = []
    for seq in train:
        for end in range(len(seq), 1, -max_len):  # window targets: seq[end - max_len : end]
            windows.append(seq[max(0, end - max_len - 1) : end])
    order = rng.permutation(len(windows))
    for start in range(0, len(order), batch_size):
        chunk = [windows[j] for j in order[start : start + batch_size]]
        yield pad_left([w[:-1] for w in chunk], max_len), pad_left([w[1:] for w in chunk], max_len)


def cut_samples(
    train: list[np.ndarray], cuts_per_user: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Draw (user, cut) pairs: history = train[user][:cut], target = train[user][cut].

    Cuts are uniform over 1..len-1, so the history is never empty and the target is never
    part of its own history. Users with fewer than two training items give no sample.
    """
    samples = []
    for u, seq in enumerate(train):
        if len(seq) < 2:
            continue
        cuts = rng.integers(1, len(seq), size=cuts_per_user)
        samples.extend((u, int(t)) for t in cuts)
    return samples


def cut_batches(
    train: list[np.ndarray],
    max_len: int,
    batch_size: int,
    cuts_per_user: int,
    rng: np.random.Generator,
    sort_by_length: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Random-cut training (history -> next item), for non-causal encoders such as ELASTIC.

    With `sort_by_length`, samples of similar history length share a batch (less padding);
    batch order is shuffled. Yields (inputs (b, n), targets (b,)).
    """
    samples = cut_samples(train, cuts_per_user, rng)
    order = rng.permutation(len(samples))
    if sort_by_length:
        keys = np.array([min(samples[j][1], max_len) for j in order])
        order = order[np.argsort(keys, kind="stable")]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    for bi in rng.permutation(len(batches)):
        chunk = [samples[j] for j in batches[bi]]
        hist = [train[u][:t] for u, t in chunk]
        target = np.array([train[u][t] for u, t in chunk], dtype=np.int64)
        yield pad_left(hist, max_len), torch.from_numpy(target)
