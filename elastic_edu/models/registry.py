"""The model registry: every model is declared once, by its class, and everything reads it.

A model class sets `name`, `objectives`, `default_objective`, `uses` (the ModelConfig fields it
reads beyond the shared ones) and `search_space` (what `tune` varies, elastic_edu.search_space)
and is decorated with `register`. The command line, the bench,
the widgets and `elastic_edu.experiment` take model names, objectives and help text from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from elastic_edu.config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """What the rest of the package needs to know about one model."""

    name: str
    cls: type
    objectives: tuple[str, ...]
    default_objective: str | None
    uses: tuple[str, ...]
    causal: bool
    streams: bool
    summary: str
    search_space: tuple = ()  # what `tune` varies (elastic_edu.search_space)

    @property
    def trainable(self) -> bool:
        return bool(self.objectives)


REGISTRY: dict[str, ModelSpec] = {}
# Short names for the variant we recommend (README, "Which ELASTIC"): `elastic` trains the best
# ELASTIC form found on ML-100K, `lda` its LDA-only ablation in the same form.
ALIASES = {"elastic": "elastic-causal", "lda": "lda-causal"}


def register(cls: type) -> type:
    """Class decorator: add `cls` to the registry under `cls.name`."""
    name = cls.name
    if not name or name in REGISTRY:
        raise ValueError(f"model name {name!r} is empty or registered twice")
    if cls.objectives and cls.default_objective not in cls.objectives:
        raise ValueError(f"{name}: default_objective must be one of {cls.objectives}")
    summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else name
    REGISTRY[name] = ModelSpec(
        name=name, cls=cls, objectives=tuple(cls.objectives),
        default_objective=cls.default_objective, uses=tuple(cls.uses), causal=cls.causal,
        streams=cls.streams, summary=summary, search_space=tuple(cls.search_space),
    )  # fmt: skip
    return cls


def model_names() -> tuple[str, ...]:
    """Every name `get_spec` accepts: the registered models, then the aliases."""
    return (*REGISTRY, *ALIASES)


def get_spec(name: str) -> ModelSpec:
    """The spec of model `name` (an alias resolves to its model); a ValueError lists the names."""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ValueError(f"model={name!r}: choose one of {', '.join(model_names())}")
    return REGISTRY[name]


def build_model(config: ModelConfig):
    """The model named by `config.model`, untrained (popularity counts in `fit`)."""
    return get_spec(config.model).cls(config)


def check_objective(model_name: str, objective: str) -> str:
    """`objective`, or a ValueError saying which objectives `model_name` supports and why."""
    spec = get_spec(model_name)
    model_name = spec.name
    if objective in spec.objectives:
        return objective
    if not spec.trainable:
        raise ValueError(f"model {model_name!r} is not trained: it takes no objective")
    if objective == "all" and not spec.causal:
        raise ValueError(
            f"model {model_name!r} is not causal: its experts read the whole history, so the "
            "state at position t already saw the items after t, and training every position "
            "would leak the future. Use objective 'cloze' or 'cut', or a causal model such as "
            "'elastic-causal'."
        )
    raise ValueError(f"model {model_name!r} supports objectives {', '.join(spec.objectives)}")
