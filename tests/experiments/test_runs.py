"""experiments.runs: configs per model from settings by section, the JSON contract."""

from __future__ import annotations

import pytest

from elastic_edu.data import leave_one_out
from elastic_edu.experiments import configs, default_configs, run
from elastic_edu.experiments.runs import epoch_seconds


def test_default_configs_follow_the_registry_and_route_overrides():
    mc, tc = default_configs("elastic", 100, subkeys=8, num_experts=4, lr=0.01, seed=None)
    assert mc.model == "elastic-causal" and tc.objective == "all"  # the alias, canonical
    assert mc.memory.subkeys == 8 and mc.num_experts == 4 and tc.lr == 0.01 and tc.seed == 0
    assert default_configs("elastic-bidir", 100)[1].objective == "cloze"
    with pytest.raises(ValueError, match="unknown settings.*colour"):
        default_configs("sasrec", 100, colour="red")


def test_run_writes_the_contract(tiny_dir):
    from elastic_edu.data import load_sequences

    split = leave_one_out(load_sequences(tiny_dir))
    small = dict(dim=8, heads=2, layers=1, max_len=4, epochs=2, subkeys=4, candidates=4,
                 key_dim=4, num_experts=2)  # fmt: skip
    mc, tc = default_configs("elastic", split.num_items, **small)
    result = run(split, mc, tc, progress=False)
    assert set(result["ranks"]) == {"valid", "test", "test_masked"}
    assert len(result["ranks"]["test"]) == len(result["history_lengths"]) == len(split.test)
    assert result["epochs"] == 2 and result["stopped"] == "epochs"
    assert result["interests"]["slots"]["fraction_used"] > 0
    assert result["interests"]["assignments"]["effective_experts"] >= 1.0


def test_configs_take_settings_by_section():
    settings = {"model": {"dim": 32}, "memory": {"subkeys": 8}, "train": {"lr": 0.01}}
    mc, tc = configs("elastic", 100, settings)
    assert (mc.dim, mc.memory.subkeys, tc.lr, tc.objective) == (32, 8, 0.01, "all")
    assert (mc, tc) == default_configs("elastic", 100, dim=32, subkeys=8, lr=0.01)


def test_epoch_seconds():
    history = [{"epoch": 1, "seconds": 2.0}, {"epoch": 2, "seconds": 3.0},
               {"epoch": 3, "seconds": 7.0}]  # fmt: skip
    assert epoch_seconds(history) == 2.0 and epoch_seconds([]) is None
