"""Synthetic interaction logs with known structure: planted interests and a long-range recall task.

Our decision (docs/DESIGN.md, Data sets): real logs carry no ground truth about interests,
so these generators plant it. `planted_interests` makes users who move between a few latent
interests (item clusters), returning to old ones after long gaps, and records the interest of
every event in ``Interactions.labels``: a notebook can compare ELASTIC's expert assignments
with the planted labels (e.g. NMI). It runs anywhere and scales N to 16k+ for the cost curves.
`long_range_task` puts the only signal for the last item far back in the history.
"""

from __future__ import annotations

import numpy as np

from elastic_edu.data.interactions import Interactions


def _zipf_sampler(members: list[np.ndarray], skew: float):
    """Sample from each cluster with weight rank**-skew; returns draw(labels, u) -> raw items."""
    order = np.concatenate(members)
    cdfs = []
    for c, m in enumerate(members):
        w = np.arange(1, len(m) + 1, dtype=np.float64) ** -skew
        cdfs.append(c + np.cumsum(w) / w.sum())  # cluster c's cdf lies in (c, c+1]
    cdf = np.concatenate(cdfs)
    ends = np.cumsum([len(m) for m in members])

    def draw(labels: np.ndarray, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(cdf, labels + u, side="right")
        return order[np.minimum(idx, ends[labels] - 1)]  # guard against rounding at c+1

    return draw


def planted_interests(
    num_users: int = 200,
    num_items: int = 500,
    num_interests: int = 8,
    seq_len: int = 100,
    *,
    min_len: int | None = None,
    switch_prob: float = 0.1,
    return_prob: float = 0.5,
    gap: float = 60.0,
    popularity_skew: float = 1.0,
    seed: int = 0,
    name: str = "synthetic",
) -> Interactions:
    """Users moving between a few planted interests; ``labels`` holds the interest of each event.

    Items 0..num_items-1 are dealt at random into `num_interests` clusters of near-equal size
    (``item_info[i] = {"title": "item i", "genres": ["interest c"]}``; see `item_interests`).
    Each user has 2-4 active interests (at most `num_interests`). A user stays in the current
    interest and, after each event, switches with probability `switch_prob`: with probability
    `return_prob` to the active interest visited least recently (a return after a long gap),
    else to a random other active one. Within an interest, items are drawn with Zipf-like
    popularity (weight rank**-skew, `popularity_skew` = 0 is uniform). Lengths are `seq_len`,
    or uniform in [min_len, seq_len]. Timestamps increase per user with exponential gaps of
    mean `gap` seconds. The same `seed` gives identical arrays.
    """
    if num_interests < 1 or num_items < num_interests:
        raise ValueError("need 1 <= num_interests <= num_items")
    if seq_len < 1 or (min_len is not None and not 1 <= min_len <= seq_len):
        raise ValueError("need 1 <= min_len <= seq_len")
    if not 0 <= switch_prob <= 1 or not 0 <= return_prob <= 1:
        raise ValueError("switch_prob and return_prob must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    item_interest = rng.permutation(np.arange(num_items) % num_interests)  # (i,)
    members = [np.flatnonzero(item_interest == c) for c in range(num_interests)]
    draw = _zipf_sampler([rng.permutation(m) for m in members], popularity_skew)
    low = seq_len if min_len is None else min_len
    lengths = rng.integers(low, seq_len + 1, size=num_users)

    paths = [_interest_path(rng, n, num_interests, switch_prob, return_prob) for n in lengths]
    labels = np.concatenate(paths)
    items = draw(labels, rng.random(len(labels)))
    users = np.repeat(np.arange(num_users, dtype=np.int64), lengths)
    times = _timestamps(rng, lengths, gap)
    info = {
        i: {"title": f"item {i}", "genres": [f"interest {c}"]}
        for i, c in enumerate(item_interest.tolist())
    }
    return Interactions(users, items.astype(np.int64), times, name, info, labels.astype(np.int64))


def _interest_path(rng, length: int, num_interests: int, switch_prob: float, return_prob: float):
    """The planted interest of each of `length` events of one user, segment by segment."""
    size = min(num_interests, int(rng.integers(2, 5)))
    active = rng.choice(num_interests, size=size, replace=False)
    if switch_prob == 0 or size == 1:
        return np.full(length, active[0], dtype=np.int64)
    # segment lengths: geometric, so a switch follows each event with probability switch_prob
    p = switch_prob
    seg = rng.geometric(p, size=int(length * p * 1.5) + 16)
    while seg.sum() < length:
        seg = np.concatenate([seg, rng.geometric(p, size=len(seg))])
    count = int(np.searchsorted(np.cumsum(seg), length)) + 1
    seg = seg[:count]
    coins, picks = rng.random(count).tolist(), rng.integers(0, size - 1, size=count).tolist()
    last_seen = dict.fromkeys(active.tolist(), -1)
    current = int(active[0])
    chosen = np.empty(count, dtype=np.int64)
    for s in range(count):
        if s > 0:
            others = [a for a in last_seen if a != current]
            if coins[s] < return_prob:
                current = min(others, key=last_seen.__getitem__)  # least recently visited
            else:
                current = others[picks[s]]
        last_seen[current] = s
        chosen[s] = current
    return np.repeat(chosen, seg)[:length]


def _timestamps(rng, lengths: np.ndarray, gap: float) -> np.ndarray:
    """Per user: a random start in [0, 1e6) plus cumulative exponential gaps (increasing)."""
    steps = rng.exponential(gap, size=int(lengths.sum())) + 1e-3
    starts = rng.uniform(0, 1e6, size=len(lengths))
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # index of each user's first event
    return np.repeat(starts - cum[first], lengths) + cum[1:]


def _planted(genres: list[str]) -> int:
    tags = [g for g in genres if g.startswith(("interest ", "pair "))]
    return int(tags[0].split()[1]) if tags else -1


def item_interests(info: dict) -> dict:
    """Raw item id -> planted interest, from ``item_info`` genres ``"interest c"``/``"pair k"``.

    Items without a planted interest (noise of `long_range_task`) map to -1.
    """
    return {item: _planted(entry.get("genres", [])) for item, entry in info.items()}


def item_interest_array(item_genres: list[list[str]]) -> np.ndarray:
    """Planted interest per remapped item id, (I+1,) int64, -1 for padding and unlabelled items.

    Pass ``SequenceData.item_genres``: ``item_interest_array(data.item_genres)[data.sequences[u]]``
    gives the planted interest of each event of user u.
    """
    return np.array([_planted(g) for g in item_genres], dtype=np.int64)


def long_range_task(
    num_users: int = 256,
    num_pairs: int = 16,
    num_noise_items: int = 200,
    distance: int = 64,
    episodes: int = 4,
    *,
    popularity_skew: float = 0.5,
    gap: float = 60.0,
    seed: int = 0,
    name: str = "long-range",
) -> Interactions:
    """A recall task whose only signal lies `distance` events back: for comparing long contexts.

    Each user's log is `episodes` episodes of `distance` + 1 events:
    ``[key k, noise x (distance - 1), answer a(k)]``. Keys are items 0..P-1 (P = `num_pairs`),
    answers P..2P-1 with the fixed pairing a(k) = P + k, noise items 2P.. drawn with Zipf-like
    popularity and independent of everything else. The answer is `distance` positions after
    its key and nothing nearer hints at it, so the user's last item (the leave-one-out test
    target) is predictable only by a model whose history window holds at least `distance`
    items: below that a model can do no better than guess among P answers, from it on it can
    be exact. Earlier episodes give training examples of the pairing (random cuts at answers).
    ``labels``: the pair index k for key and answer events, -1 for noise.
    """
    if distance < 2 or episodes < 1 or num_pairs < 1 or num_noise_items < 1:
        raise ValueError("need distance >= 2, episodes >= 1, num_pairs >= 1, num_noise_items >= 1")
    rng = np.random.default_rng(seed)
    p, ep_len = num_pairs, distance + 1
    keys = rng.integers(0, p, size=(num_users, episodes))
    draw = _zipf_sampler([2 * p + np.arange(num_noise_items)], popularity_skew)
    n_noise = num_users * episodes * (distance - 1)
    noise = draw(np.zeros(n_noise, dtype=np.int64), rng.random(n_noise))
    items = np.empty((num_users, episodes, ep_len), dtype=np.int64)
    items[:, :, 0] = keys
    items[:, :, 1:-1] = noise.reshape(num_users, episodes, distance - 1)
    items[:, :, -1] = p + keys
    labels = np.full_like(items, -1)
    labels[:, :, 0] = labels[:, :, -1] = keys
    length = episodes * ep_len
    lengths = np.full(num_users, length)
    info = {k: {"title": f"key {k}", "genres": [f"pair {k}"]} for k in range(p)}
    info |= {p + k: {"title": f"answer {k}", "genres": [f"pair {k}"]} for k in range(p)}
    info |= {
        2 * p + j: {"title": f"noise {j}", "genres": ["noise"]} for j in range(num_noise_items)
    }
    return Interactions(
        users=np.repeat(np.arange(num_users, dtype=np.int64), length),
        items=items.reshape(-1),
        timestamps=_timestamps(rng, lengths, gap),
        name=name,
        item_info=info,
        labels=labels.reshape(-1),
    )


def thin_noise(
    window: np.ndarray, is_noise: np.ndarray, keep: float, rng: np.random.Generator
) -> np.ndarray:
    """Drop each noise event of a history window with probability 1 - `keep`; keep the rest.

    In `long_range_task` the noise events are independent of everything else, so a window
    thinned this way is the same task scaled down: the key sits about ``keep * distance``
    events back, with the same kinds of items around it. This is what `DistanceCurriculum`
    trains on before the full-length task. Returns the kept events, in order; the window's last
    event always stays, so a window of noise alone never thins to nothing.
    """
    window, is_noise = np.asarray(window), np.asarray(is_noise, dtype=bool)
    if window.shape != is_noise.shape or window.ndim != 1:
        raise ValueError(
            f"window {window.shape} and is_noise {is_noise.shape} must be equal 1-d shapes"
        )
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep={keep} must lie in (0, 1]")
    if keep == 1.0:
        return window
    kept = ~is_noise | (rng.random(len(window)) < keep)
    kept[-1:] = True
    return window[kept]
