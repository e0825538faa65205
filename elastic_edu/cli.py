"""Command line: python -m elastic_edu {train,compare,tune,bench} ...

  python -m elastic_edu train --model elastic --dataset ml-100k --seed 0 --out result.json
  python -m elastic_edu compare --dataset ml-100k --models sasrec gru4rec elastic --out table.json
  python -m elastic_edu tune --model sasrec --dataset ml-100k --trials 20 --out best.json
  python -m elastic_edu train --config best.json --seed 1 --out tuned.json
  python -m elastic_edu bench --models sasrec-sdpa elastic-causal --lengths 2048 8192
  torchrun --nproc_per_node=2 -m elastic_edu train --model sasrec --device cpu --out result.json

Options are generated from the configuration dataclasses (elastic_edu.config), so every option
shows its default and its help. Mistakes in the arguments print one line and exit with status 2
(--debug shows the traceback); so does a file that could not be written at the end, after
keeping its content in the temporary folder (the line says where). A run that diverges exits
with status 1 and writes no metrics; Ctrl-C or SIGTERM during training writes the results of
the best weights so far, marked "stopped": "interrupted", and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from elastic_edu.config import merge, read_config_file
from elastic_edu.files import check_writable, write_json, write_or_keep
from elastic_edu.options import Parser, UserError, add_config_options, count, given, plain


def _add_data(parser: argparse.ArgumentParser) -> None:
    from elastic_edu.data import DATASETS, ORDERS

    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default=None,
                   help=f"{' | '.join(DATASETS)} | a folder of RecBole atomic files "
                        "(default: the --config file's, else ml-100k)")  # fmt: skip
    g.add_argument(
        "--kcore",
        type=count,
        default=None,
        help="k-core filter (default: 5 for ml-1m and ml-20m, else none)",
    )
    g.add_argument("--order", choices=ORDERS, default="timestamp",
                   help="time order from the timestamp column, or the file's row order "
                        "(default: timestamp)")  # fmt: skip


def _add_run(parser: argparse.ArgumentParser, objective_note: str) -> None:
    add_config_options(parser, {"train": {"objective": objective_note}})
    g = parser.add_argument_group("output")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--debug", action="store_true", help="show tracebacks of user errors")


def build_parser() -> argparse.ArgumentParser:
    from elastic_edu.models import ALIASES, REGISTRY, model_names

    names = ", ".join(f"{n} ({s.default_objective or 'counted'})" for n, s in REGISTRY.items())
    raw = argparse.RawDescriptionHelpFormatter
    parser = Parser(prog="python -m elastic_edu", description=plain(__doc__),
                    formatter_class=raw)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    models = "\n".join(f"  {n:<15} {s.summary}" for n, s in REGISTRY.items())
    p = sub.add_parser("train", help="train and evaluate one model",
                       description=f"Train and evaluate one model.\n\nmodels:\n{models}",
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    alias = f"elastic and lda name {ALIASES['elastic']} and {ALIASES['lda']}"
    p.add_argument("--model", choices=list(model_names()), default=None,
                   help=f"the model to train; {alias} (default: the --config file's, else "
                        "elastic)")  # fmt: skip
    p.add_argument("--config", default=None, metavar="FILE",
                   help="start from the settings of this JSON: a tune output, a train result "
                        "or its config block; options given here override it "
                        "(default: none)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the result JSON here (default: none)")
    p.add_argument("--checkpoint", default=None,
                   help="save the best weights here, and a resume checkpoint beside it "
                        "(default: none)")  # fmt: skip
    p.add_argument(
        "--resume", action="store_true", help="continue the run whose --checkpoint is given"
    )
    _add_data(p)
    _add_run(p, f"the model's own: {names}")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser(
        "compare",
        help="several models x seeds: mean ± SE, paired tests",
        description="Several models x seeds: mean ± standard error, paired "
        "per-user tests of the first model against the others.",
    )
    p.add_argument("--models", nargs="+", metavar="MODEL[:OBJECTIVE]", default=None,
                   help="models, each optionally with an objective (default: the --config "
                        "models, else popularity gru4rec sasrec elastic)")  # fmt: skip
    p.add_argument("--config", nargs="+", metavar="MODEL=FILE", default=[],
                   help="train MODEL (one of --models) from the settings of FILE, e.g. a tune "
                        "output; options given here override them (default: none)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds (default: 0 1 2)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the table JSON here (default: none)")
    _add_data(p)
    _add_run(p, "each model's own")
    p.set_defaults(func=cmd_compare)
    _add_tune_parser(sub, names)
    from elastic_edu.bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def _add_tune_parser(sub, names: str) -> None:
    from elastic_edu.models import get_spec, model_names

    tunable = [n for n in model_names() if get_spec(n).search_space]
    p = sub.add_parser(
        "tune",
        help="equal-budget hyperparameter search (Optuna)",
        description=plain(_tune_doc()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", choices=tunable, required=True, help="the model to tune")
    p.add_argument("--trials", type=count, default=20,
                   help="trials per model, complete or pruned: the budget "
                        "(default: 20)")  # fmt: skip
    p.add_argument("--out", required=True,
                   help="write the best config and every trial here (JSON, rewritten after "
                        "each trial)")  # fmt: skip
    p.add_argument("--storage", default=None,
                   help="Optuna storage: a URL, or a SQLite file (default: beside --out, "
                        "best.json -> best.study.db)")  # fmt: skip
    p.add_argument("--pruner", choices=("median", "none"), default="median",
                   help="stop trials below the median validation curve "
                        "(default: median)")  # fmt: skip
    p.add_argument("--prune-warmup", type=count, default=10, metavar="EPOCHS",
                   help="no pruning in a trial's first EPOCHS epochs (default: 10)")  # fmt: skip
    _add_data(p)
    _add_run(p, f"the model's own: {names}")
    p.set_defaults(func=cmd_tune)


def _tune_doc() -> str:
    """The tune command's description: its module's docstring after the first line."""
    from elastic_edu.experiments import tune

    return tune.__doc__.split("\n\n", 1)[1]


def _load(args):
    from elastic_edu.data import load_sequences
    from elastic_edu.data.sequences import leave_one_out

    data = load_sequences(args.dataset, kcore=args.kcore, order=args.order)
    return data, leave_one_out(data)


def _dataset(args, named: list) -> str:
    """--dataset, else the one data set the --config files name, else ml-100k."""
    if args.dataset is not None:
        return args.dataset
    named = sorted({d for d in named if d})
    if len(named) > 1:
        raise UserError(f"the --config files name different data sets {named}: give --dataset")
    return named[0] if named else "ml-100k"


def _check_output(path, what: str):
    if path is None:
        return None
    try:
        return check_writable(path, what)
    except ValueError as err:
        raise UserError(str(err)) from None


def _configs(model: str, num_items: int, args, seed=None, base=None):
    """The configs of `model` ("name[:objective]"): `base` settings by section (a --config
    file), then the options given on the command line, then `seed` and the objective."""
    from elastic_edu.experiments import configs
    from elastic_edu.models import check_objective

    name, _, objective = model.partition(":")
    last = {"seed": seed, "objective": objective or None}
    last = {"train": {k: v for k, v in last.items() if v is not None}}
    settings = merge(base or {}, given(args), last)
    mc, tc = configs(name, num_items, settings)
    if objective or settings["train"].get("objective"):
        check_objective(mc.model, tc.objective)
    return mc, tc


def _check_resume(ckpt) -> None:
    """--resume needs a readable resume checkpoint beside --checkpoint (checked before loading)."""
    from elastic_edu.training.checkpoint import last_path, read_checkpoint

    if ckpt is None:
        raise UserError("--resume needs the --checkpoint of the run to continue")
    read_checkpoint(last_path(ckpt), resume=True)


def _check_checkpoint(out: Path | None, ckpt: Path | None) -> None:
    """--checkpoint and its resume file beside it can be written, and --out is neither."""
    from elastic_edu.training.checkpoint import check_checkpoint_paths, last_path

    if ckpt is None:
        return
    try:
        check_checkpoint_paths(ckpt, "--checkpoint")
    except ValueError as err:
        raise UserError(str(err)) from None
    if out is not None and out.resolve() == ckpt.resolve():
        raise UserError(f"--out {out} is the --checkpoint too: the results would overwrite the "
                        "weights; give --out another file")  # fmt: skip
    if out is not None and out.resolve() == last_path(ckpt).resolve():
        raise UserError(f"--out {out} is where --checkpoint {ckpt} keeps its resume checkpoint; "
                        "give --out another file")  # fmt: skip


def _check_device(args) -> None:
    """--device names a device this machine offers (checked before the data are read)."""
    from elastic_edu.device import choose_device

    choose_device(given(args)["train"].get("device"))


def _check_resources(mc, tc) -> None:
    from elastic_edu.bench.profile import check_memory

    check_memory(mc, tc)


def cmd_train(args) -> int:
    from elastic_edu.experiments import print_metrics, run

    out = _check_output(args.out, "--out")
    ckpt = _check_output(args.checkpoint, "--checkpoint")
    _check_checkpoint(out, ckpt)
    if args.resume:
        _check_resume(ckpt)
    _check_device(args)
    base, named = read_config_file(args.config) if args.config else ({}, None)
    named_model = base.get("model", {}).pop("model", None)
    args.model = args.model or named_model or "elastic"
    args.dataset = _dataset(args, [named])
    _configs(args.model, 1, args, base=base)  # the settings, before the data are read
    data, split = _load(args)
    mc, tc = _configs(args.model, data.num_items, args, base=base)
    _check_resources(mc, tc)
    _say(f"data: {data.name} {data.summary()}; evaluated users: {len(split.test)}")
    result = run(split, mc, tc, dataset=args.dataset, progress=not args.quiet,
                 checkpoint=ckpt, resume=args.resume)  # fmt: skip
    if not result.get("is_main", True):
        return 0
    result["data"] = data.summary()
    print_metrics(f"{mc.model} (seed {tc.seed}, {result['device_name']}, "
                  f"{result['train_seconds']:.0f} s, {result['stopped']})", result)  # fmt: skip
    status = _finish(out, jsonable(result), result.get("write_errors", []))
    return status or (130 if result["stopped"] == "interrupted" else 0)


def cmd_compare(args) -> int:
    from elastic_edu.evaluation.statistics import comparison
    from elastic_edu.experiments import run

    out = _check_output(args.out, "--out")
    _check_device(args)
    bases = _compare_configs(args)
    _plans(args, 1, bases)  # every spec, before the data are read
    data, split = _load(args)
    plans = _plans(args, data.num_items, bases)
    for _, mc, tc in plans:
        _check_resources(mc, tc)
    _say(f"data: {data.name} {data.summary()}; evaluated users: {len(split.test)}")
    runs: dict[str, list[dict]] = {}
    for label, mc, tc in plans:
        res = run(split, mc, tc, dataset=args.dataset, progress=not args.quiet)
        if res["stopped"] == "interrupted":
            raise KeyboardInterrupt
        if not res.get("is_main", True):  # under torchrun, rank 0 evaluates and reports
            continue
        runs.setdefault(label, []).append(jsonable(res))
        print(f"{label} seed {tc.seed}: test NDCG@10 {res['test']['NDCG@10']:.4f} "
              f"HR@10 {res['test']['HR@10']:.4f} ({res['epochs']} epochs, "
              f"{res['train_seconds']:.0f} s, {res['stopped']})", flush=True)  # fmt: skip
    if not runs:  # another rank than 0
        return 0
    configs = {spec: path for spec, path in _config_args(args)}
    payload = comparison(runs, data=data.summary(), dataset=args.dataset, seeds=args.seeds,
                         command="python -m elastic_edu " + " ".join(args.argv),
                         **({"configs": configs} if configs else {}))  # fmt: skip
    print("\n" + payload["table"])
    for name, test in payload["paired"].items():
        print(f"paired {name}: NDCG@10 diff {test['mean_diff']:+.4f} "
              f"(95% CI {test['ci95'][0]:+.4f}..{test['ci95'][1]:+.4f}), "
              f"sign test p = {test['sign_test_p']:.3g}")  # fmt: skip
    return _finish(out, payload)


def cmd_tune(args) -> int:
    from elastic_edu.experiments import tune

    out = _check_output(args.out, "--out")
    _check_output(tune.storage_path(args.storage, out), "--storage")
    tune.require_optuna()
    args.dataset = _dataset(args, [])
    base = {k: v for section in given(args).values() for k, v in section.items()}
    seed = base.get("seed", 0)
    try:
        space = tune.space_of(args.model)
        _configs(args.model, 1, args)  # the fixed settings, before the data are read
    except ValueError as err:
        raise UserError(str(err)) from None
    data, split = _load(args)
    mc, tc = _configs(args.model, data.num_items, args)
    _check_resources(mc, tc)
    storage = tune.storage_url(args.storage, out)
    name = tune.study_name(args.model, data.name, seed)
    searched = [p.name for p in space if p.name not in base]
    _say(f"data: {data.name} {data.summary()}; validation users: {len(split.valid)}")
    _say(f"study {name} in {storage}: {args.trials} trials of {mc.model}, searching "
         f"{', '.join(searched)}")  # fmt: skip
    meta = dict(model=mc.model, dataset=args.dataset, data=data.summary(), fixed=base,
                searched=searched, budget=args.trials, storage=storage,
                device=tc.device)  # fmt: skip

    def on_trial(study, trial):
        if trial.state.name in tune.COUNTED and not args.quiet:
            print(tune.trial_line(tune.trial_row(trial), tune.counted(study), args.trials),
                  flush=True)  # fmt: skip
        write_json(out, tune.summary(study, **meta))

    study = tune.run_study(split, args.model, base=base, trials=args.trials, storage=storage,
                           name=name, pruner=tune.make_pruner(args.pruner, args.prune_warmup),
                           command="python -m elastic_edu " + " ".join(args.argv),
                           on_trial=on_trial)  # fmt: skip
    payload = tune.summary(study, **meta)
    write_json(out, payload)
    return _report_tune(payload, out)


def _report_tune(payload: dict, out) -> int:
    """Print the study's end: trial counts, time, the best setting; 1 if no trial completed."""
    from elastic_edu.experiments.tune import params_text

    counts, best = payload["trials"], payload["best"]
    print(f"{counts['complete']} complete, {counts['pruned']} pruned trials in "
          f"{payload['seconds']['total']:.0f} s; wrote {out}")  # fmt: skip
    if best is None:
        print("error: no trial completed (all pruned or diverged): no best config",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"best: trial #{best['number']}, valid NDCG@10 {best['valid_NDCG@10']:.4f}: "
          f"{params_text(best['params'])}")  # fmt: skip
    return 0


