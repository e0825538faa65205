"""Train-and-evaluate runs with one stable JSON contract, multi-seed tables and paired tests.

`run` returns (and the CLI writes)::

    {"test": {"HR@10": .., "NDCG@10": .., "MRR@10": .., ...},   # all items ranked
     "test_masked": {...},                                     # history items masked
     "valid": {...}, "ranks": {"test": [...], ...},             # per-user ranks (paired tests)
     "config": {"model": .., "train": .., "dataset": ..}, "device": "...", "device_name": "...",
     "train_seconds": .., "best_epoch": .., "stopped": .., "history": [...], ...}

and ``"write_errors": [...]`` when a checkpoint could not be written (each says where it is kept).

`compare_runs` pairs two models user by user (bootstrap interval and sign test);
`by_history_length` breaks NDCG@10 down by how long each test user's history is.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import fields

import numpy as np
import torch

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device, describe_device
from elastic_edu.metrics import metrics_from_ranks, rank_targets
from elastic_edu.models import build_model, get_spec
from elastic_edu.train import fit, seed_everything

MODEL_FIELDS = {f.name for f in fields(ModelConfig)} - {"memory"}
MEMORY_FIELDS = {f.name for f in fields(MemoryConfig)}
TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


def default_configs(model: str, num_items: int, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """The defaults the CLI uses for `model`; keyword overrides go to whichever config has them.

    The objective defaults to the model's own (`elastic_edu.models.REGISTRY`); None values are
    ignored, so a parsed command line can be passed as it is.
    """
    spec = get_spec(model)
    unknown = set(overrides) - MODEL_FIELDS - MEMORY_FIELDS - TRAIN_FIELDS
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    mkw = {k: v for k, v in given.items() if k in MODEL_FIELDS}
    memory = MemoryConfig(**{k: v for k, v in given.items() if k in MEMORY_FIELDS})
    tkw = {k: v for k, v in given.items() if k in TRAIN_FIELDS}
    tkw.setdefault("objective", spec.default_objective or "all")
    mc = ModelConfig(model=spec.name, num_items=num_items, memory=memory, **mkw)
    return mc, TrainConfig(**tkw)


def run(
    split: LOOSplit,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    dataset: str = "",
    progress: bool = True,
    checkpoint=None,
    resume: bool = False,
    callbacks=(),
) -> dict:
    """Train (or count, for popularity) and evaluate one model; returns the JSON contract above.

    If training is interrupted (Ctrl-C, SIGTERM), the best weights so far are evaluated and
    ``stopped`` says ``interrupted``.
    """
    seed_everything(train_config.seed)
    model = build_model(model_config)
    fitted = fit(model, split, train_config, progress=progress, checkpoint=checkpoint,
                 resume=resume, callbacks=callbacks)  # fmt: skip
    if not fitted.is_main:  # under torchrun, rank 0 evaluates and reports
        return {"model": model, "is_main": False, "stopped": fitted.stopped}
    device = choose_device(fitted.device)
    batch = train_config.eval_batch_size
    ranks = {
        "valid": rank_targets(model, split.valid, batch_size=batch),
        "test": rank_targets(model, split.test, batch_size=batch),
        "test_masked": rank_targets(model, split.test, mask_history=True, batch_size=batch),
    }
    result = {key: metrics_from_ranks(r) for key, r in ranks.items()}
    result.update({
        "config": {"model": model_config.to_dict(), "train": train_config.to_dict(),
                   "dataset": dataset},
        "device": str(device), "device_name": describe_device(device),
        "torch": torch.__version__, "python": platform.python_version(),
        "world_size": fitted.world_size, "is_main": True,
        "train_seconds": fitted.train_seconds, "best_epoch": fitted.best_epoch,
        "epochs": len(fitted.history), "stopped": fitted.stopped, "history": fitted.history,
        "seconds_per_epoch": epoch_seconds(fitted.history),
        "seconds_to_best": best_seconds(fitted.history, fitted.best_epoch),
        "evaluated_users": len(split.test),
        "ranks": {key: r.tolist() for key, r in ranks.items()},
        "history_lengths": [len(h) for h in split.test.histories],
        "interests": interest_stats(model, split.test.histories),
    })  # fmt: skip
    if fitted.write_errors:  # checkpoints that could not be written (kept elsewhere, or lost)
        result["write_errors"] = fitted.write_errors
    result["model"] = model
    return result


def interest_stats(model, histories) -> dict:
    """Slot usage (memory models) and assignment entropy (dispatcher models) on `histories`."""
    from elastic_edu.analysis import (
        assignment_entropy,
        expert_assignments,
        slot_counts,
        usage_stats,
    )

    out = {}
    if hasattr(model, "memory"):
        out["slots"] = usage_stats(slot_counts(model, histories))
    if "num_experts" in getattr(model, "uses", ()):
        out["assignments"] = assignment_entropy(expert_assignments(model, histories))
    return out


def epoch_seconds(history: list[dict]) -> float | None:
    """Median training seconds per epoch (validation excluded) from a run's history."""
    if not history:
        return None
    times = [row["seconds"] for row in history]
    steps = np.diff([0.0, *times])
    return float(np.median(steps))


def best_seconds(history: list[dict], best_epoch: int) -> float | None:
    """Seconds of training until the end of the best epoch."""
    rows = [row["seconds"] for row in history if row["epoch"] == best_epoch]
    return float(rows[0]) if rows else None


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


def print_metrics(label: str, result: dict, out=None) -> None:
    """Print a run's metrics at every cutoff for valid, test and test_masked."""
    out = out or sys.stdout
    ks = [k for k in result["test"] if k.startswith("HR@")]
    cols = [m for k in ks for m in (k, k.replace("HR", "NDCG"), k.replace("HR", "MRR"))]
    print(f"\n{label}", file=out)
    print(f"{'split':<12}" + "".join(f"{m:>10}" for m in cols), file=out)
    for split in ("valid", "test", "test_masked"):
        print(f"{split:<12}" + "".join(f"{result[split][m]:>10.4f}" for m in cols), file=out)
