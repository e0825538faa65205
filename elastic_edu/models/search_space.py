"""Hyperparameter search spaces: what `python -m elastic_edu tune` may vary, declared per model.

Each model class declares its space once, beside its config, as `search_space` (a tuple of the
parameters below); `elastic_edu.models.REGISTRY` carries it and `elastic_edu.experiments.tune`
samples it.
Every parameter is named after a config field (ModelConfig, MemoryConfig or TrainConfig), so a
sampled setting goes straight to `elastic_edu.experiments.default_configs`.

The value sets keep invalid settings out by construction: widths {32, 64, 128} divide by every
head count {1, 2, 4}, and at most 32 experts never exceed the 32 candidates that the product-key
search keeps per half (tests/test_tune.py builds every combination).

No Optuna here: `suggest` only calls the `trial.suggest_*` methods, so the models import this
module without the optional dependency.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    """One of a few values (categorical)."""

    name: str
    values: tuple

    def suggest(self, trial):
        return trial.suggest_categorical(self.name, list(self.values))

    def corners(self) -> tuple:
        return self.values


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly from [low, high]."""

    name: str
    low: float
    high: float

    def suggest(self, trial):
        return trial.suggest_float(self.name, self.low, self.high)

    def corners(self) -> tuple:
        return (self.low, self.high)


@dataclass(frozen=True)
class LogUniform:
    """A float drawn log-uniformly from [low, high]; with `or_zero`, first zero or not (a
    categorical `<name>_is_zero`), since a log scale cannot reach 0."""

    name: str
    low: float
    high: float
    or_zero: bool = False

    def suggest(self, trial):
        if self.or_zero and trial.suggest_categorical(f"{self.name}_is_zero", [True, False]):
            return 0.0
        return trial.suggest_float(self.name, self.low, self.high, log=True)

    def corners(self) -> tuple:
        return ((0.0,) if self.or_zero else ()) + (self.low, self.high)


# what every trained model shares: width, depth, dropout and the optimiser
SHARED = (
    Choice("dim", (32, 64, 128)),
    Choice("layers", (1, 2, 3)),
    Uniform("dropout", 0.0, 0.5),
    LogUniform("lr", 1e-4, 1e-2),
    LogUniform("weight_decay", 1e-5, 1e-1, or_zero=True),
)
HEADS = Choice("heads", (1, 2, 4))  # models with attention heads (each width divides by each)
EXPERTS = Choice("num_experts", (4, 8, 16, 32))  # dispatcher models (<= the 32 candidates)
MEMORY = (
    Choice("subkeys", (16, 32, 64)),  # M = 256, 1024 or 4096 slots
    Choice("balance", (0.0, 0.01, 0.05)),
)
CONTEXT = Choice("context", (25, 50, 100, 200, 1000))  # older items for the query (1000: all)


def names(space) -> tuple[str, ...]:
    """The config fields a space varies."""
    return tuple(p.name for p in space)


def suggest(trial, space, fixed=()) -> dict:
    """One setting {field: value} drawn by `trial`; fields in `fixed` are not searched."""
    return {p.name: p.suggest(trial) for p in space if p.name not in fixed}