def _plans(args, num_items: int, bases: dict | None = None) -> list[tuple]:
    """(label, ModelConfig, TrainConfig) of every model x seed; a bad spec, a seed given twice
    or two specs that make the same runs are UserErrors (a standard error over repeats of one
    run would read 0)."""
    twice = [seed for j, seed in enumerate(args.seeds) if seed in args.seeds[:j]]
    if twice:
        raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: seed {twice[0]} is given "
                        "twice; give each seed once")  # fmt: skip
    from elastic_edu.models import get_spec

    plans, made = [], {}
    for spec in args.models:
        try:  # a model that is counted, not trained, repeats exactly: one seed
            seeds = args.seeds if get_spec(spec.partition(":")[0]).trainable else args.seeds[:1]
            base = (bases or {}).get(spec)
            for seed in seeds:
                plans.append((spec, *_configs(spec, num_items, args, seed, base)))
        except ValueError as err:
            raise UserError(f"--models {spec}: {err}") from None
        key = json.dumps([plans[-1][1].to_dict(), plans[-1][2].to_dict()], sort_keys=True)
        if key in made:
            what = (
                f"{spec} is given twice"
                if made[key] == spec
                else f"{made[key]} and {spec} are one model"
            )
            raise UserError(f"--models: {what} (same model, objective and settings); give each "
                            "model once")  # fmt: skip
        made[key] = spec
    return plans


