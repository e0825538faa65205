"""Print the README's result tables from the files in results/ (every number comes from them).

    python scripts/results_tables.py            # all tables, markdown, to paste into README.md

Tables: the converged ML-100K comparison (mean ± SE over seeds, epochs, seconds per epoch);
what the ELASTIC variants retrieve and how many experts a history uses; the paired per-user tests
of the best ELASTIC against SASRec and GRU4Rec; NDCG@10 by history length; the command line's
defaults at seed 0 (ELASTIC against SASRec); the planted-interest NMI; the stream bench; the
probes (`results/probe-*.json`, one setting changed) against the same label's runs of the same
seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from elastic_edu.bench import report as bench_report
from elastic_edu.viz import display_name

RESULTS = Path(__file__).resolve().parents[1] / "results"
ACCURACY = RESULTS / "accuracy-ml-100k-cpu-amd-epyc.json"


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def accuracy(table: dict) -> str:
    return table["table"]


def best(table: dict, prefix: str) -> str:
    """The label starting with `prefix` that has the best mean test NDCG@10."""
    labels = [k for k in table["summary"] if k.startswith(prefix)]
    return max(labels, key=lambda k: table["summary"][k]["test"]["NDCG@10"]["mean"])


def interests(table: dict) -> str:
    rows = ["| model | memory slots used | slot-usage entropy / uniform | experts a history uses |",
            "|---|---|---|---|"]  # fmt: skip
    for label, runs in table["runs"].items():
        stats = [r.get("interests", {}) for r in runs]
        if not any("assignments" in s for s in stats):
            continue
        used = [s["slots"]["fraction_used"] for s in stats if "slots" in s]
        ent = [s["slots"]["relative_entropy"] for s in stats if "slots" in s]
        eff = [s["assignments"]["effective_experts"] for s in stats]
        mem = f"{100 * np.mean(used):.1f}%" if used else "no memory"
        rel = f"{np.mean(ent):.2f}" if ent else "-"
        rows.append(f"| {label} | {mem} | {rel} | {np.mean(eff):.2f} |")
    return "\n".join(rows)


def paired(table: dict) -> str:
    elastic = best(table, "elastic")
    rows = ["| comparison (NDCG@10, per user, mean over seeds) | difference | 95% CI | "
            "wins / losses | sign test p |", "|---|---|---|---|---|"]  # fmt: skip
    for other in ("sasrec", "gru4rec"):
        key = f"{elastic} vs {other}"
        flip = key not in table["paired"]
        test = table["paired"][f"{other} vs {elastic}" if flip else key]
        sign = -1 if flip else 1
        lo, hi = sorted(sign * x for x in test["ci95"])
        wins, losses = (test["losses"], test["wins"]) if flip else (test["wins"], test["losses"])
        rows.append(f"| {elastic} - {other} | {sign * test['mean_diff']:+.4f} | "
                    f"{lo:+.4f} .. {hi:+.4f} | {wins} / {losses} | "
                    f"{test['sign_test_p']:.2g} |")  # fmt: skip
    return "\n".join(rows)


def by_length(table: dict) -> str:
    parts = table["by_history_length"]
    buckets = list(next(iter(parts.values())))
    head = (
        "| model | "
        + " | ".join(f"{b} items ({parts[next(iter(parts))][b]['users']} users)" for b in buckets)
        + " |"
    )
    rows = [head, "|---|" + "---|" * len(buckets)]
    for label, row in parts.items():
        rows.append(f"| {label} | " + " | ".join(f"{row[b]['NDCG@10']:.4f}" for b in buckets)
                    + " |")  # fmt: skip
    return "\n".join(rows)


def defaults() -> str:
    rows = ["| `--model` (seed 0, CLI defaults) | HR@10 | NDCG@10 | epochs (best) | s/epoch |",
            "|---|---|---|---|---|"]  # fmt: skip
    for name in ("sasrec", "elastic"):
        r = load(f"{name}-ml-100k-cpu-amd-epyc.json")
        spe = np.median(np.diff([0.0] + [h["seconds"] for h in r["history"]]))
        model = r["config"]["model"]["model"]
        rows.append(f"| {name} ({model}) | {r['test']['HR@10']:.4f} | {r['test']['NDCG@10']:.4f} "
                    f"| {len(r['history'])} ({r['best_epoch']}) | {spe:.1f} |")  # fmt: skip
    return "\n".join(rows)


def planted() -> str:
    study = load("planted-cpu-amd-epyc.json")["planted"]
    rows = ["| model | NMI by expert (shuffled) | NMI by memory slot | NMI per user (shuffled) |",
            "|---|---|---|---|"]  # fmt: skip
    for r in study.values():
        if not isinstance(r, dict) or "nmi" not in r:
            continue
        slot = f"{r['nmi_slots']:.3f}" if "nmi_slots" in r else "no memory"
        rows.append(f"| {r['model']} ({r['objective']}) | {r['nmi']:.3f} "
                    f"({r['nmi_shuffled']:.3f}) | {slot} | {r['nmi_per_user']:.3f} "
                    f"({r['nmi_per_user_shuffled']:.3f}) |")  # fmt: skip
    return "\n".join(rows)


# probes beside the table: results/probe-<name>[-seed<S>]-ml-100k-cpu-amd-epyc.json (no suffix:
# seed 0) -> (the label in the table whose runs of the same seeds it varies, what changed)
PROBES = {
    "lda-bidir-cloze-last0": ("lda-bidir:cloze", "last_prob 0"),
    "lda-bidir-cloze-last05": ("lda-bidir:cloze", "last_prob 0.5"),
    "lda-bidir-cloze-patience50": ("lda-bidir:cloze", "patience 50"),
    "elastic-causal-balance005": ("elastic-causal", "balance 0.05"),
    "elastic-causal-n200": ("elastic-causal", "max_len 200"),
}


def probe_runs(name: str) -> dict[int, dict]:
    """{seed: run} of one probe's files."""
    runs = {}
    for seed in range(10):
        suffix = "" if seed == 0 else f"-seed{seed}"
        path = RESULTS / f"probe-{name}{suffix}-ml-100k-cpu-amd-epyc.json"
        if path.exists():
            runs[seed] = json.loads(path.read_text())
    return runs


