"""Equal-budget hyperparameter search with Optuna: ``python -m elastic_edu tune``.

    python -m elastic_edu tune --model sasrec --dataset ml-100k --trials 20 --out tuned/sasrec.json
    python -m elastic_edu train --config tuned/sasrec.json --seed 1

Every model gets the same budget: ``--trials`` trials, each trained by `elastic_edu.training.fit`
for at most ``--epochs`` epochs with early stopping after ``--patience`` validations without
progress. A trial draws a setting from the model's search space (its class's `search_space`,
`elastic_edu.models.search_space`) with Optuna's TPE sampler, seeded by ``--seed``; after every
validation a callback reports the validation NDCG@10 to the trial, and the median pruner stops
a trial whose curve falls below the median of the finished trials at the same epoch. A trial's
value is its best validation NDCG@10. Settings given on the command line are fixed, not searched.

Tuning never reads the test targets: every trial trains and validates on `validation_only(split)`,
whose test set is removed, and the output holds validation metrics only. Test metrics come later,
from ``train --config`` or ``compare --config`` with the best config.

The study is stored in SQLite through Optuna's storage (default: beside ``--out``, ``best.json``
-> ``best.study.db``), named after the model, the data set and the seed, so the same command
again resumes it and runs only the missing trials: complete and pruned trials count against the
budget, failed or interrupted ones are run again. The sampler is re-seeded from (seed, trials
done) before each trial, so a resumed study draws what an uninterrupted one would have drawn (an
interrupted trial is run again with the same setting).
The JSON at ``--out`` (best config, every trial, timings) is rewritten after every trial.
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device, describe_device
from elastic_edu.experiments.runs import default_configs
from elastic_edu.models import NonFiniteScores, build_model, get_spec
from elastic_edu.models.search_space import names, suggest
from elastic_edu.options import UserError
from elastic_edu.training import Callback, Run, fit

INSTALL = "pip install 'elastic_edu[tune]'"
# settings that change where or how fast a trial runs, not what it learns: a resume may differ
UNCHECKED = ("device", "eval_batch_size")
COUNTED = ("COMPLETE", "PRUNED")  # trial states that use up the budget


def require_optuna():
    """The optuna module, or a UserError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise UserError(f"tune needs Optuna, which is not installed: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours
    return optuna


def storage_path(storage: str | None, out: str | Path) -> Path | None:
    """The SQLite file of the study: `storage` when it is a path, by default beside `out`
    (best.json -> best.study.db); None when `storage` is a URL."""
    if storage and "://" in storage:
        return None
    return Path(storage) if storage else Path(out).with_suffix(".study.db")


def storage_url(storage: str | None, out: str | Path) -> str:
    """An Optuna storage URL: `storage` as given (a URL, or a file path for SQLite), by default a
    SQLite file beside `out`."""
    path = storage_path(storage, out)
    return storage if path is None else f"sqlite:///{path.resolve()}"


def study_name(model: str, dataset: str, seed: int) -> str:
    """The study's name in its storage: one study per model, data set and seed."""
    return f"{get_spec(model).name}-{Path(str(dataset)).name}-seed{seed}"


def space_of(model: str) -> tuple:
    """The search space of `model`; a ValueError for a model with nothing to tune."""
    spec = get_spec(model)
    if not spec.trainable or not spec.search_space:
        raise ValueError(f"--model {model}: {spec.name} has no hyperparameters to tune")
    return spec.search_space


def validation_only(split: LOOSplit) -> LOOSplit:
    """`split` without its test set: what every trial sees (reading the test set would fail)."""
    return replace(split, test=None)


def flat_settings(mc: ModelConfig, tc: TrainConfig) -> dict:
    """Every field of the two configs by name (the memory's beside the model's)."""
    model = mc.to_dict()
    return {**{k: v for k, v in model.items() if k != "memory"}, **model["memory"], **tc.to_dict()}


class ReportValidation(Callback):
    """After each validation, report the epoch's validation NDCG@10 to the Optuna trial, and stop
    training (``stopped = "pruned"``) when the trial's pruner says so."""

    def __init__(self, trial):
        self.trial = trial

    def on_epoch_end(self, run: Run) -> None:
        row = run.history[-1]
        if "valid_NDCG@10" not in row:
            return
        self.trial.report(row["valid_NDCG@10"], step=run.epoch)
        if self.trial.should_prune():
            run.stop("pruned")


def objective(trial, *, model: str, split: LOOSplit, base: dict, space: tuple) -> float:
    """Train one trial's setting; its best validation NDCG@10 (the only metric it reads).

    A pruned or diverged trial raises optuna.TrialPruned (it counts against the budget); an
    interrupted one raises KeyboardInterrupt (it is run again when the study resumes).
    """
    import optuna

    started = time.perf_counter()
    params = suggest(trial, space, fixed=base)
    try:
        mc, tc = default_configs(model, split.num_items, **{**base, **params})
    except ValueError as err:
        raise ValueError(f"trial {trial.number} ({params}): {err}") from None
    trial.set_user_attr("settings", params)
    trial.set_user_attr("config", {"model": mc.to_dict(), "train": tc.to_dict()})
    try:
        fitted = fit(build_model(mc, seed=tc.seed), split, tc, progress=False,
                     callbacks=[ReportValidation(trial)])  # fmt: skip
    except (NonFiniteScores, FloatingPointError) as err:
        _record(trial, started, stopped="diverged", error=str(err))
        raise optuna.TrialPruned(f"diverged: {err}") from None
    _record(trial, started, stopped=fitted.stopped, epochs=len(fitted.history),
            best_epoch=fitted.best_epoch, valid=fitted.best_valid,
            train_seconds=fitted.train_seconds)  # fmt: skip
    if fitted.stopped == "interrupted":
        raise KeyboardInterrupt
    if fitted.stopped == "pruned":
        raise optuna.TrialPruned(f"pruned at epoch {len(fitted.history)}")
    return fitted.best_valid["NDCG@10"]


def _record(trial, started: float, **attrs) -> None:
    """Store a trial's outcome with it (user attributes), with its wall-clock seconds."""
    for key, value in {**attrs, "seconds": time.perf_counter() - started}.items():
        trial.set_user_attr(key, value)


def make_sampler(seed: int, done: int):
    """TPE seeded from (seed, trials done so far): a resumed study, and a trial run again after
    an interruption, draw what an uninterrupted study would have drawn."""
    import optuna

    state = int(np.random.SeedSequence([seed, done]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=state)


def make_pruner(kind: str, warmup: int, startup: int = 5):
    """The median pruner (no pruning before `startup` finished trials and `warmup` epochs)."""
    import optuna

    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)


def open_study(storage: str, name: str, fixed: dict, pruner, command: str):
    """Create the study, or load it to resume; a stored study made with other settings is a
    ValueError naming the storage and the settings that differ."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                pruner=pruner, load_if_exists=True)  # fmt: skip
    stored = study.user_attrs.get("fixed")
    if stored is None:
        study.set_user_attr("fixed", fixed)
    elif stored != fixed:
        diff = {k: [stored.get(k), fixed.get(k)] for k in sorted({*stored, *fixed})
                if stored.get(k) != fixed.get(k)}  # fmt: skip
        raise ValueError(
            f"--storage {storage}: study {name!r} was made with other settings "
            f"(stored, now): {diff}; repeat its settings to resume, or give another --out or "
            "--storage for a new study"
        )
    study.set_user_attr("commands", [*study.user_attrs.get("commands", []), command])
    return study


def counted(study) -> int:
    """Trials that used up budget: complete and pruned (diverged trials are pruned)."""
    return sum(t.state.name in COUNTED for t in study.get_trials(deepcopy=False))


def run_study(
    split: LOOSplit,
    model: str,
    *,
    base: dict,
    trials: int,
    storage: str,
    name: str,
    pruner=None,
    command: str = "",
    on_trial=None,
):
    """Run the study until `trials` trials are complete or pruned (a resumed study runs only the
    missing ones); `on_trial(study, trial)` after each. Returns the study.

    base: fixed settings (config fields); the model's search space varies the rest. The seed
    (base["seed"], default 0) seeds every trial's training and, with the trial number, its draw.
    """
    require_optuna()
    space = space_of(model)
    mc, tc = default_configs(model, split.num_items, **base)
    fixed = {k: v for k, v in flat_settings(mc, tc).items()
             if k not in UNCHECKED and (k in base or k not in names(space))}  # fmt: skip
    fixed["search_space"] = [repr(p) for p in space if p.name not in base]
    pruner = pruner if pruner is not None else make_pruner("median", 10)
    study = open_study(storage, name, fixed, pruner, command)
    split = validation_only(split)
    while counted(study) < trials:
        study.sampler = make_sampler(tc.seed, counted(study))
        study.optimize(lambda t: objective(t, model=mc.model, split=split, base=base, space=space),
                       n_trials=1, callbacks=[on_trial] if on_trial else None)  # fmt: skip
    return study


def trial_row(trial) -> dict:
    """One trial for the output: number, state, setting, value and how it ended."""
    attrs = trial.user_attrs
    valid = attrs.get("valid") or {}
    return {
        "number": trial.number, "state": trial.state.name.lower(),
        "params": attrs.get("settings", trial.params),
        "valid_NDCG@10": valid.get("NDCG@10"), "stopped": attrs.get("stopped"),
        "epochs": attrs.get("epochs"), "best_epoch": attrs.get("best_epoch"),
        "seconds": attrs.get("seconds"), "train_seconds": attrs.get("train_seconds"),
    }  # fmt: skip


def trial_line(row: dict, done: int, budget: int) -> str:
    """The progress line of one finished trial."""
    params = params_text(row["params"])
    value = row["valid_NDCG@10"]
    score = "-" if value is None else f"{value:.4f}"
    epochs = "" if row["epochs"] is None else f", {row['epochs']} epochs (best {row['best_epoch']})"
    seconds = "" if row["seconds"] is None else f", {row['seconds']:.0f} s"
    return (f"trial {done}/{budget} (#{row['number']}): {params} -> valid NDCG@10 {score}"
            f"{epochs}{seconds}, {row['stopped'] or row['state']}")  # fmt: skip


def params_text(params: dict) -> str:
    """A trial's setting on one line: dim=64 lr=0.00123 ..."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())  # fmt: skip


def summary(study, *, budget: int, storage: str, device: str, **meta) -> dict:
    """The tune output: the best trial's config (the shape `train` writes under "config"), its
    validation metrics, the trial counts, the timings, the machine and every trial."""
    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    states = [r["state"] for r in rows]
    best = _best(study)
    seconds = [r["seconds"] for r in rows if r["seconds"] is not None]
    dev = choose_device(device)
    return {
        **meta,
        "study": study.study_name, "storage": storage, "metric": "valid NDCG@10",
        "trials": {"budget": budget, "complete": states.count("complete"),
                   "pruned": states.count("pruned"), "failed": states.count("fail"),
                   "running": states.count("running")},
        "finished": states.count("complete") + states.count("pruned") >= budget,
        "best": None if best is None else trial_row(best) | {
            "valid": best.user_attrs.get("valid")},
        "config": None if best is None else best.user_attrs["config"] | {
            "dataset": meta.get("dataset", "")},
        "seconds": {"total": float(sum(seconds)),
                    "per_trial": float(np.mean(seconds)) if seconds else None,
                    "median_per_trial": float(np.median(seconds)) if seconds else None},
        "device": str(dev), "device_name": describe_device(dev),
        "torch": torch.__version__, "python": platform.python_version(),
        "commands": study.user_attrs.get("commands", []),
        "all_trials": rows,
    }  # fmt: skip


def _best(study):
    """The complete trial with the highest value, or None."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    done = [t for t in done if t.value is not None and math.isfinite(t.value)]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None