def _config_args(args) -> list[tuple[str, str]]:
    """compare's --config MODEL=FILE entries as (MODEL, FILE); a malformed one is a UserError."""
    pairs = []
    for entry in args.config:
        spec, sep, path = entry.partition("=")
        if not sep or not spec or not path:
            raise UserError(f"--config {entry}: give MODEL=FILE, e.g. sasrec=tuned/sasrec.json")
        if spec in dict(pairs):
            raise UserError(f"--config {entry}: {spec} is given twice")
        pairs.append((spec, path))
    return pairs


def _compare_configs(args) -> dict[str, dict]:
    """{spec: settings} from compare's --config entries; sets args.models (default: the entries'
    models) and args.dataset. Each entry must name one of --models and a file of that model."""
    from elastic_edu.models import get_spec

    pairs = _config_args(args)
    if args.models is None:
        args.models = [spec for spec, _ in pairs] or ["popularity", "gru4rec", "sasrec", "elastic"]
    bases, named = {}, []
    for spec, path in pairs:
        if spec not in args.models:
            raise UserError(f"--config {spec}={path}: {spec} is not one of --models {args.models}")
        settings, dataset = read_config_file(path)
        model = settings["model"].pop("model", None)
        try:
            wanted = get_spec(spec.partition(":")[0]).name
        except ValueError as err:
            raise UserError(f"--config {spec}={path}: {err}") from None
        if model is not None and get_spec(model).name != wanted:
            raise UserError(f"--config {spec}={path}: the file configures {model}, not {wanted}")
        bases[spec], named = settings, [*named, dataset]
    args.dataset = _dataset(args, named)
    return bases


