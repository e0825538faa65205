"""Configuration dataclasses: one documented place for every knob of models and training.

Checkpoints store `ModelConfig` and refuse to load into a model built with a different one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODELS = ("sasrec", "elastic", "lda", "popularity")


@dataclass
class ModelConfig:
    """Architecture of a sequential recommender.

    model: ``sasrec`` (causal transformer), ``elastic`` (memory retrieval + dispatcher
        attention), ``lda`` (dispatcher attention over k plain learned experts) or ``popularity``.
    num_items: catalogue size I (ids 1..I; 0 is padding). Set from the data.
    max_len: history length N kept (left-truncated).
    dim, heads, layers, dropout: transformer width d, heads h (d % h == 0), depth L, dropout.
    attention: SASRec back-end, ``naive`` (materialises N x N) or ``sdpa``
        (torch's scaled_dot_product_attention).
    experts: number k of interest experts (ELASTIC, LDA).
    subkeys: m, sub-keys per half of the product-key memory (M = m*m slots).
    candidates: c, candidates kept per half in the product-key search (c >= k).
    key_dim: d_k, dimension of the retrieval query and of the product keys (even).
    """

    model: str = "sasrec"
    num_items: int = 0
    max_len: int = 50
    dim: int = 64
    heads: int = 2
    layers: int = 2
    dropout: float = 0.2
    attention: str = "sdpa"
    experts: int = 32
    subkeys: int = 32
    candidates: int = 32
    key_dim: int = 64

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model={self.model!r}: choose one of {', '.join(MODELS)}")
        if self.attention not in ("naive", "sdpa"):
            raise ValueError(f"attention={self.attention!r}: choose 'naive' or 'sdpa'")
        for name in ("max_len", "dim", "heads", "layers", "experts", "subkeys", "key_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} is not divisible by heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must lie in [0, 1)")
        if self.model == "elastic":
            if self.experts > self.subkeys**2:
                raise ValueError(
                    f"experts={self.experts} is larger than the memory's "
                    f"M = subkeys**2 = {self.subkeys**2} slots"
                )
            if self.candidates < self.experts and self.candidates < self.subkeys:
                raise ValueError(
                    f"candidates={self.candidates} is smaller than experts={self.experts}: "
                    "the product-key search would not be exact"
                )
            if self.key_dim % 2:
                raise ValueError(f"key_dim={self.key_dim} must be even (two halves)")

    @property
    def causal(self) -> bool:
        """True when the output at position t depends on items up to t only."""
        return self.model == "sasrec"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**values)


@dataclass
class TrainConfig:
    """Training loop settings for `elastic_edu.train.fit`.

    objective: ``all`` (a causal model predicts every next item of a training window) or
        ``cut`` (random cut points: history before the cut predicts the item at the cut; the
        only objective allowed for a non-causal encoder such as ELASTIC).
    cuts_per_user: cut points drawn per user and epoch for ``cut``.
    epochs, batch_size, lr, weight_decay: AdamW settings.
    memory_lr_scale: learning-rate multiplier for product-key memory values.
    patience: stop after this many validations without a better validation NDCG@10.
    eval_every: validate every this many epochs.
    max_minutes: wall-clock budget for training (None: no limit).
    seed: seeds python, numpy and torch; CPU runs repeat exactly.
    device: ``auto`` (cuda > mps > cpu) or an explicit device.
    bf16: use bf16 autocast on CUDA.
    """

    objective: str = "all"
    cuts_per_user: int = 8
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    memory_lr_scale: float = 10.0
    patience: int = 10
    eval_every: int = 1
    max_minutes: float | None = 15.0
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.objective not in ("all", "cut"):
            raise ValueError(f"objective={self.objective!r}: choose 'all' or 'cut'")
        for name in ("cuts_per_user", "epochs", "batch_size", "patience", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr} must be positive")

    def to_dict(self) -> dict:
        return asdict(self)
