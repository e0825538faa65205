"""One readable training loop: AdamW, full-softmax cross-entropy, early stopping on validation.

`fit` trains any `SequentialRecommender` on a leave-one-out split, validates NDCG@10 every
`eval_every` epochs, keeps the best weights, stops on patience or the time budget, and returns a
history for plotting. A NaN or infinite loss stops training with a message saying where.
"""

from __future__ import annotations

import copy
import math
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.data.sequences import LOOSplit, all_position_batches, cut_batches
from elastic_edu.device import choose_device
from elastic_edu.metrics import evaluate


@dataclass
class FitResult:
    """What `fit` returns: the (best) model, per-epoch history, timing and why it stopped."""

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    stopped: str = "epochs"
    device: str = "cpu"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU runs then repeat exactly)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: memory values (if any) at lr * memory_lr_scale, no weight decay on them."""
    memory = list(model.memory_parameters()) if hasattr(model, "memory_parameters") else []
    ids = {id(p) for p in memory}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": rest, "lr": config.lr, "weight_decay": config.weight_decay}]
    if memory:
        groups.append(
            {"params": memory, "lr": config.lr * config.memory_lr_scale, "weight_decay": 0.0}
        )
    return groups


def _batches(model, split: LOOSplit, config: TrainConfig, rng: np.random.Generator):
    max_len = model.config.max_len
    if config.objective == "all":
        return all_position_batches(split.train, max_len, config.batch_size, rng)
    return cut_batches(split.train, max_len, config.batch_size, config.cuts_per_user, rng)


def fit(
    model: torch.nn.Module,
    split: LOOSplit,
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> FitResult:
    """Train `model` on `split.train`, early-stopping on validation NDCG@10.

    The model's `objectives` must include `config.objective` (ELASTIC refuses ``all``: it would
    leak the future). Returns a FitResult whose model holds the best validated weights.
    """
    config = config or TrainConfig()
    if config.objective not in getattr(model, "objectives", ()):
        model.loss(None, None, config.objective)  # raises the model's own explanation
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    device = choose_device(config.device)
    model.to(device)
    autocast = device.type == "cuda" and config.bf16
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    result = FitResult(model=model, device=str(device))
    best_score, best_state, bad_rounds = -math.inf, None, 0
    start = time.perf_counter()
    bar = tqdm(
        range(1, config.epochs + 1), desc=f"train {model.config.model}", disable=not progress
    )
    for epoch in bar:
        model.train()
        losses = []
        for step, (inputs, targets) in enumerate(_batches(model, split, config, rng)):
            inputs, targets = inputs.to(device), targets.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = model.loss(inputs, targets, config.objective)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss is {loss.item()} at epoch {epoch}, step {step}: lower the "
                    f"learning rate (lr={config.lr}) or check the inputs"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        row = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "seconds": time.perf_counter() - start,
        }
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid = evaluate(model, split.valid, batch_size=config.eval_batch_size)
            row.update({f"valid_{k}": v for k, v in valid.items()})
            if valid["NDCG@10"] > best_score:
                best_score, bad_rounds = valid["NDCG@10"], 0
                best_state = copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
                result.best_epoch, result.best_valid = epoch, valid
            else:
                bad_rounds += 1
        result.history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", ndcg10=f"{best_score:.4f}")
        if bad_rounds >= config.patience:
            result.stopped = "early stopping"
            break
        if config.max_minutes is not None and row["seconds"] > 60 * config.max_minutes:
            result.stopped = "time budget"
            break
    bar.close()
    result.train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, config)
    return result


def save_checkpoint(path: str | Path, model: torch.nn.Module, train_config: TrainConfig) -> Path:
    """Write weights with their ModelConfig and TrainConfig, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_checkpoint(path: str | Path, config: ModelConfig | None = None) -> torch.nn.Module:
    """Rebuild a model from a checkpoint. With `config`, refuse a checkpoint made with another."""
    from elastic_edu.models import build_model

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    stored = ModelConfig.from_dict(payload["model_config"])
    if config is not None and config != stored:
        diff = {
            k: (v, getattr(config, k))
            for k, v in stored.to_dict().items()
            if getattr(config, k) != v
        }
        raise ValueError(f"checkpoint {path} was made with another config (stored, given): {diff}")
    model = build_model(stored)
    model.load_state_dict(payload["state_dict"])
    return model