def _finish(out: Path | None, payload: dict, errors: list[str] = ()) -> int:
    """Write `payload` to --out and report: 0, or 2 with one line saying what could not be
    written and where its content is (the temporary folder; stdout if that fails too)."""
    errors, error = list(errors), None
    if out is not None:
        where, error = write_or_keep(lambda p: write_json(p, payload), out, "--out")
        if error is None:
            print(f"wrote {where}")
        elif where is None:
            print(json.dumps(payload, default=str))
            error += "; the results JSON is printed on stdout"
    if error is None and not errors:
        return 0
    if error is None and out is not None:
        errors.append(f"the results are in {out}")
    print("error: " + "; ".join([*errors, *([error] if error else [])]), file=sys.stderr)
    return 2


def _say(text: str) -> None:
    """Print on rank 0 only (under torchrun every process runs the command)."""
    from elastic_edu.training.distributed import is_main_from_env

    if is_main_from_env():
        print(text, flush=True)


def jsonable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("model", "is_main")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from elastic_edu.data.download import DownloadError
    from elastic_edu.models import NonFiniteScores
    from elastic_edu.training.checkpoint import CheckpointError

    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # recorded in results files
        return args.func(args)
    except (NonFiniteScores, FloatingPointError) as err:
        if debug:
            raise
        print(f"error: training diverged, no metrics written: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, CheckpointError, DownloadError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        from elastic_edu.training.distributed import shutdown

        shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
