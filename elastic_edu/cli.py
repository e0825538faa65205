"""Command line: ``python -m elastic_edu {train,compare,bench} ...``.

python -m elastic_edu train --model sasrec --dataset ml-100k --seed 0 --out result.json
python -m elastic_edu compare --dataset ml-100k --seeds 0 1 2 --out table.json
python -m elastic_edu bench --models sasrec-naive sasrec-sdpa elastic --lengths 2048 8192
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from elastic_edu.config import MODELS


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default="ml-100k",
        help="ml-100k | ml-1m | ml-20m | synthetic | path to a RecBole atomic folder",
    )
    g.add_argument("--kcore", type=int, default=None, help="k-core filter (default per dataset)")
    g = p.add_argument_group("model (defaults: elastic_edu.config.ModelConfig)")
    for name, typ in [
        ("max-len", int),
        ("dim", int),
        ("heads", int),
        ("layers", int),
        ("dropout", float),
        ("experts", int),
        ("subkeys", int),
        ("candidates", int),
        ("key-dim", int),
    ]:
        g.add_argument(f"--{name}", type=typ, default=None)
    g.add_argument(
        "--attention", choices=["naive", "sdpa"], default=None, help="SASRec attention back-end"
    )
    g = p.add_argument_group("training (defaults: elastic_edu.config.TrainConfig)")
    for name, typ in [
        ("epochs", int),
        ("batch-size", int),
        ("lr", float),
        ("weight-decay", float),
        ("patience", int),
        ("cuts-per-user", int),
        ("memory-lr-scale", float),
        ("max-minutes", float),
        ("eval-every", int),
    ]:
        g.add_argument(f"--{name}", type=typ, default=None)
    g.add_argument(
        "--objective",
        choices=["all", "cut"],
        default=None,
        help="default: all for sasrec, cut for elastic and lda",
    )
    g.add_argument("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda, mps")
    g.add_argument("--no-bf16", action="store_true", help="disable bf16 autocast on GPU")
    g.add_argument("--quiet", action="store_true", help="no progress bars")


def _overrides(args: argparse.Namespace) -> dict:
    names = [
        "max_len",
        "dim",
        "heads",
        "layers",
        "dropout",
        "experts",
        "subkeys",
        "candidates",
        "key_dim",
        "attention",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "patience",
        "cuts_per_user",
        "memory_lr_scale",
        "max_minutes",
        "eval_every",
        "objective",
    ]
    out = {n: getattr(args, n) for n in names}
    out["device"] = args.device
    out["bf16"] = not args.no_bf16
    return out


def _load(args):
    from elastic_edu.data import load_sequences
    from elastic_edu.data.sequences import leave_one_out

    data = load_sequences(args.dataset, kcore=args.kcore)
    return data, leave_one_out(data)


def _print_metrics(label: str, result: dict, out=None) -> None:
    out = out or sys.stdout
    ks = [k for k in result["test"] if k.startswith("HR@")]
    print(f"\n{label}", file=out)
    print(
        f"{'split':<12}"
        + "".join(
            f"{m:>10}" for k in ks for m in (k, k.replace("HR", "NDCG"), k.replace("HR", "MRR"))
        ),
        file=out,
    )
    for split in ("valid", "test", "test_masked"):
        row = "".join(
            f"{result[split][m]:>10.4f}"
            for k in ks
            for m in (k, k.replace("HR", "NDCG"), k.replace("HR", "MRR"))
        )
        print(f"{split:<12}{row}", file=out)


def _jsonable(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "model"}


def cmd_train(args) -> int:
    from elastic_edu.experiment import default_configs, run

    data, split = _load(args)
    mc, tc = default_configs(args.model, data.num_items, seed=args.seed, **_overrides(args))
    print(f"data: {data.name} {data.summary()}; evaluated users: {len(split.test)}")
    result = run(
        split, mc, tc, dataset=args.dataset, progress=not args.quiet, checkpoint=args.checkpoint
    )
    result["data"] = data.summary()
    _print_metrics(
        f"{args.model} (seed {args.seed}, {result['device_name']}, "
        f"{result['train_seconds']:.0f} s)",
        result,
    )
    if args.out:
        _write_json(args.out, _jsonable(result))
    return 0


def cmd_compare(args) -> int:
    from elastic_edu.experiment import default_configs, format_table, run, summarise

    data, split = _load(args)
    print(f"data: {data.name} {data.summary()}; evaluated users: {len(split.test)}")
    variants = []
    for spec in args.models:
        model, _, objective = spec.partition(":")
        if model not in MODELS:
            raise SystemExit(f"--models: unknown model {model!r} in {spec!r}; choose from {MODELS}")
        variants.append((spec, model, objective or None))
    runs, rows = {}, {}
    for label, model, objective in variants:
        seeds = args.seeds[:1] if model == "popularity" else args.seeds
        for seed in seeds:
            ov = _overrides(args)
            ov["objective"] = objective or ov["objective"]
            mc, tc = default_configs(model, data.num_items, seed=seed, **ov)
            res = run(split, mc, tc, dataset=args.dataset, progress=not args.quiet)
            runs.setdefault(label, []).append(_jsonable(res))
            print(
                f"{label} seed {seed}: test NDCG@10 {res['test']['NDCG@10']:.4f} "
                f"HR@10 {res['test']['HR@10']:.4f} ({res['train_seconds']:.0f} s)",
                flush=True,
            )
        rows[label] = summarise(runs[label])
    table = format_table(rows)
    print("\n" + table)
    if args.out:
        first = next(iter(runs.values()))[0]
        _write_json(
            args.out,
            {
                "data": data.summary(),
                "dataset": args.dataset,
                "device_name": first["device_name"],
                "torch": first["torch"],
                "seeds": args.seeds,
                "summary": rows,
                "table": table,
                "runs": runs,
            },
        )
    return 0


def _write_json(path, payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(path)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m elastic_edu",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train and evaluate one model")
    p.add_argument("--model", choices=MODELS, default="sasrec")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result JSON here")
    p.add_argument("--checkpoint", default=None, help="save the best weights with their config")
    _add_common(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("compare", help="several models x seeds, mean ± standard error")
    p.add_argument(
        "--models",
        nargs="+",
        default=["popularity", "sasrec:all", "sasrec:cut", "lda", "elastic"],
        help="model or model:objective",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default=None)
    _add_common(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("bench", help="latency and memory against sequence length")
    p.set_defaults(func=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from elastic_edu.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
