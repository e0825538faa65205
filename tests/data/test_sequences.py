from collections import Counter

import numpy as np
import pytest

from elastic_edu.data.interactions import Interactions
from elastic_edu.data.sequences import build_sequences, kcore_filter, leave_one_out


def _log(users, items, times, **kw):
    return Interactions(np.array(users), np.array(items), np.array(times, dtype=np.float64), **kw)


def test_ties_keep_file_order_and_time_sorts():
    inter = _log(
        users=[7, 3, 7, 7, 3, 7],
        items=[30, 5, 10, 20, 6, 40],
        times=[100, 9, 100, 100, 1, 50],
    )
    data = build_sequences(inter)
    raw = [data.item_ids[s].tolist() for s in data.sequences]
    assert data.user_ids.tolist() == [3, 7]
    assert raw == [[6, 5], [40, 30, 10, 20]]  # user 7: t=50, then the three t=100 in file order


def test_ml100k_ties_decide_targets(ml100k_dir):
    from elastic_edu.data.atomic import read_atomic

    inter = read_atomic(ml100k_dir)
    data = build_sequences(inter)
    assert data.summary() == {"users": 943, "items": 1682, "interactions": 100000}
    # reference: per user, a Python stable sort by timestamp of the file rows
    rows = {}
    for u, i, t in zip(inter.users.tolist(), inter.items.tolist(), inter.timestamps.tolist()):
        rows.setdefault(u, []).append((t, i))
    for row in (0, 100, 942):
        u = data.user_ids[row]
        expected = [i for _, i in sorted(rows[u], key=lambda r: r[0])]
        assert data.item_ids[data.sequences[row]].tolist() == expected


def test_ids_remapped_with_zero_padding():
    inter = _log(users=["b", "a", "b"], items=["z", "x", "y"], times=[1, 2, 3])
    data = build_sequences(inter)
    assert data.item_ids[0] is None and data.item_ids[1:].tolist() == ["x", "y", "z"]
    assert data.num_items == 3
    flat = np.concatenate(data.sequences)
    assert flat.min() >= 1 and flat.max() == 3 and flat.dtype == np.int64
    assert [data.item_ids[s].tolist() for s in data.sequences] == [["x"], ["z", "y"]]
    assert data.item_titles == ["", "", "", ""] and data.item_genres[0] == []


def test_item_metadata_follows_remapping():
    info = {20: {"title": "B", "genres": ["g"]}, 10: {"title": "A", "genres": []}}
    data = build_sequences(_log([1, 1], [20, 10], [1, 2], item_info=info))
    assert data.item_titles[1:] == ["A", "B"] and data.item_genres[2] == ["g"]


def test_empty_log_raises():
    with pytest.raises(ValueError, match="empty"):
        build_sequences(_log([], [], []))


def _kcore_reference(pairs, k):
    """Slow reference: drop users and items under k interactions until nothing changes."""
    pairs = list(pairs)
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if users[u] >= k and items[i] >= k]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kcore_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    n = 400
    users, items = rng.integers(0, 60, n), rng.zipf(1.5, n) % 80
    inter = _log(users, items, np.arange(n))
    expected = _kcore_reference(zip(users.tolist(), items.tolist()), k)
    if not expected:
        with pytest.raises(ValueError, match="removed every"):
            kcore_filter(inter, k)
        return
    out = kcore_filter(inter, k)
    assert list(zip(out.users.tolist(), out.items.tolist())) == expected  # order kept
    assert min(Counter(out.users.tolist()).values()) >= k
    assert min(Counter(out.items.tolist()).values()) >= k


def test_kcore_cascades():
    # item 9 has one rating; dropping it leaves user 2 with one rating, which drops item 8 too
    inter = _log([1, 1, 2, 2, 3, 3], [7, 8, 8, 9, 7, 8], [0, 1, 2, 3, 4, 5])
    out = kcore_filter(inter, 2)
    assert list(zip(out.users.tolist(), out.items.tolist())) == [(1, 7), (1, 8), (3, 7), (3, 8)]
    assert kcore_filter(inter, 1) is inter


def _data(lengths, seed=0):
    """SequenceData whose items are all distinct, so a position is known from its item."""
    users = np.repeat(np.arange(len(lengths)), lengths)
    items = np.random.default_rng(seed).permutation(len(users)) + 100
    return build_sequences(_log(users, items, np.arange(len(users))))


def test_leave_one_out():
    data = _data([5, 2, 3, 1, 8])
    split = leave_one_out(data)
    assert split.skipped_users == 2 and split.num_items == data.num_items
    assert split.test.users.tolist() == [0, 2, 4] == split.valid.users.tolist()
    for j, u in enumerate(split.test.users):
        s = data.sequences[u]
        np.testing.assert_array_equal(split.train[u], s[:-2])
        np.testing.assert_array_equal(split.valid.histories[j], s[:-2])
        np.testing.assert_array_equal(split.test.histories[j], s[:-1])  # holds the valid item
        assert split.valid.targets[j] == s[-2] and split.test.targets[j] == s[-1]
        assert s[-1] not in split.train[u] and s[-2] not in split.train[u]
    for u in (1, 3):  # too short to evaluate: all their items train
        np.testing.assert_array_equal(split.train[u], data.sequences[u])


@pytest.mark.parametrize("lengths", [[2, 1, 2], [1]])
def test_leave_one_out_without_an_evaluable_user(lengths):
    # used to fail only after a training epoch, in torch.cat of an empty list
    with pytest.raises(ValueError) as err:
        leave_one_out(_data(lengths))
    message = str(err.value)
    assert "no user has the 3 items leave-one-out needs" in message
    assert f"{len(lengths)} users" in message
    assert f"the longest sequence has {max(lengths)} items" in message
    assert leave_one_out(_data([*lengths, 3])).test.users.tolist() == [len(lengths)]
