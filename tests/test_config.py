"""The configs refuse every out-of-range, negative or non-finite setting when they are built."""

from __future__ import annotations

import math

import pytest

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", math.nan),
        ("lr", math.inf),
        ("lr", 0.0),
        ("lr", -1e-3),
        ("weight_decay", -0.1),
        ("weight_decay", math.nan),
        ("memory_lr_scale", -1.0),
        ("memory_lr_scale", 0.0),
        ("mask_prob", 0.0),
        ("mask_prob", 1.5),
        ("last_prob", -0.1),
        ("max_minutes", -1.0),
        ("max_minutes", math.inf),
        ("eval_batch_size", 0),
        ("batch_size", -1),
        ("epochs", 0),
        ("patience", 0),
        ("eval_every", 0),
        ("cuts_per_user", 0),
        ("seed", -1),
        ("epochs", 2.5),
        ("batch_size", True),
        ("objective", "next"),
    ],
)
def test_train_config_refuses(field, value):
    # the old TrainConfig checked only the objective, the counts and lr > 0 (NaN passed)
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value",
    [
        ("dropout", math.nan),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("max_len", 0),
        ("max_len", 1_048_577),
        ("dim", 20_000),
        ("heads", 0),
        ("num_experts", 0),
        ("num_items", -1),
        ("attention", "flash"),
        ("model", ""),
    ],
)
def test_model_config_refuses(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{field: value})


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("subkeys", 100_000, "lower subkeys to at most 4096"),
        ("subkeys", 0, "subkeys=0 must be an integer of at least 1"),
        ("key_dim", 7, "key_dim=7 must be even"),
        ("candidates", -2, "candidates=-2"),
        ("context", 0, "context=0"),
        ("balance", -1.0, "balance=-1.0"),
        ("balance", math.nan, "balance=nan"),
    ],
)
def test_memory_config_refuses(field, value, message):
    with pytest.raises(ValueError, match=message):
        MemoryConfig(**{field: value})


def test_defaults_are_valid_and_round_trip():
    mc = ModelConfig(num_items=10)
    assert ModelConfig.from_dict(mc.to_dict()) == mc  # the nested memory comes back too
    assert isinstance(ModelConfig.from_dict(mc.to_dict()).memory, MemoryConfig)
    assert TrainConfig().eval_batch_size == 256
    with pytest.raises(ValueError, match="unknown ModelConfig fields.*experts"):
        ModelConfig.from_dict({**mc.to_dict(), "experts": 4})


def test_flat_setting_names_are_unique_across_the_sections():
    """A flat name (--subkeys, a search-space parameter, tune's fixed settings) reaches exactly
    one field: no field name repeats across ModelConfig, MemoryConfig and TrainConfig."""
    from dataclasses import fields

    from elastic_edu.config import NOT_SETTINGS, SECTIONS, nest, setting_sections

    names = [f.name for section, cls in SECTIONS.items() for f in fields(cls)
             if not (section == "model" and f.name in NOT_SETTINGS)]  # fmt: skip
    assert len(names) == len(set(names)) == len(setting_sections())
    nested = nest({"subkeys": 8, "dim": 32, "lr": 0.01, "seed": None})
    assert nested == {"model": {"dim": 32}, "memory": {"subkeys": 8}, "train": {"lr": 0.01}}
    with pytest.raises(ValueError, match="unknown settings.*colour"):
        nest({"colour": "red"})


def test_a_name_in_two_sections_is_refused(monkeypatch):
    import elastic_edu.config as config

    @config.dataclass
    class Clash:
        lr: float = 0.1

    monkeypatch.setitem(config.SECTIONS, "clash", Clash)
    with pytest.raises(ValueError, match="'lr' is a field of both train and clash"):
        config.setting_sections()
