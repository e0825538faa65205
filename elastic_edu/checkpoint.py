"""Checkpoints: weights with the configs that made them, written atomically, read strictly.

Two kinds share one format (a dict saved with `torch.save`, read with ``weights_only=True``):

- a *model* checkpoint: ``model_config``, ``train_config``, ``state_dict`` (the best weights);
- a *resume* checkpoint (``<name>.last.pt`` beside it): the same plus the optimizer, the epoch,
  the early-stopping record and every random generator's state, so that `fit(resume=...)`
  continues where an interrupted run stopped.

A checkpoint refuses to load into a model built with another config, and every error names the
file and what is wrong with it.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.files import replacing


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or made for another model."""


def last_path(path: str | Path) -> Path:
    """Where the resume checkpoint of model checkpoint `path` lives: ``<stem>.last.pt``."""
    path = Path(path)
    return path.with_name(path.stem + ".last" + (path.suffix or ".pt"))


def atomic_save(payload: dict, path: str | Path) -> Path:
    """`torch.save` to a temporary file in the same folder, then rename over `path`."""
    with replacing(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def save_checkpoint(path, model, train_config: TrainConfig, **extra) -> Path:
    """Write `model`'s weights with its ModelConfig and the TrainConfig, atomically."""
    payload = {
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    return atomic_save(payload, path)


def read_checkpoint(path: str | Path) -> dict:
    """The payload of checkpoint `path`; CheckpointError says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the run that wrote it died")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"checkpoint {path} is not a readable torch file: {err}") from None
    missing = [k for k in ("model_config", "state_dict") if k not in payload] if isinstance(
        payload, dict) else ["model_config", "state_dict"]  # fmt: skip
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}: it is not an elastic_edu checkpoint "
            "(a bare state_dict loads with model.load_state_dict(torch.load(path)))"
        )
    return payload


def load_checkpoint(path: str | Path, config: ModelConfig | None = None):
    """Rebuild the model of checkpoint `path`. With `config`, refuse one made with another."""
    from elastic_edu.models import build_model

    payload = read_checkpoint(path)
    try:
        stored = ModelConfig.from_dict(payload["model_config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} holds an invalid model config: {err}") from None
    if config is not None and config != stored:
        diff = {k: (v, getattr(config, k)) for k, v in vars(stored).items()
                if getattr(config, k) != v}  # fmt: skip
        raise CheckpointError(
            f"checkpoint {path} was made with another config (stored, given): {diff}"
        )
    model = build_model(stored)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit its own model: {err}") from None
    return model
