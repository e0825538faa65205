"""Statistics over runs: mean and standard error over seeds, paired tests user by user, NDCG@10
by history length, and the comparison table that `python -m elastic_edu compare` writes.

Every function reads run results (the JSON contract of `elastic_edu.experiments.runs`: metrics,
per-user ranks, history lengths), never a model.
"""

from __future__ import annotations

import math

import numpy as np


def summarise(runs: list[dict], keys=("test", "test_masked")) -> dict:
    """Mean and standard error over seeds of every metric in `keys`, and the timing."""
    out = {}
    for key in keys:
        out[key] = {}
        for m in runs[0][key]:
            values = np.array([r[key][m] for r in runs], dtype=np.float64)
            se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
            out[key][m] = {"mean": float(values.mean()), "se": float(se), "n": len(values)}
    for key in ("train_seconds", "epochs", "best_epoch", "seconds_per_epoch", "seconds_to_best"):
        values = [r[key] for r in runs if r.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    return out


def format_table(rows: dict[str, dict], metrics=("HR@10", "NDCG@10", "MRR@10")) -> str:
    """A markdown table from {label: summarise(...)} (mean ± standard error over seeds)."""
    head = ["model", *metrics, *(f"{m} masked" for m in metrics),
            "epochs (best)", "s/epoch", "s to best", "seeds"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in rows.items():
        cells = [label]
        for key in ("test", "test_masked"):
            for m in metrics:
                v = s[key][m]
                se = "" if math.isnan(v["se"]) else f" ± {v['se']:.4f}"
                cells.append(f"{v['mean']:.4f}{se}")
        epochs, best = s.get("epochs"), s.get("best_epoch")
        cells.append("-" if not epochs else f"{epochs:.0f} ({best:.0f})")
        cells.append("-" if not s.get("seconds_per_epoch") else f"{s['seconds_per_epoch']:.1f}")
        cells.append("-" if not s.get("seconds_to_best") else f"{s['seconds_to_best']:.0f}")
        cells.append(str(s["test"][metrics[0]]["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ndcg_per_user(ranks, k: int = 10) -> np.ndarray:
    """NDCG@k of each user from 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)


def paired_test(a, b, *, resamples: int = 10000, seed: int = 0) -> dict:
    """Compare two models on the same users: a and b are per-user scores (e.g. NDCG@10).

    Returns the mean difference a - b, a 95% bootstrap interval over users, and a two-sided sign
    test over the users where the two differ (exact binomial), with the counts of wins and losses.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired test: {a.shape[0]} and {b.shape[0]} users differ")
    diff = a - b
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, len(diff), (resamples, len(diff)))].mean(axis=1)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    return {
        "users": len(diff), "mean_diff": float(diff.mean()),
        "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))],
        "wins": wins, "losses": losses, "sign_test_p": sign_test(wins, losses),
    }  # fmt: skip


def user_ndcg(runs: list[dict], k: int = 10) -> np.ndarray:
    """Each test user's NDCG@k, averaged over the seeds of `runs`."""
    return np.mean([ndcg_per_user(r["ranks"]["test"], k) for r in runs], axis=0)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: P(a split at least this uneven | no difference)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, j) for j in range(0, min(wins, losses) + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def by_history_length(runs: list[dict], edges=(20, 50, 100, 200)) -> dict:
    """Test NDCG@10 by the length of each user's history, pooled over the seeds of `runs`.

    Buckets are (0, edges[0]], (edges[0], edges[1]], ..., (edges[-1], inf).
    """
    lengths = np.asarray(runs[0]["history_lengths"])
    bounds = [0, *edges, math.inf]
    out = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        keep = (lengths > lo) & (lengths <= hi)
        if not keep.any():
            continue
        scores = [ndcg_per_user(np.asarray(r["ranks"]["test"]))[keep].mean() for r in runs]
        label = f"{lo + 1}-{hi}" if hi != math.inf else f">{lo}"
        out[label] = {"users": int(keep.sum()), "NDCG@10": float(np.mean(scores))}
    return out


def comparison(runs: dict[str, list[dict]], **meta) -> dict:
    """The comparison JSON from {label: per-seed run results}: the machine, the table (mean ±
    SE), every paired test and NDCG@10 by history length, beside the runs themselves.

    `python -m elastic_edu compare` writes it; scripts/merge_accuracy.py rebuilds it from runs
    made by several processes.
    """
    rows = {label: summarise(r) for label, r in runs.items()}
    first = next(iter(runs.values()))[0]
    return {
        **meta,
        "device_name": first["device_name"],
        "torch": first["torch"],
        "summary": rows,
        "table": format_table(rows),
        "paired": paired_tests(runs),
        "by_history_length": {label: by_history_length(r) for label, r in runs.items()},
        "runs": runs,
    }


def paired_tests(runs: dict[str, list[dict]]) -> dict:
    """Every model against every other (`paired_test`) on each user's NDCG@10, averaged over
    the seeds the two share."""
    out = {}
    labels = list(runs)
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            n = min(len(runs[a]), len(runs[b]))
            if n == 0:
                continue
            test = paired_test(user_ndcg(runs[a][:n]), user_ndcg(runs[b][:n]))
            out[f"{a} vs {b}"] = {"metric": "NDCG@10", "seeds": n, **test}
    return out
