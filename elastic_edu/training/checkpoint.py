"""Checkpoints: weights with the configs that made them, written atomically, read strictly.

Two kinds share one format (a dict saved with `torch.save`, read with ``weights_only=True``):

- a *model* checkpoint: ``model_config``, ``train_config``, ``state_dict`` (the best weights);
- a *resume* checkpoint (``<name>.last.pt`` beside it): the same plus the optimizer, the epoch,
  the early-stopping record and every random generator's state, so that `fit(resume=...)`
  continues where an interrupted run stopped.

Both record the data they were trained on (`data_fingerprint`: items, users, interactions and a
SHA-256 of the sequences), so a resumed run refuses other data. A checkpoint refuses to load
into a model built with another config. Whatever a file holds (nothing, a folder, a truncated
or foreign file, damaged or non-finite tensors, another structure), reading it ends in one
`CheckpointError` line that names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.files import check_writable, replacing


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or made for another model."""


def last_path(path: str | Path) -> Path:
    """Where the resume checkpoint of model checkpoint `path` lives: ``<stem>.last.pt``."""
    path = Path(path)
    return path.with_name(path.stem + ".last" + (path.suffix or ".pt"))


def check_checkpoint_paths(path: str | Path, what: str = "checkpoint") -> Path:
    """Refuse, before any training, a checkpoint path that cannot be written, or whose resume
    checkpoint beside it cannot (ValueError naming `what` and the path)."""
    path = check_writable(path, what)
    last = last_path(path)
    if last.is_dir():
        raise ValueError(f"{what} {path} writes its resume checkpoint to {last}, which is a "
                         f"folder: move that folder or choose another {what}")  # fmt: skip
    check_writable(last, f"{what} {path}: its resume checkpoint")
    return path


def atomic_save(payload: dict, path: str | Path) -> Path:
    """`torch.save` to a temporary file in the same folder, then rename over `path`."""
    with replacing(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def save_checkpoint(path, model, train_config: TrainConfig, **extra) -> Path:
    """Write `model`'s weights with its ModelConfig and the TrainConfig, atomically (`extra`,
    such as ``data=data_fingerprint(split)``, goes beside them)."""
    payload = {
        "model_config": model.config.to_dict(),
        "train_config": train_config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    return atomic_save(payload, path)


def data_fingerprint(split) -> dict:
    """What a checkpoint records of its data (a `LOOSplit`): the catalogue size, the users, the
    interactions and a SHA-256 of every sequence in order, so that the same counts in another
    order (timestamps reversed, say) differ too."""
    digest = hashlib.sha256()
    for seq in split.train:
        seq = np.asarray(seq, dtype=np.int64)
        digest.update(np.int64(len(seq)).tobytes() + seq.tobytes())
    for part in (split.valid, split.test):
        digest.update(np.asarray(part.users, dtype=np.int64).tobytes())
        digest.update(np.asarray(part.targets, dtype=np.int64).tobytes())
    interactions = sum(len(seq) for seq in split.train) + len(split.valid) + len(split.test)
    return {"items": int(split.num_items), "users": len(split.train),
            "interactions": int(interactions), "sha256": digest.hexdigest()}  # fmt: skip


RESUME_KEYS = ("train_config", "optimizer", "epoch", "step", "seconds", "history", "best", "rng")


def read_checkpoint(path: str | Path, resume: bool = False) -> dict:
    """The payload of checkpoint `path` (with `resume`, of a resume checkpoint); whatever the
    file holds, what is wrong with it is one CheckpointError line naming the file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a regular file")
    try:
        with open(path, "rb") as fh:
            empty = not fh.read(1)
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} cannot be read: {err.strerror or err}") from None
    if empty:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): the run that wrote it died")
    payload = _load(path)
    _check_structure(payload, path, resume)
    bad = [where for where, t in _tensors(payload) if t.is_floating_point() and
           not bool(torch.isfinite(t).all())]  # fmt: skip
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"checkpoint {path} holds NaN or infinite values in {', '.join(bad[:3])}{more}: the "
            "file is damaged or its run diverged; train again without it"
        )
    return payload


def _load(path: Path):
    """torch.load with weights_only=True: tensors and plain values only, never foreign code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated, damaged, foreign: whatever torch says
        text = str(err)
        if "Weights only load failed" in text:  # say what the file holds, not how to unpickle it
            reason = first_line(text.partition("WeightsUnpickler error:")[2] or "an object")
            raise CheckpointError(
                f"checkpoint {path} is not a readable torch file: safe loading (tensors and "
                f"plain values only) refused it ({reason}); a file from elsewhere is never "
                "unpickled, which could run its code"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is not a readable torch file (damaged or truncated?): "
            f"{first_line(err)}"
        ) from None


def first_line(err) -> str:
    """The first non-empty line of an error's text, at most 160 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _check_structure(payload, path: Path, resume: bool) -> None:
    """The keys and types every checkpoint has (and a resume checkpoint's own, with `resume`)."""
    if not isinstance(payload, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(payload).__name__}, not an elastic_edu checkpoint"
        )
    missing = [k for k in ("model_config", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}: it is not an elastic_edu checkpoint "
            "(a bare state_dict loads with model.load_state_dict(torch.load(path)))"
        )
    state = payload["state_dict"]
    if not isinstance(payload["model_config"], dict):
        raise CheckpointError(f"checkpoint {path} holds no model config dict: it is damaged")
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state_dict of tensors: it is damaged")
    missing = [k for k in RESUME_KEYS if k not in payload] if resume else []
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}: it holds weights, not a resume "
            "checkpoint (fit writes one beside --checkpoint, as <name>.last.pt, every epoch)"
        )


def _tensors(value, where: str = ""):
    """(where, tensor) for every tensor in nested dicts, lists and tuples."""
    if torch.is_tensor(value):
        yield where or "the payload", value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _tensors(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for j, v in enumerate(value):
            yield from _tensors(v, f"{where}[{j}]")


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
