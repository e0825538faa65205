"""Full-ranking evaluation: HR, NDCG and MRR at K over every item, for every evaluated user.

One relevant item per user (leave-one-out), so with rank r (1 = best):
    HR@K = [r <= K]      NDCG@K = [r <= K] / log2(r + 1)      MRR@K = [r <= K] / r
Ties count against the model: r = 1 + #{items j != target : score_j >= score_target}.
No sampled negatives, no user subset. Scores come from the model's own `score` (the path
training optimises and `elastic_edu.models.recommend` uses), and each user's rank is independent
of the batch it is in. Non-finite scores are refused (`elastic_edu.models.check_finite`): a
diverged model would otherwise rank every target first.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from elastic_edu.data.sequences import EvalSet
from elastic_edu.histories import PAD
from elastic_edu.models.base import NonFiniteScores, check_finite

KS = (10, 20, 50)


def ranks_from_scores(
    scores: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """scores (b, i), targets (b,) -> 1-based ranks (b,), ties against the model.

    exclude: optional bool (b, i), True for items that take no part in the ranking (the
    target itself is never excluded). Column 0 (padding) never counts.
    """
    check_finite(scores)
    column = rearrange(targets, "b -> b 1")
    target_score = scores.gather(1, column)  # (b, 1)
    beats = scores >= target_score
    beats[:, PAD] = False
    beats.scatter_(1, column, False)
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


def history_mask(histories, shape: tuple[int, int], device) -> torch.Tensor:
    """bool (b, i): True at the items of each history (what `mask_history` removes)."""
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    for row, h in enumerate(histories):
        mask[row, torch.as_tensor(np.asarray(h, dtype=np.int64), device=device)] = True
    return mask


def scored_batches(model, eval_set: EvalSet, batch_size: int = 256):
    """Yield (start, histories, scores (b, i), targets (b,)) over `eval_set`, the model in eval
    mode; non-finite scores are refused naming the evaluation users. The one loop every ranking
    (full or sampled) runs."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(eval_set), batch_size):
                hist = eval_set.histories[start : start + batch_size]
                scores = model.score(hist)  # (b, i)
                try:
                    check_finite(scores)
                except NonFiniteScores as err:
                    where = f"(evaluation users {start}..{start + len(hist) - 1})"
                    raise NonFiniteScores(f"{err} {where}") from None
                targets = eval_set.targets[start : start + batch_size]
                yield start, hist, scores, torch.as_tensor(targets, device=scores.device)
    finally:
        model.train(was_training)


def rank_targets(
    model, eval_set: EvalSet, *, mask_history: bool = False, batch_size: int = 256
) -> np.ndarray:
    """The 1-based full-ranking rank of every target in `eval_set` (int64 array)."""
    ranks = []
    for _, hist, scores, targets in scored_batches(model, eval_set, batch_size):
        exclude = history_mask(hist, scores.shape, scores.device) if mask_history else None
        ranks.append(ranks_from_scores(scores, targets, exclude).cpu())
    return torch.cat(ranks).numpy()


def evaluate(
    model, eval_set: EvalSet, *, mask_history: bool = False, batch_size: int = 256, ks=KS
) -> dict[str, float]:
    """HR/NDCG/MRR at `ks` for any model with a `score(histories)` method.

    mask_history: exclude the items already in each user's history from the ranking (the
    target itself is never excluded). Results do not depend on `batch_size`.
    """
    ranks = rank_targets(model, eval_set, mask_history=mask_history, batch_size=batch_size)
    return metrics_from_ranks(ranks, ks)


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
    negatives = torch.as_tensor(np.stack(negatives))  # (users, negatives)
    ranks = []
    for start, _, scores, targets in scored_batches(model, eval_set, batch_size):
        negs = negatives[start : start + len(targets)].to(scores.device)
        target_score = scores.gather(1, rearrange(targets, "b -> b 1"))  # (b, 1)
        neg_scores = scores.gather(1, negs)  # (b, negatives)
        ranks.append((1 + (neg_scores >= target_score).sum(dim=1)).cpu())
    return torch.cat(ranks).numpy()


def evaluate_sampled(
    model, eval_set: EvalSet, num_negatives: int = 100, *, seed: int = 0, ks=KS
) -> dict[str, float]:
    """HR/NDCG/MRR at `ks` with each target ranked against `num_negatives` sampled items.

    See `rank_targets_sampled`; compare with `evaluate` (full ranking) on the same model.
    """
    return metrics_from_ranks(rank_targets_sampled(model, eval_set, num_negatives, seed=seed), ks)
