"""tune: search spaces valid by construction, pruning from fit's callbacks, the test set never
read, equal budgets counted over resumes, draws that a resume repeats, refused mismatches."""

from __future__ import annotations

import itertools
import json
from dataclasses import fields

import pytest

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.experiments import default_configs, tune
from elastic_edu.models import REGISTRY, build_model, get_spec
from elastic_edu.models.search_space import Choice, LogUniform, names, suggest
from elastic_edu.nn.product_keys import check_product_key_args
from elastic_edu.training import FitResult, Run

optuna = pytest.importorskip("optuna")

CONFIG_FIELDS = {f.name for cls in (ModelConfig, MemoryConfig, TrainConfig) for f in fields(cls)}
TUNED = ("sasrec", "gru4rec", "lda-causal", "elastic-causal")
# a fixed tiny setting: only the rest of each space is searched
TINY = dict(dim=16, layers=1, max_len=12, batch_size=16, epochs=1, device="cpu", key_dim=8)


@pytest.fixture(scope="module")
def split():
    return leave_one_out(load_sequences("synthetic", num_users=40, num_items=60, seq_len=20,
                                        seed=3))  # fmt: skip


def study(split, where, model="sasrec", trials=1, name="s", **kw):
    """run_study on `split` with the tiny fixed setting, stored in a SQLite file in the folder
    `where`, or in `where` itself when it is an Optuna storage (faster to make)."""
    base = {**TINY, **kw.pop("base", {})}
    if not isinstance(where, optuna.storages.BaseStorage):
        where.mkdir(parents=True, exist_ok=True)
        where = tune.storage_url(None, where / "best.json")
    return tune.run_study(split, model, base=base, trials=trials, name=name, storage=where,
                          **kw)  # fmt: skip


@pytest.fixture
def memory():
    """An in-memory Optuna storage (a SQLite file takes seconds to create)."""
    return optuna.storages.InMemoryStorage()


def states(s) -> list[str]:
    return [t.state.name for t in s.get_trials(deepcopy=False)]


def test_each_model_declares_its_own_space():
    space = {m: set(names(get_spec(m).search_space)) for m in TUNED}
    shared = {"dim", "layers", "dropout", "lr", "weight_decay"}
    assert space["sasrec"] == shared | {"heads"}
    assert space["gru4rec"] == shared  # dim is its hidden size: no heads, no experts
    assert space["lda-causal"] == shared | {"heads", "num_experts"}
    assert space["elastic-causal"] == space["lda-causal"] | {"subkeys", "context", "balance"}
    assert get_spec("elastic").search_space == get_spec("elastic-causal").search_space
    for spec in REGISTRY.values():
        assert set(names(spec.search_space)) <= CONFIG_FIELDS, spec.name
    with pytest.raises(ValueError, match="popularity has no hyperparameters"):
        tune.space_of("popularity")


@pytest.mark.parametrize("model", [n for n, s in REGISTRY.items() if s.search_space])
def test_every_combination_of_a_space_is_a_valid_config(model):
    """Invalid settings (dim % heads, candidates < k, k > M) are out by construction."""
    space = get_spec(model).search_space
    grid = [[(p.name, v) for v in p.corners()] for p in space]
    memory = get_spec(model).has_memory
    for setting in itertools.product(*grid):
        mc, tc = default_configs(model, 50, **dict(setting))
        if memory:
            m = mc.memory
            check_product_key_args(m.subkeys, m.key_dim, mc.num_experts, m.candidates)
    for pick in (min, max):  # the smallest and the largest build
        setting = {p.name: pick(p.corners()) for p in space}
        build_model(default_configs(model, 50, **setting)[0])


class FakeTrial:
    """Records what is suggested and reported; prunes when told to."""

    def __init__(self, zero=False, prune=False):
        self.zero, self.prune, self.calls, self.reports = zero, prune, [], []

    def suggest_categorical(self, name, values):
        self.calls.append(name)
        return self.zero if name.endswith("_is_zero") else values[-1]

    def suggest_float(self, name, low, high, log=False):
        self.calls.append(name)
        return high

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune


def test_suggest_leaves_fixed_fields_out_and_log_or_zero_reaches_zero():
    space = (Choice("dim", (32, 64)), LogUniform("weight_decay", 1e-5, 1e-1, or_zero=True))
    trial = FakeTrial(zero=True)
    assert suggest(trial, space, fixed={"dim": 16}) == {"weight_decay": 0.0}
    assert trial.calls == ["weight_decay_is_zero"]  # no log draw when it is zero
    assert suggest(FakeTrial(zero=False), space) == {"dim": 64, "weight_decay": 1e-1}


def test_report_validation_reports_each_epoch_and_stops_a_pruned_run():
    run = Run(model=None, optimizer=None, config=TrainConfig(), rng=None)
    trial = FakeTrial(prune=False)
    hook = tune.ReportValidation(trial)
    run.epoch, run.history = 1, [{"epoch": 1, "loss": 1.0}]  # not validated: nothing reported
    hook.on_epoch_end(run)
    run.epoch, run.history = 2, [*run.history, {"epoch": 2, "valid_NDCG@10": 0.25}]
    hook.on_epoch_end(run)
    assert trial.reports == [(2, 0.25)] and run.stopped is None
    trial.prune = True
    hook.on_epoch_end(run)
    assert run.stopped == "pruned"


