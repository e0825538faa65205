"""Configuration dataclasses: one documented place for every knob of models and training.

Each field carries its one-line help (``metadata["help"]``); the command line is generated from
these fields, so a default or a help text changes here only. Checkpoints store `ModelConfig` and
refuse to load into a model built with a different one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields


def _opt(default, help: str, **kw):  # noqa: A002 - the field's help text
    """A dataclass field with its command-line help."""
    if isinstance(default, (list, dict)) or callable(default):
        return field(default_factory=default, metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def _positive(obj, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be an integer of at least 1")


def _finite(obj, name: str, low: float, high: float = math.inf, *, open_low=False) -> None:
    value = getattr(obj, name)
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    if not ok:
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise ValueError(f"{name}={value!r} must be a finite number in {bound}")


@dataclass
class MemoryConfig:
    """The product-key interest memory of ELASTIC (Lample et al. 2019): M = subkeys**2 slots.

    The rules that tie it to the number of experts k (k <= M, c >= k) are checked by
    `elastic_edu.nn.product_keys.check_product_key_args` when the memory is built.
    """

    subkeys: int = _opt(32, "m, sub-keys per half of the product-key memory (M = m*m slots)")
    candidates: int = _opt(32, "c, candidates kept per half in the product-key search (c >= k)")
    key_dim: int = _opt(64, "d_k, width of the retrieval query and of the product keys (even)")
    context: int = _opt(50, "older items before the window that form the retrieval query "
                            "(elastic-causal)")  # fmt: skip
    balance: float = _opt(0.0, "weight of the sub-key load-balancing loss (0: off)")

    def __post_init__(self) -> None:
        _positive(self, "subkeys", "candidates", "key_dim", "context")
        _finite(self, "balance", 0.0)
        if self.key_dim % 2:
            raise ValueError(f"key_dim={self.key_dim} must be even (two halves)")
        if self.subkeys > 4096:
            raise ValueError(
                f"subkeys={self.subkeys} would make a memory of M = subkeys**2 = "
                f"{self.subkeys**2:,} slots: lower subkeys to at most 4096 (M = 16.8M slots)"
            )


@dataclass
class ModelConfig:
    """Architecture of a recommender. `model` names an entry of `elastic_edu.models.REGISTRY`."""

    model: str = _opt("sasrec", "model name (see --help for the list)")
    num_items: int = _opt(0, "catalogue size I (ids 1..I, 0 is padding); set from the data")
    max_len: int = _opt(50, "history length N kept (left-truncated)")
    dim: int = _opt(64, "model width d")
    heads: int = _opt(2, "attention heads h (dim % heads == 0)")
    layers: int = _opt(2, "layers L")
    dropout: float = _opt(0.2, "dropout probability")
    attention: str = _opt("sdpa", "SASRec attention back-end: naive (N x N) or sdpa (fused)",
                          choices=("naive", "sdpa"))  # fmt: skip
    num_experts: int = _opt(8, "k, interest experts per user (dispatcher models)")
    memory: MemoryConfig = _opt(MemoryConfig, "product-key memory (ELASTIC)")

    def __post_init__(self) -> None:
        if isinstance(self.memory, dict):
            self.memory = MemoryConfig(**self.memory)
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model={self.model!r} must be a model name")
        if self.attention not in ("naive", "sdpa"):
            raise ValueError(f"attention={self.attention!r}: choose 'naive' or 'sdpa'")
        _positive(self, "max_len", "dim", "heads", "layers", "num_experts")
        if isinstance(self.num_items, bool) or not isinstance(self.num_items, int):
            raise ValueError(f"num_items={self.num_items!r} must be an integer")
        if self.num_items < 0:
            raise ValueError(f"num_items={self.num_items} must not be negative")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} is not divisible by heads={self.heads}")
        _finite(self, "dropout", 0.0, 0.99)
        if self.max_len > 1_048_576:
            raise ValueError(f"max_len={self.max_len:,}: lower it to at most 1,048,576 positions")
        if self.dim > 16384:
            raise ValueError(f"dim={self.dim}: lower it to at most 16384")

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
    """Training settings for `elastic_edu.training.fit`."""

    objective: str = _opt("all", "all (causal models: every position), cut (history -> next "
                                 "item) or cloze (masked items)",
                          choices=("all", "cut", "cloze"))  # fmt: skip
    cuts_per_user: int = _opt(8, "cut: cut points drawn per user and epoch")
    mask_prob: float = _opt(0.2, "cloze: fraction of a window's items replaced by [MASK]")
    last_prob: float = _opt(0.1, "cloze: fraction of windows that mask only their last item")
    epochs: int = _opt(200, "most epochs (early stopping usually ends sooner)")
    batch_size: int = _opt(128, "training batch size")
    length_buckets: bool = _opt(False, "objectives all and cloze: windows of similar length "
                                       "share a batch (less padding; cut always does)")  # fmt: skip
    lr: float = _opt(1e-3, "AdamW learning rate")
    weight_decay: float = _opt(0.0, "AdamW weight decay")
    memory_lr_scale: float = _opt(10.0, "learning-rate multiplier for memory value rows")
    patience: int = _opt(20, "stop after this many validations without a better NDCG@10 "
                             "(validation on 943 users is noisy: 10 stopped GRU4Rec and ELASTIC "
                             "while they still improved)")  # fmt: skip
    eval_every: int = _opt(1, "validate every this many epochs")
    max_minutes: float | None = _opt(None, "wall-clock budget for training, checked every "
                                           "step (none: no limit)")  # fmt: skip
    seed: int = _opt(0, "seed for python, numpy and torch (CPU runs repeat exactly)")
    device: str = _opt("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps")
    bf16: bool = _opt(True, "bf16 autocast on CUDA")
    eval_batch_size: int = _opt(256, "users per evaluation batch")

    def __post_init__(self) -> None:
        if self.objective not in ("all", "cut", "cloze"):
            raise ValueError(f"objective={self.objective!r}: choose 'all', 'cut' or 'cloze'")
        _positive(self, "cuts_per_user", "epochs", "batch_size", "patience", "eval_every",
                  "eval_batch_size")  # fmt: skip
        _finite(self, "lr", 0.0, 10.0, open_low=True)
        _finite(self, "weight_decay", 0.0)
        _finite(self, "memory_lr_scale", 0.0, open_low=True)
        _finite(self, "mask_prob", 0.0, 1.0, open_low=True)
        _finite(self, "last_prob", 0.0, 1.0)
        if self.max_minutes is not None:
            _finite(self, "max_minutes", 0.0, open_low=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be a non-negative integer")

    def to_dict(self) -> dict:
        return asdict(self)


# The settings a name reaches without its section: command-line options (--subkeys), the
# parameters of a search space, `tune`'s fixed settings. ModelConfig's `model`, `num_items` and
# `memory` are set otherwise (--model, the data, the memory's own fields).
SECTIONS = {"model": ModelConfig, "memory": MemoryConfig, "train": TrainConfig}
NOT_SETTINGS = {"model", "num_items", "memory"}


def setting_sections() -> dict[str, str]:
    """{setting name: its section} of every setting a flat name reaches; a name that two
    sections share would be ambiguous: ValueError (tests/test_config.py holds the fields to it)."""
    sections = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            if section == "model" and f.name in NOT_SETTINGS:
                continue
            if f.name in sections:
                raise ValueError(f"setting {f.name!r} is a field of both {sections[f.name]} and "
                                 f"{section}: rename one, flat names must be unique")  # fmt: skip
            sections[f.name] = section
    return sections


def nest(settings: dict) -> dict[str, dict]:
    """Flat settings {name: value} -> {section: {name: value}}; None values are left out (unset)
    and an unknown name is a ValueError."""
    where = setting_sections()
    unknown = sorted(set(settings) - set(where))
    if unknown:
        raise ValueError(f"unknown settings: {unknown}")
    out = {section: {} for section in SECTIONS}
    for name, value in settings.items():
        if value is not None:
            out[where[name]][name] = value
    return out


def merge(*layers: dict[str, dict]) -> dict[str, dict]:
    """Nested settings laid over each other, section by section: later layers win."""
    out = {section: {} for section in SECTIONS}
    for layer in layers:
        for section, values in layer.items():
            out[section].update(values)
    return out


def read_config_file(path) -> tuple[dict[str, dict], str | None]:
    """Settings from a config JSON: a `tune` output or a `train` result (their "config" block),
    or a bare {"model": {...}, "train": {...}, "dataset": ...}.

    Returns (settings, dataset): settings by section {"model": ..., "memory": ..., "train": ...}
    (the model's name under "model", ``num_items`` dropped, since the data set it), and the
    data set the file names (or None). An unknown key is a ValueError naming the file and the key.
    """
    import json
    from pathlib import Path

    path = Path(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"--config {path}: not a readable JSON file ({err})") from None
    block = payload.get("config", payload) if isinstance(payload, dict) else None
    if not isinstance(block, dict) or not isinstance(block.get("model", {}), dict):
        raise ValueError(f"--config {path}: expected an object with 'model' and 'train' settings")
    _refuse_unknown(path, "", block, {"model", "train", "dataset"})
    model = dict(block.get("model") or {})
    train = dict(block.get("train") or {})
    _refuse_unknown(path, "model.", model, {f.name for f in fields(ModelConfig)})
    _refuse_unknown(path, "train.", train, {f.name for f in fields(TrainConfig)})
    memory = model.pop("memory", None)
    memory = {} if memory is None else memory
    if not isinstance(memory, dict):
        raise ValueError(f"--config {path}: model.memory must be an object")
    _refuse_unknown(path, "model.memory.", memory, {f.name for f in fields(MemoryConfig)})
    model.pop("num_items", None)
    return {"model": model, "memory": memory, "train": train}, block.get("dataset") or None


def _refuse_unknown(path, prefix: str, values: dict, known: set) -> None:
    """A ValueError naming the file and the first key of `values` not in `known`."""
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"--config {path}: unknown key {prefix}{unknown[0]!r} "
            f"(known: {', '.join(sorted(known))}); remove it or fix its spelling"
        )