def probes(table: dict) -> str:
    """Each probe against the table's runs of the same label and seeds: test NDCG@10 per seed
    and its mean, epochs, slot usage and NDCG@10 by history length (pooled over those seeds)."""
    from elastic_edu.evaluation import by_history_length

    rows, head = [], None
    for name, (label, change) in PROBES.items():
        probe = probe_runs(name)
        if not probe:
            continue
        base = {r["config"]["train"]["seed"]: r for r in table["runs"][label]}
        seeds = sorted(s for s in probe if s in base)
        for what, runs in ((f"{label} (table)", [base[s] for s in seeds]),
                           (f"{label}, {change}", [probe[s] for s in seeds])):  # fmt: skip
            ndcg = [r["test"]["NDCG@10"] for r in runs]
            slots = [r.get("interests", {}).get("slots", {}).get("fraction_used") for r in runs]
            lengths = by_history_length(runs)
            if head is None:
                head = ["run", "seeds", "NDCG@10 per seed", "mean", "epochs (best)",
                        "slots used", *(f"{b} items" for b in lengths)]  # fmt: skip
            rows.append([
                what, " ".join(map(str, seeds)), " ".join(f"{v:.4f}" for v in ndcg),
                f"{np.mean(ndcg):.4f}",
                " ".join(f"{len(r['history'])} ({r['best_epoch']})" for r in runs),
                "-" if None in slots else f"{100 * np.mean(slots):.1f}%",
                *(f"{v['NDCG@10']:.4f}" for v in lengths.values()),
            ])  # fmt: skip
    if head is None:
        return "(no probe files)"
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def stream() -> str:
    return bench_report.format_stream(
        bench_report.load_results(RESULTS / "bench-cpu-amd-epyc-stream.json")
    )


def main() -> None:
    table = json.loads(ACCURACY.read_text())
    for title, text in [
        ("accuracy", accuracy(table)), ("interests", interests(table)),
        ("paired", paired(table)), ("by history length", by_length(table)),
        ("defaults", defaults()), ("planted", planted()), ("stream", stream()),
        ("probes", probes(table)),
    ]:  # fmt: skip
        print(f"### {title}\n\n{text}\n")
    print("names:", {k: display_name(k) for k in table["summary"]})


if __name__ == "__main__":
    main()
