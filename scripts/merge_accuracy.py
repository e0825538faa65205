"""Merge per-seed `python -m elastic_edu compare` outputs into one table (mean ± standard error).

The GPU script runs one compare process per seed in parallel on one card; this joins them:

    python scripts/merge_accuracy.py results/gpu-training/accuracy-seed*.json \
        --out results/accuracy-ml-100k-nvidia-h200.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elastic_edu.experiment import format_table, summarise


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("files", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--command", default=None, help="the command that made the runs, recorded")
    args = p.parse_args()
    parts = [json.loads(Path(f).read_text()) for f in sorted(args.files)]
    runs: dict[str, list] = {}
    for part in parts:
        for label, rs in part["runs"].items():
            for r in rs:
                seeds = [x["config"]["train"]["seed"] for x in runs.get(label, [])]
                if r["config"]["train"]["seed"] not in seeds:  # popularity repeats per file
                    runs.setdefault(label, []).append(r)
    rows = {label: summarise(rs) for label, rs in runs.items()}
    table = format_table(rows)
    seeds = sorted({s for part in parts for s in part["seeds"]})
    merged = {
        **{k: parts[0][k] for k in ("data", "dataset", "device_name", "torch")},
        "seeds": seeds,
        "summary": rows,
        "table": table,
        "runs": runs,
        "merged_from": [Path(f).name for f in sorted(args.files)],
    }
    Path(args.out).write_text(json.dumps(merged, indent=1))
    print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
