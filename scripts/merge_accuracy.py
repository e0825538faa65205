"""Merge `python -m elastic_edu compare` outputs made by several processes into one comparison.

Runs of one label may come from several files (one process per model or per seed); each seed
counts once. The merged file is what `compare` itself would have written for all of them
(`elastic_edu.evaluation.statistics.comparison`), with the commands that made the parts:

    python scripts/merge_accuracy.py results/parts/accuracy-*.json \\
        --out results/accuracy-ml-100k-cpu-amd-epyc.json

Single runs (`python -m elastic_edu train ... --out run.json`, which keep their per-user ranks)
join under a label of their own with ``--run LABEL=FILE`` (repeat it, one seed per file): how
variants of one model with other settings are compared user by user.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elastic_edu.evaluation import comparison
from elastic_edu.files import write_json
from elastic_edu.models import get_spec

# rows in reading order: the baselines, then ELASTIC and its ablation, causal before non-causal
ORDER = ("popularity", "gru4rec", "sasrec", "elastic-causal", "lda-causal", "elastic-bidir",
         "lda-bidir")  # fmt: skip


def row_order(label: str) -> tuple:
    try:
        name = get_spec(label.partition(":")[0].partition(" ")[0].rstrip(",")).name
    except ValueError:
        return (len(ORDER), label)
    return (ORDER.index(name) if name in ORDER else len(ORDER), label)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("files", nargs="*", help="compare outputs to merge")
    p.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="LABEL=FILE",
        help="a single train output, joined under LABEL (repeat for each seed)",
    )
    p.add_argument("--out", required=True, help="the merged comparison JSON")
    args = p.parse_args()
    parts = [json.loads(Path(f).read_text()) for f in sorted(args.files)]
    for entry in args.run:
        label, _, path = entry.partition("=")
        run = json.loads(Path(path).read_text())
        seed = run["config"]["train"]["seed"]
        parts.append(
            {
                "runs": {label: [run]},
                "seeds": [seed],
                "data": run.get("data"),
                "dataset": run["config"].get("dataset"),
                "command": run.get("command"),
            }
        )
    if not parts:
        p.error("give compare outputs, --run LABEL=FILE entries, or both")
    runs: dict[str, list] = {}
    for part in parts:
        for label, rs in part["runs"].items():
            for r in rs:
                seeds = [x["config"]["train"]["seed"] for x in runs.get(label, [])]
                if r["config"]["train"]["seed"] not in seeds:
                    runs.setdefault(label, []).append(r)
    runs = {label: runs[label] for label in sorted(runs, key=row_order)}
    seeds = sorted({s for part in parts for s in part["seeds"]})
    configs = {k: v for part in parts for k, v in part.get("configs", {}).items()}  # --config
    merged = comparison(runs, data=parts[0]["data"], dataset=parts[0]["dataset"], seeds=seeds,
                        commands=[part.get("command") for part in parts],
                        merged_from=[Path(f).name for f in sorted(args.files)]
                        + [e.partition("=")[2] for e in args.run],
                        **({"configs": configs} if configs else {}))  # fmt: skip
    print(merged["table"])
    print(f"wrote {write_json(args.out, merged)}")


if __name__ == "__main__":
    main()
