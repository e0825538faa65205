"""Full-ranking evaluation: HR, NDCG and MRR at K over every item, for every evaluated user.

One relevant item per user (leave-one-out), so with rank r (1 = best):
    HR@K = [r <= K]      NDCG@K = [r <= K] / log2(r + 1)      MRR@K = [r <= K] / r
Ties count against the model: r = 1 + #{items j != target : score_j >= score_target}.
No sampled negatives, no user subset. Scores are computed in item chunks so memory stays
bounded on large catalogues, and each user's rank is independent of the batch it is in.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from einops import einsum

from elastic_edu.data.sequences import PAD, EvalSet, pad_left

KS = (10, 20, 50)


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """scores (b, i), targets (b,) -> 1-based ranks (b,), ties against the model.

    exclude: optional bool (b, i), True for items that take no part in the ranking (the
    target itself is never excluded). Column 0 (padding) never counts.
    """
    target_score = scores.gather(1, targets[:, None])  # (b, 1)
    beats = scores >= target_score
    beats[:, PAD] = False
    beats.scatter_(1, targets[:, None], False)
    if exclude is not None:
        beats &= ~exclude
    return 1 + beats.sum(dim=1)


def metrics_from_ranks(ranks: np.ndarray | torch.Tensor, ks=KS) -> dict[str, float]:
    """Mean HR@K, NDCG@K and MRR@K over users from 1-based ranks."""
    r = np.asarray(ranks.cpu() if torch.is_tensor(ranks) else ranks, dtype=np.float64)
    if r.size == 0:
        raise ValueError("no ranks to average: the evaluation set is empty")
    out = {}
    for k in ks:
        hit = r <= k
        out[f"HR@{k}"] = float(hit.mean())
        out[f"NDCG@{k}"] = float(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0).mean())
        out[f"MRR@{k}"] = float(np.where(hit, 1.0 / r, 0.0).mean())
    return out


def _max_len(model) -> int:
    config = getattr(model, "config", None)
    return config.max_len if config is not None else 1


@torch.no_grad()
def rank_targets(
    model,
    eval_set: EvalSet,
    *,
    mask_history: bool = False,
    batch_size: int = 256,
    item_chunk: int = 16384,
) -> np.ndarray:
    """The 1-based full-ranking rank of every target in `eval_set` (int64 array)."""
    was_training = model.training
    model.eval()
    device = model.device
    max_len = _max_len(model)
    items = model.item_repr().float()  # (i, d)
    num = items.shape[0]
    ranks = []
    try:
        for start in range(0, len(eval_set), batch_size):
            hist = eval_set.histories[start : start + batch_size]
            targets = torch.as_tensor(eval_set.targets[start : start + batch_size], device=device)
            user = model.user_repr(pad_left(hist, max_len).to(device)).float()  # (b, d)
            target_score = einsum(user, items[targets], "b d, b d -> b")[:, None]
            count = torch.zeros(len(hist), dtype=torch.long, device=device)
            for lo in range(0, num, item_chunk):
                chunk = items[lo : lo + item_chunk]
                scores = einsum(user, chunk, "b d, i d -> b i")
                beats = scores >= target_score
                if lo == 0:
                    beats[:, PAD] = False
                inside = (targets >= lo) & (targets < lo + len(chunk))
                rows = torch.nonzero(inside).flatten()
                beats[rows, targets[rows] - lo] = False  # the target never beats itself
                if mask_history:
                    for row, h in enumerate(hist):
                        h = torch.as_tensor(h, device=device)
                        h = h[(h >= lo) & (h < lo + len(chunk)) & (h != targets[row])]
                        beats[row, h - lo] = False
                count += beats.sum(dim=1)
            ranks.append((1 + count).cpu())
    finally:
        model.train(was_training)
    return torch.cat(ranks).numpy()


def evaluate(
    model,
    eval_set: EvalSet,
    *,
    mask_history: bool = False,
    batch_size: int = 256,
    item_chunk: int = 16384,
    ks=KS,
) -> dict[str, float]:
    """HR/NDCG/MRR at `ks` for any model with `user_repr(items)` and `item_repr()`.

    mask_history: exclude the items already in each user's history from the ranking (the
    target itself is never excluded). Results do not depend on `batch_size` or `item_chunk`.
    """
    ranks = rank_targets(
        model, eval_set, mask_history=mask_history, batch_size=batch_size, item_chunk=item_chunk
    )
    return metrics_from_ranks(ranks, ks)


@torch.no_grad()
def recommend(
    model, history, k: int = 10, *, exclude_history: bool = True
) -> list[tuple[int, float]]:
    """Top-`k` (item id, score) for one new history (a sequence of item ids 1..I).

    exclude_history drops items the user already has. Raises ValueError for an empty
    history or ids outside the catalogue.
    """
    history = np.asarray(list(history), dtype=np.int64)
    num_items = model.item_repr().shape[0] - 1
    if history.size == 0:
        raise ValueError("history is empty: give at least one item id")
    bad = history[(history < 1) | (history > num_items)]
    if bad.size:
        raise ValueError(f"history has item ids outside 1..{num_items}: {bad[:5].tolist()}")
    if not 1 <= k <= num_items:
        raise ValueError(f"k={k} must lie in 1..{num_items}")
    was_training = model.training
    model.eval()
    try:
        items = pad_left([history], _max_len(model)).to(model.device)
        scores = model.score(items)[0].float()
    finally:
        model.train(was_training)
    if exclude_history:
        scores[torch.as_tensor(history, device=scores.device)] = -math.inf
    k = min(k, int(torch.isfinite(scores).sum()))
    top = scores.topk(k)
    return [(int(i), float(s)) for i, s in zip(top.indices.tolist(), top.values.tolist())]


@torch.no_grad()
def rank_targets_sampled(
    model, eval_set: EvalSet, num_negatives: int = 100, *, seed: int = 0, batch_size: int = 256
) -> np.ndarray:
    """The rank of every target among itself and `num_negatives` sampled items (1 = best).

    Only for showing what sampled metrics do (SASRec's paper ranks the target against 100
    negatives); this repository reports full ranking (`rank_targets`). Negatives are drawn
    uniformly without replacement from the items that are neither the target nor in the user's
    history, with `seed`: every model evaluated with the same seed meets the same negatives.
    Ties count against the model, as in full ranking.
    """
    num_items = model.item_repr().shape[0] - 1
    rng = np.random.default_rng(seed)
    everything = np.arange(1, num_items + 1)
    negatives = []
    for history, target in zip(eval_set.histories, eval_set.targets):
        allowed = np.setdiff1d(everything, np.append(history, target), assume_unique=False)
        if len(allowed) < num_negatives:
            raise ValueError(
                f"num_negatives={num_negatives}: a user has only {len(allowed)} unseen items"
            )
        negatives.append(rng.choice(allowed, size=num_negatives, replace=False))
    negatives = np.stack(negatives)  # (users, negatives)
    was_training = model.training
    model.eval()
    ranks = []
    try:
        for start in range(0, len(eval_set), batch_size):
            hist = eval_set.histories[start : start + batch_size]
            items = pad_left(hist, _max_len(model)).to(model.device)
            scores = model.score(items).float()  # (b, i)
            targets = torch.as_tensor(eval_set.targets[start : start + batch_size])
            negs = torch.as_tensor(negatives[start : start + batch_size])
            target_score = scores.gather(1, targets[:, None].to(scores.device))  # (b, 1)
            neg_scores = scores.gather(1, negs.to(scores.device))  # (b, negatives)
            ranks.append((1 + (neg_scores >= target_score).sum(dim=1)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(ranks).numpy()


def evaluate_sampled(
    model, eval_set: EvalSet, num_negatives: int = 100, *, seed: int = 0, ks=KS
) -> dict[str, float]:
    """HR/NDCG/MRR at `ks` with each target ranked against `num_negatives` sampled items.

    See `rank_targets_sampled`; compare with `evaluate` (full ranking) on the same model.
    """
    return metrics_from_ranks(rank_targets_sampled(model, eval_set, num_negatives, seed=seed), ks)
