"""Train-and-evaluate runs with one stable JSON contract, and multi-seed comparisons.

`run` returns (and the CLI writes)::

    {"test": {"HR@10": .., "NDCG@10": .., "MRR@10": .., ...},   # all items ranked
     "test_masked": {...},                                     # history items masked
     "valid": {...}, "config": {"model": .., "train": .., "dataset": ..},
     "device": "...", "device_name": "...", "train_seconds": .., "history": [...], ...}
"""

from __future__ import annotations

import math
import platform
import time

import numpy as np
import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device, describe_device
from elastic_edu.metrics import evaluate
from elastic_edu.models import Popularity, build_model
from elastic_edu.train import fit, seed_everything

DEFAULT_OBJECTIVE = {"sasrec": "all", "elastic": "cut", "lda": "cut", "popularity": "all"}


def default_configs(model: str, num_items: int, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """The defaults the CLI uses for `model`; keyword overrides go to whichever config has them."""
    mfields = set(ModelConfig.__dataclass_fields__)
    tfields = set(TrainConfig.__dataclass_fields__)
    unknown = set(overrides) - mfields - tfields
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    mkw = {k: v for k, v in overrides.items() if k in mfields and v is not None}
    tkw = {k: v for k, v in overrides.items() if k in tfields and v is not None}
    tkw.setdefault("objective", DEFAULT_OBJECTIVE[model])
    if tkw["objective"] == "cut":
        tkw.setdefault("cuts_per_user", 32)  # random cuts see fewer targets than all positions
    return ModelConfig(model=model, num_items=num_items, **mkw), TrainConfig(**tkw)


def run(
    split: LOOSplit,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    dataset: str = "",
    progress: bool = True,
    checkpoint=None,
) -> dict:
    """Train (unless popularity) and evaluate one model; returns the JSON contract above."""
    seed_everything(train_config.seed)
    device = choose_device(train_config.device)
    start = time.perf_counter()
    if model_config.model == "popularity":
        model = Popularity.from_train(split.train, split.num_items).to(device)
        history, best_epoch, stopped = [], 0, "counted"
    else:
        model = build_model(model_config)
        fitted = fit(model, split, train_config, progress=progress, checkpoint=checkpoint)
        history, best_epoch, stopped = fitted.history, fitted.best_epoch, fitted.stopped
    seconds = time.perf_counter() - start
    batch = train_config.eval_batch_size
    result = {
        "test": evaluate(model, split.test, batch_size=batch),
        "test_masked": evaluate(model, split.test, mask_history=True, batch_size=batch),
        "valid": evaluate(model, split.valid, batch_size=batch),
        "config": {
            "model": model_config.to_dict(),
            "train": train_config.to_dict(),
            "dataset": dataset,
        },
        "device": str(device),
        "device_name": describe_device(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "train_seconds": seconds,
        "best_epoch": best_epoch,
        "stopped": stopped,
        "history": history,
        "evaluated_users": len(split.test),
    }
    result["model"] = model
    return result


def summarise(runs: list[dict], keys=("test", "test_masked")) -> dict:
    """Mean and standard error over seeds of every metric in `keys`."""
    out = {}
    for key in keys:
        metrics = runs[0][key].keys()
        out[key] = {}
        for m in metrics:
            values = np.array([r[key][m] for r in runs], dtype=np.float64)
            se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
            out[key][m] = {"mean": float(values.mean()), "se": float(se), "n": len(values)}
    out["train_seconds"] = float(np.mean([r["train_seconds"] for r in runs]))
    return out


def format_table(rows: dict[str, dict], metrics=("HR@10", "NDCG@10", "MRR@10")) -> str:
    """A markdown table from {label: summarise(...)} (mean ± standard error)."""
    head = ["model"] + [f"{m}" for m in metrics] + [f"{m} masked" for m in metrics] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, s in rows.items():
        cells = [label]
        for key in ("test", "test_masked"):
            for m in metrics:
                v = s[key][m]
                se = "" if math.isnan(v["se"]) else f" ± {v['se']:.4f}"
                cells.append(f"{v['mean']:.4f}{se}")
        cells.append(str(s["test"][metrics[0]]["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
