"""Train-and-evaluate runs with one stable JSON contract: what `python -m elastic_edu train`
and `compare` run.

`run` returns (and the CLI writes)::

    {"test": {"HR@10": .., "NDCG@10": .., "MRR@10": .., ...},   # all items ranked
     "test_masked": {...},                                     # history items masked
     "valid": {...}, "ranks": {"test": [...], ...},             # per-user ranks (paired tests)
     "config": {"model": .., "train": .., "dataset": ..}, "device": "...", "device_name": "...",
     "train_seconds": .., "best_epoch": .., "stopped": .., "history": [...], ...}

and ``"write_errors": [...]`` when a checkpoint could not be written (each says where it is kept).
`configs` builds a model's configs from settings by section, as the command line gives them;
the statistics over several runs are in `elastic_edu.evaluation.statistics`.
"""

from __future__ import annotations

import platform
import sys

import numpy as np
import torch

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig, merge, nest
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device, describe_device
from elastic_edu.evaluation.analysis import interest_stats
from elastic_edu.evaluation.metrics import metrics_from_ranks, rank_targets
from elastic_edu.models import build_model, get_spec
from elastic_edu.training import fit


def configs(
    model: str, num_items: int, settings: dict | None = None
) -> tuple[ModelConfig, TrainConfig]:
    """The configs of `model` for a catalogue of `num_items`: the dataclass defaults, the
    model's own objective, then `settings` by section ({"model": .., "memory": .., "train": ..},
    as `elastic_edu.options.given` and `elastic_edu.config.read_config_file` give them)."""
    spec = get_spec(model)
    given = merge({"train": {"objective": spec.default_objective or "all"}}, settings or {})
    memory = MemoryConfig(**given["memory"])
    mc = ModelConfig(model=spec.name, num_items=num_items, memory=memory, **given["model"])
    return mc, TrainConfig(**given["train"])


def default_configs(model: str, num_items: int, **settings) -> tuple[ModelConfig, TrainConfig]:
    """`configs` with flat keyword settings (``subkeys=8, lr=0.01``), each in the one section
    that has its name (`elastic_edu.config.nest`); None values are ignored."""
    return configs(model, num_items, nest(settings))


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
    model = build_model(model_config, seed=train_config.seed)
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


def print_metrics(label: str, result: dict, out=None) -> None:
    """Print a run's metrics at every cutoff for valid, test and test_masked."""
    out = out or sys.stdout
    ks = [k for k in result["test"] if k.startswith("HR@")]
    cols = [m for k in ks for m in (k, k.replace("HR", "NDCG"), k.replace("HR", "MRR"))]
    print(f"\n{label}", file=out)
    print(f"{'split':<12}" + "".join(f"{m:>10}" for m in cols), file=out)
    for split in ("valid", "test", "test_masked"):
        print(f"{split:<12}" + "".join(f"{result[split][m]:>10.4f}" for m in cols), file=out)
