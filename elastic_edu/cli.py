"""Command line: python -m elastic_edu {train,compare,bench} ...

  python -m elastic_edu train --model elastic --dataset ml-100k --seed 0 --out result.json
  python -m elastic_edu compare --dataset ml-100k --models sasrec gru4rec elastic --out table.json
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

from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig
from elastic_edu.files import check_writable, write_json, write_or_keep
from elastic_edu.options import Parser, UserError, add_dataclass_options, count, overrides, plain


def _add_data(parser: argparse.ArgumentParser) -> None:
    from elastic_edu.data import DATASETS, ORDERS

    g = parser.add_argument_group("data")
    g.add_argument("--dataset", default="ml-100k",
                   help=f"{' | '.join(DATASETS)} | a folder of RecBole atomic files "
                        "(default: ml-100k)")  # fmt: skip
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
    add_dataclass_options(parser, ModelConfig, "model (elastic_edu.config.ModelConfig)")
    add_dataclass_options(parser, MemoryConfig, "interest memory (elastic_edu.config.MemoryConfig)")
    add_dataclass_options(parser, TrainConfig, "training (elastic_edu.config.TrainConfig)",
                          {"objective": objective_note})  # fmt: skip
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
    p.add_argument("--model", choices=list(model_names()), default="elastic",
                   help=f"the model to train; {alias} (default: elastic)")  # fmt: skip
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
    p.add_argument("--models", nargs="+", metavar="MODEL[:OBJECTIVE]",
                   default=["popularity", "gru4rec", "sasrec", "elastic"],
                   help="models, each optionally with an objective (default: popularity gru4rec "
                        "sasrec elastic)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds (default: 0 1 2)")  # fmt: skip
    p.add_argument("--out", default=None, help="write the table JSON here (default: none)")
    _add_data(p)
    _add_run(p, "each model's own")
    p.set_defaults(func=cmd_compare)
    from elastic_edu.bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def _load(args):
    from elastic_edu.data import load_sequences
    from elastic_edu.data.sequences import leave_one_out

    data = load_sequences(args.dataset, kcore=args.kcore, order=args.order)
    return data, leave_one_out(data)


def _check_output(path, what: str):
    if path is None:
        return None
    try:
        return check_writable(path, what)
    except ValueError as err:
        raise UserError(str(err)) from None


def _configs(model: str, num_items: int, args, seed=None):
    from elastic_edu.experiment import default_configs
    from elastic_edu.models import check_objective

    ov = overrides(args)
    if seed is not None:
        ov["seed"] = seed
    spec_model, _, objective = model.partition(":")
    if objective:
        ov["objective"] = objective
    mc, tc = default_configs(spec_model, num_items, **ov)
    if objective or ov.get("objective"):
        check_objective(mc.model, tc.objective)
    return mc, tc


def _check_resume(ckpt) -> None:
    """--resume needs a readable resume checkpoint beside --checkpoint (checked before loading)."""
    from elastic_edu.checkpoint import last_path, read_checkpoint

    if ckpt is None:
        raise UserError("--resume needs the --checkpoint of the run to continue")
    read_checkpoint(last_path(ckpt), resume=True)


def _check_checkpoint(out: Path | None, ckpt: Path | None) -> None:
    """--checkpoint and its resume file beside it can be written, and --out is neither."""
    from elastic_edu.checkpoint import check_checkpoint_paths, last_path

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

    choose_device(args.device)


def _check_resources(mc, tc) -> None:
    from elastic_edu.profile import check_memory

    check_memory(mc, tc)


def cmd_train(args) -> int:
    from elastic_edu.experiment import print_metrics, run

    out = _check_output(args.out, "--out")
    ckpt = _check_output(args.checkpoint, "--checkpoint")
    _check_checkpoint(out, ckpt)
    if args.resume:
        _check_resume(ckpt)
    _check_device(args)
    _configs(args.model, 1, args)  # the settings, before the data are read
    data, split = _load(args)
    mc, tc = _configs(args.model, data.num_items, args)
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
    from elastic_edu.experiment import comparison, run

    out = _check_output(args.out, "--out")
    _check_device(args)
    _plans(args, 1)  # every spec, before the data are read
    data, split = _load(args)
    plans = _plans(args, data.num_items)
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
    payload = comparison(runs, data=data.summary(), dataset=args.dataset, seeds=args.seeds,
                         command="python -m elastic_edu " + " ".join(args.argv))  # fmt: skip
    print("\n" + payload["table"])
    for name, test in payload["paired"].items():
        print(f"paired {name}: NDCG@10 diff {test['mean_diff']:+.4f} "
              f"(95% CI {test['ci95'][0]:+.4f}..{test['ci95'][1]:+.4f}), "
              f"sign test p = {test['sign_test_p']:.3g}")  # fmt: skip
    return _finish(out, payload)


def _plans(args, num_items: int) -> list[tuple]:
    """(label, ModelConfig, TrainConfig) of every model x seed; a bad spec, a seed given twice
    or two specs that make the same runs are UserErrors (a standard error over repeats of one
    run would read 0)."""
    twice = [seed for j, seed in enumerate(args.seeds) if seed in args.seeds[:j]]
    if twice:
        raise UserError(f"--seeds {' '.join(map(str, args.seeds))}: seed {twice[0]} is given "
                        "twice; give each seed once")  # fmt: skip
    plans, made = [], {}
    for spec in args.models:
        try:
            seeds = args.seeds[:1] if spec.partition(":")[0] == "popularity" else args.seeds
            for seed in seeds:
                plans.append((spec, *_configs(spec, num_items, args, seed)))
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
    from elastic_edu.distributed import is_main_from_env

    if is_main_from_env():
        print(text, flush=True)


def jsonable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("model", "is_main")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    from elastic_edu.checkpoint import CheckpointError
    from elastic_edu.data.download import DownloadError
    from elastic_edu.metrics import NonFiniteScores

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
        from elastic_edu.distributed import shutdown

        shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
