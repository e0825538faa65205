"""The model registry: the one place that maps names to model classes.

A model class declares its facts as class attributes (`elastic_edu.models.base.Recommender`:
`name`, `objectives`, `default_objective`, `causal`, `streams`, `encodes`, `backends`,
`has_experts`, `has_memory`, `search_space`) and is decorated with `register`. Everything else
(the command line, `fit`, the bench, the widgets, `elastic_edu.experiments`) finds a model by
name here and then asks the model, never its name.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from elastic_edu.config import ModelConfig

# what a spec hands on from its class (the facts of `elastic_edu.models.base.Recommender`)
FACTS = ("objectives", "default_objective", "causal", "streams", "encodes", "backends",
         "has_experts", "has_memory", "search_space")  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, its class and the first line of its docstring; every fact
    in FACTS is read from the class (``spec.causal`` is ``spec.cls.causal``)."""

    name: str
    cls: type
    summary: str

    def __getattr__(self, fact: str):
        if fact in FACTS:
            return getattr(self.cls, fact)
        raise AttributeError(f"{type(self).__name__} has no attribute {fact!r}")

    @property
    def trainable(self) -> bool:
        return bool(self.objectives)

    @property
    def uses(self) -> tuple[str, ...]:
        """The ModelConfig fields it reads beyond the shared ones (from its facts)."""
        read = {"attention": self.backends, "num_experts": self.has_experts,
                "memory": self.has_memory}  # fmt: skip
        return tuple(name for name, used in read.items() if used)


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
    REGISTRY[name] = ModelSpec(name=name, cls=cls, summary=summary)
    return cls


def model_names() -> tuple[str, ...]:
    """Every name `get_spec` accepts: the registered models, then the aliases."""
    return (*REGISTRY, *ALIASES)


def name_in(label: str, aliases: bool = True) -> str | None:
    """The model name a label is, or begins with before a "-": the longest that fits
    (``elastic-causal-k16`` -> elastic-causal, not the alias elastic), or None. With `aliases`
    False, registered names only."""
    names = model_names() if aliases else tuple(REGISTRY)
    found = [n for n in names if label == n or label.startswith(n + "-")]
    return max(found, key=len) if found else None


def get_spec(name: str) -> ModelSpec:
    """The spec of model `name` (an alias resolves to its model); a ValueError lists the names."""
    name = ALIASES.get(name, name)
    if name not in REGISTRY:
        raise ValueError(f"model={name!r}: choose one of {', '.join(model_names())}")
    return REGISTRY[name]


def build_model(config: ModelConfig, seed: int | None = None):
    """The model named by `config.model`, untrained (popularity counts in `fit`).

    seed: seed torch first, so that the initial weights depend on the seed alone (training is
    seeded again by `fit`, from TrainConfig.seed).
    """
    if seed is not None:
        torch.manual_seed(seed)
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