def test_trials_never_see_the_test_set(split, memory, monkeypatch):
    seen = []
    fit = tune.fit

    def spy(model, s, config, **kw):
        seen.append(s.test)
        return fit(model, s, config, **kw)

    monkeypatch.setattr(tune, "fit", spy)
    s = study(split, memory, trials=2)
    assert seen == [None, None] and split.test is not None
    payload = tune.summary(s, budget=2, storage="x", device="cpu")

    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    assert not [k for k in keys(payload) if str(k).startswith("test")]
    assert payload["metric"] == "valid NDCG@10"
    assert payload["best"]["valid"]["NDCG@10"] == payload["best"]["valid_NDCG@10"]


def test_a_resumed_study_runs_only_the_missing_trials_and_draws_the_same(split, tmp_path):
    first = study(split, tmp_path / "a", trials=1)
    assert states(first) == ["COMPLETE"]
    resumed = study(split, tmp_path / "a", trials=2)
    again = study(split, tmp_path / "a", trials=2)  # the budget is spent: nothing runs
    straight = study(split, tmp_path / "b", trials=2)
    assert states(resumed) == states(again) == ["COMPLETE", "COMPLETE"]
    params = lambda s: [t.params for t in s.get_trials()]  # noqa: E731
    assert params(resumed) == params(straight)  # re-seeded before each trial: the same draws
    assert params(resumed)[0] != params(resumed)[1]
    assert len(resumed.user_attrs["commands"]) == 3


def test_an_interrupted_trial_does_not_count_and_is_run_again(split, tmp_path, monkeypatch):
    fit = tune.fit

    def interrupted(model, *args, **kw):  # what fit returns after Ctrl-C
        return FitResult(model=model, stopped="interrupted")

    monkeypatch.setattr(tune, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        study(split, tmp_path, trials=2)
    monkeypatch.setattr(tune, "fit", fit)
    s = study(split, tmp_path, trials=2)
    assert states(s) == ["FAIL", "COMPLETE", "COMPLETE"] and tune.counted(s) == 2
    trials = s.get_trials()
    assert trials[0].params == trials[1].params != trials[2].params  # the same setting again
    assert tune.summary(s, budget=2, storage="x", device="cpu")["trials"]["failed"] == 1


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


def test_pruned_and_diverged_trials_use_up_the_budget(split, memory, monkeypatch):
    s = study(split, memory, trials=2, pruner=AlwaysPrune(), base={"epochs": 3})
    assert states(s) == ["PRUNED", "PRUNED"]
    rows = [tune.trial_row(t) for t in s.get_trials()]
    assert [(r["stopped"], r["epochs"]) for r in rows] == [("pruned", 1), ("pruned", 1)]
    payload = tune.summary(s, budget=2, storage="x", device="cpu")
    assert payload["best"] is None and payload["config"] is None and payload["finished"]
    assert "pruned" in tune.trial_line(rows[0], 1, 2)

    def diverged(*args, **kw):
        raise FloatingPointError("training loss is nan at epoch 1, step 1")

    monkeypatch.setattr(tune, "fit", diverged)
    s = study(split, memory, name="d", trials=1)
    assert states(s) == ["PRUNED"] and tune.trial_row(s.trials[0])["stopped"] == "diverged"


def test_resuming_with_other_settings_is_refused(split, memory):
    study(split, memory, trials=1)
    with pytest.raises(ValueError, match=r"other settings.*'epochs': \[1, 2\]"):
        study(split, memory, trials=2, base={"epochs": 2})


def test_the_best_trial_gives_a_config_train_can_read(split, memory):
    s = study(split, memory, model="lda-causal", trials=2)
    payload = tune.summary(s, budget=2, storage="x", device="cpu", dataset="synthetic")
    best = max((t for t in s.trials), key=lambda t: t.value)
    assert payload["best"]["number"] == best.number and payload["trials"]["complete"] == 2
    config = payload["config"]
    assert config["dataset"] == "synthetic" and config["model"]["dim"] == 16
    assert config["model"]["num_experts"] == best.params["num_experts"]
    assert config["train"]["lr"] == pytest.approx(payload["best"]["params"]["lr"])
    assert ModelConfig.from_dict(config["model"]).model == "lda-causal"
    assert len(payload["all_trials"]) == 2 and payload["seconds"]["total"] > 0
    json.dumps(payload)


def test_storage_and_study_name():
    assert tune.storage_url(None, "/x/best.json") == "sqlite:////x/best.study.db"
    assert tune.storage_url("/x/s.db", "/x/best.json") == "sqlite:////x/s.db"
    assert tune.storage_url("postgresql://h/db", "b.json") == "postgresql://h/db"
    assert tune.study_name("elastic", "../shared/data/ml-100k", 2) == "elastic-causal-ml-100k-seed2"
