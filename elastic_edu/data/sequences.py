"""From an interaction log to per-user item sequences, the leave-one-out split and batches.

Our decisions (see docs/DESIGN.md): every rating is an interaction; a user's items are
sorted by timestamp, ties keep file order; ids are remapped to 1..I with 0 as padding; the last
item is the test target, the second last the validation target, the rest trains; histories are
the last `max_len` items (left-truncated, left-padded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elastic_edu.data.interactions import Interactions


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
    """Split every user's sequence: last item tests, second last validates, the rest trains.

    Raises ValueError when no user has the 3 items this needs (nothing could be evaluated),
    saying how many users there are and how long the longest sequence is.
    """
    _check_evaluable(data)
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


def _check_evaluable(data: SequenceData) -> None:
    """Raise ValueError unless at least one user has 3 items (test, validation, one to train)."""
    longest = int(max((len(s) for s in data.sequences), default=0))
    if longest < 3:
        raise ValueError(
            f"{data.name}: no user has the 3 items leave-one-out needs (the last to test, the "
            f"second last to validate, at least one to train): {data.num_users} users, the "
            f"longest sequence has {longest} items; nothing could be evaluated"
        )
