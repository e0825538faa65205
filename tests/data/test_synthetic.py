import time

import numpy as np
import pytest

from elastic_edu.data import build_sequences, leave_one_out, load_interactions
from elastic_edu.data.synthetic import (
    item_interest_array,
    item_interests,
    long_range_task,
    planted_interests,
    thin_noise,
)


def _arrays(inter):
    return inter.users, inter.items, inter.timestamps, inter.labels


def test_seeded_determinism():
    a, b = planted_interests(seed=3), planted_interests(seed=3)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert a.item_info == b.item_info
    c = planted_interests(seed=4)
    assert not np.array_equal(a.items, c.items)


def test_labels_match_item_clusters():
    inter = planted_interests(num_users=50, num_items=97, num_interests=6, seq_len=80)
    lookup = item_interests(inter.item_info)
    assert len(lookup) == 97
    np.testing.assert_array_equal([lookup[i] for i in inter.items.tolist()], inter.labels)
    sizes = np.bincount(list(lookup.values()), minlength=6)
    assert sizes.max() - sizes.min() <= 1  # a partition into near-equal clusters
    assert inter.labels.dtype == np.int64 and set(inter.labels.tolist()) <= set(range(6))


def test_shapes_lengths_and_increasing_time():
    inter = planted_interests(num_users=30, seq_len=50, min_len=10, seed=1)
    counts = np.bincount(inter.users)
    assert counts.min() >= 10 and counts.max() <= 50 and len(counts) == 30
    assert np.all(np.diff(inter.users) >= 0)  # users in blocks
    same = inter.users[1:] == inter.users[:-1]
    assert np.all(np.diff(inter.timestamps)[same] > 0)


def test_few_active_interests_and_switch_rate():
    inter = planted_interests(num_users=200, seq_len=100, num_interests=8, switch_prob=0.1)
    for u in range(200):
        assert 2 <= len(np.unique(inter.labels[inter.users == u])) <= 4
    same = inter.users[1:] == inter.users[:-1]
    change = (inter.labels[1:] != inter.labels[:-1])[same].mean()
    assert 0.08 < change < 0.12  # every switch changes the interest


def test_returns_go_to_the_least_recently_visited_interest():
    # return_prob=1: a user cycles through the active interests in a fixed order
    inter = planted_interests(num_users=40, seq_len=200, switch_prob=0.3, return_prob=1.0, seed=2)
    for u in range(40):
        labels = inter.labels[inter.users == u]
        segments = labels[np.r_[True, labels[1:] != labels[:-1]]]
        period = len(np.unique(segments))
        np.testing.assert_array_equal(segments[period:], segments[:-period])


def test_popularity_skew():
    flat = planted_interests(num_users=100, num_items=80, num_interests=4, popularity_skew=0.0)
    steep = planted_interests(num_users=100, num_items=80, num_interests=4, popularity_skew=2.0)
    top = lambda inter: np.bincount(inter.items).max() / len(inter)  # noqa: E731
    assert top(flat) < 0.03 and top(steep) > 0.1  # about 0.0125 and 0.16


def test_no_switching_keeps_one_interest():
    inter = planted_interests(num_users=20, seq_len=60, switch_prob=0.0)
    for u in range(20):
        assert len(np.unique(inter.labels[inter.users == u])) == 1


def test_long_histories_are_fast():
    start = time.perf_counter()
    inter = planted_interests(num_users=64, num_items=2000, num_interests=16, seq_len=16384)
    assert time.perf_counter() - start < 2.0
    assert len(inter) == 64 * 16384


def test_sequences_keep_labels_aligned():
    data = build_sequences(planted_interests(num_users=20, seq_len=40))
    per_item = item_interest_array(data.item_genres)
    assert per_item[0] == -1 and len(per_item) == data.num_items + 1
    for seq, labels in zip(data.sequences, data.labels):
        np.testing.assert_array_equal(per_item[seq], labels)


def test_load_interactions_synthetic_kwargs():
    inter = load_interactions("synthetic", num_users=7, seq_len=12, seed=5)
    assert inter.summary()["users"] == 7 and len(inter) == 84
    assert inter.name == "synthetic"


@pytest.mark.parametrize(
    "kwargs",
    [{"num_interests": 0}, {"num_items": 3, "num_interests": 4}, {"switch_prob": 1.5},
     {"min_len": 0}, {"min_len": 200, "seq_len": 100}],
)  # fmt: skip
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        planted_interests(**kwargs)


def test_long_range_task_answer_lies_distance_back():
    p, distance = 5, 20
    inter = long_range_task(num_users=30, num_pairs=p, distance=distance, episodes=3, seed=1)
    split = leave_one_out(build_sequences(inter))
    assert len(split.test) == 30
    data = build_sequences(inter)
    for u, seq in enumerate(data.sequences):
        raw = data.item_ids[seq].astype(np.int64)
        key, answer = raw[-1 - distance], raw[-1]
        assert key < p and answer == p + key  # the test target is the key's partner
        assert np.all(raw[-distance:-1] >= 2 * p)  # nothing nearer hints at it
        assert split.test.targets[split.test.users == u] == seq[-1]
    labels = inter.labels.reshape(30, 3, distance + 1)
    np.testing.assert_array_equal(labels[:, :, 0], labels[:, :, -1])
    assert np.all(labels[:, :, 1:-1] == -1)
    assert item_interests(inter.item_info)[p + 2] == 2


def test_long_range_task_is_seeded():
    a, b = long_range_task(seed=9), long_range_task(seed=9)
    for x, y in zip(_arrays(a), _arrays(b)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.items, long_range_task(seed=10).items)


def test_thin_noise_keeps_signal_in_order_and_drops_noise_at_rate():
    rng = np.random.default_rng(0)
    window = np.arange(4000)
    is_noise = np.ones(4000, dtype=bool)
    is_noise[[0, 1500, 3999]] = False  # key, answer, key
    np.testing.assert_array_equal(thin_noise(window, is_noise, 1.0, rng), window)
    kept = thin_noise(window, is_noise, 0.25, rng)
    assert {0, 1500, 3999} <= set(kept.tolist())
    assert np.all(np.diff(kept) > 0)  # order kept
    assert abs((len(kept) - 3) / 3997 - 0.25) < 0.03  # about a quarter of the noise survives
    # thinning shrinks the key's distance by about `keep`: the task, scaled down
    distance = len(kept) - 1 - np.searchsorted(kept, 1500)
    assert 0.2 * 2499 < distance < 0.3 * 2499
    sparse = thin_noise(window, is_noise, 1e-9, rng)
    np.testing.assert_array_equal(sparse, [0, 1500, 3999])


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5])
def test_thin_noise_rejects_bad_keep(keep):
    with pytest.raises(ValueError, match="keep"):
        thin_noise(np.arange(3), np.ones(3, dtype=bool), keep, np.random.default_rng(0))


def test_thin_noise_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="is_noise"):
        thin_noise(np.arange(3), np.ones(4, dtype=bool), 0.5, np.random.default_rng(0))


def test_thin_noise_never_empties_a_window():
    """A short window of noise alone (SASRec's window in the long-range study) keeps its last
    event, so the model always has a history to read."""
    rng = np.random.default_rng(0)
    window = np.arange(1, 6)
    for _ in range(200):
        kept = thin_noise(window, np.ones(5, dtype=bool), 1 / 32, rng)
        assert len(kept) >= 1 and kept[-1] == 5
