"""Write docs/RESULTS.md: every table of results, printed from the files in results/.

    python scripts/results_tables.py            # rewrite docs/RESULTS.md
    python scripts/results_tables.py --check    # exit 1 if docs/RESULTS.md has drifted

Every number in docs/RESULTS.md comes from a file in results/, named beside its table with the
command that made it; `tests/test_results_doc.py` fails when the two drift apart. A section
whose files are missing says so instead of a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elastic_edu.bench import report as bench_report  # noqa: E402
from elastic_edu.viz import display_name  # noqa: E402

RESULTS = ROOT / "results"
DOC = ROOT / "docs" / "RESULTS.md"
CPU = "AMD EPYC (2 cores, AVX2, 2.45 GHz), torch 2.13.0+cpu"


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def fmt(x, spec: str, unit: str = "") -> str:
    return "-" if x is None else format(x, spec) + unit


def percent(share: float | None) -> str:
    """A share as a percentage: one decimal below 10%, so that 0.7% does not read 1%."""
    return "-" if share is None else f"{100 * share:.{1 if 100 * share < 10 else 0}f}%"


def bench_command(bench: dict) -> str:
    """The command that made a bench file, from its settings."""
    s = bench["settings"]
    parts = ["python -m elastic_edu bench --models", *s["models"]]
    if s.get("ks") and any(not m.split("-")[-1].startswith("k") for m in s["models"]):
        parts += ["--k", *map(str, s["ks"])]
    parts += ["--modes", *s["modes"], "--lengths", *map(str, s["lengths"])]
    parts += ["--batch", str(s["batch"]), "--device", s["device"], "--threads", str(s["threads"])]
    parts += ["--repeats", str(s["repeats"]), "--timeout", f"{s['timeout']:g}"]
    if s.get("compile") and s["compile"] != ["off"]:
        parts += ["--compile", *s["compile"]]
    return " ".join(parts + ["--out", s["out"]])


# ---- cost -------------------------------------------------------------------------------------
def cost_table(bench: dict, mode: str) -> str:
    labels = bench["settings"]["labels"]
    at = {(p["model"], p["n"]): p for p in bench["points"] if p["mode"] == mode}
    rows = []
    for n in bench["settings"]["lengths"]:
        row = [str(n)]
        for label in labels:
            p = at.get((label, n))
            if p is None or p["status"] != "ok":
                row.append(p["status"] if p else "-")
            else:
                row.append(
                    f"{p['latency_ms']:.0f} ms, {p['peak_mb']:.0f} MB"
                    if p["peak_mb"] is not None
                    else f"{p['latency_ms']:.0f} ms"
                )
        rows.append(row)
    return table(["N", *map(display_name, labels)], rows)


def ratio_table(bench: dict, base: str = "sasrec-sdpa", labels=None) -> str:
    summary = bench_report.summarise(bench, ratio_at=tuple(bench["settings"]["lengths"]))
    rows = []
    for label, by_base in summary["ratios"].items():
        if labels is not None and label not in labels:
            continue
        for mode, r in by_base.get(base, {}).items():
            for n, q in r.items():
                if int(n) >= 2048:
                    rows.append(
                        [
                            display_name(label),
                            mode,
                            n,
                            fmt(q["speedup"], ".1f", "x"),
                            percent(q["memory"]),
                        ]
                    )
    return table(
        ["model", "workload", "N", f"speed-up vs {display_name(base)}", "peak memory"], rows
    )


def slope_table(bench: dict, lo: int = 2048, hi: int = 16384) -> str:
    ok = [p for p in bench["points"] if p["status"] == "ok" and lo <= p["n"] <= hi]
    rows = []
    for label in bench["settings"]["labels"]:
        for mode in bench["settings"]["modes"]:
            pts = sorted(
                (p for p in ok if p["model"] == label and p["mode"] == mode), key=lambda p: p["n"]
            )
            if len(pts) < 2:
                continue
            ns = [p["n"] for p in pts]
            lat = bench_report.loglog_slope(ns, [p["latency_ms"] for p in pts])
            mem = bench_report.loglog_slope(ns, [p["peak_mb"] for p in pts])
            rows.append(
                [display_name(label), mode, f"{ns[0]}-{ns[-1]}", fmt(lat, ".2f"), fmt(mem, ".2f")]
            )
    return table(["model", "workload", "N", "latency slope", "memory slope"], rows)


def efficiency_table(bench: dict, n: int = 8192) -> str:
    rows = [
        [
            display_name(r["model"]),
            r["mode"],
            r["n"],
            f"{r['gflops']:.1f}",
            fmt(None if r["of_theoretical"] is None else 100 * r["of_theoretical"], ".0f", "%"),
            fmt(None if r["of_matmul"] is None else 100 * r["of_matmul"], ".0f", "%"),
        ]
        for r in bench_report.efficiency(bench)
        if r["n"] == n
    ]
    peak = bench["peak"]
    note = (
        f"Peak of this CPU by formula: {peak['theoretical']['gflops']:.0f} GFLOP/s "
        f"({peak['theoretical']['formula']}, {peak['theoretical']['ghz']:.2f} GHz from "
        f"/proc/cpuinfo); a 2048 x 2048 float32 matrix product measured in the same run: "
        f"{peak['matmul_gflops']:.0f} GFLOP/s. FLOPs are the matrix products PyTorch counts "
        "on the meta device; for SASRec they include the masked half of N x N that a causal "
        "kernel skips, so its share reads high."
    )
    head = ["model", "workload", "N", "GFLOP/s", "of peak (formula)", "of measured matmul"]
    return note + "\n\n" + table(head, rows)


def cost() -> str:
    out = ["## Cost against history length (CPU)", ""]
    main = load("bench-cpu-amd-epyc.json")
    if main is None:
        return "\n".join(out + ["(results/bench-cpu-amd-epyc.json is missing)"])
    out += [
        f"`results/bench-cpu-amd-epyc.json`, {CPU}, 2 torch threads, nothing else running; "
        "batch 4, d = 64, 2 layers, 2 heads, 1,000 items, float32; each point in a fresh "
        "process, median of 5 runs after a warm-up; peak memory = tensor bytes one run "
        "allocates (`elastic_edu.profile.peak_memory`). ELASTIC is `elastic-causal`, the "
        "model `--model elastic` trains, computed chunk by chunk (docs/DESIGN.md, decision 5).",
        "",
        f"    {bench_command(main)}",
        "",
    ]
    for mode, title in (
        ("inference", "Inference (`encode`, no autograd)"),
        ("train", "Training step (loss, backward, AdamW)"),
    ):
        out += [f"### {title}: latency and peak memory", "", cost_table(main, mode), ""]
    out += [
        "### Against fused attention (SASRec with `scaled_dot_product_attention`)",
        "",
        ratio_table(main),
        "",
        "### Against naive attention (SASRec forming the N x N scores, as the original)",
        "",
        ratio_table(main, "sasrec-naive"),
        "",
        "### Log-log slopes over N = 2048 .. 16384",
        "",
        slope_table(main),
        "",
        "### Achieved FLOP rate at N = 8192",
        "",
        efficiency_table(main),
        "",
    ]
    for name, what in (
        ("bench-cpu-amd-epyc-compile.json", "torch.compile"),
        ("bench-cpu-amd-epyc-1thread.json", "one torch thread"),
        ("bench-cpu-amd-epyc-b32.json", "batch 32"),
        ("bench-cpu-amd-epyc-8192.json", "N = 8192 after the kernel's reference fix"),
    ):
        bench = load(name)
        if bench is None:
            continue
        out += [f"### {what}: `results/{name}`", "", f"    {bench_command(bench)}", ""]
        for mode in bench["settings"]["modes"]:
            out += [f"{mode}:", "", cost_table(bench, mode), ""]
        if name.endswith("-8192.json"):
            out += [ratio_table(bench), ""]
    return "\n".join(out)


# ---- training speed ------------------------------------------------------------------------
def padding() -> str:
    out = ["## Training on every position: the work on padding", ""]
    data = load("padding-cpu-amd-epyc.json")
    if data is None:
        return "\n".join(out + ["(results/padding-cpu-amd-epyc.json is missing)"])
    out += [
        f"`results/padding-cpu-amd-epyc.json`, {data['device']}, {data['threads']} torch "
        "thread. Seconds per training epoch (objective `all`, CLI defaults otherwise), the "
        "three variants timed in turn, median over epochs:",
        "",
        f"    {data['command']}",
        "",
    ]
    rows = []
    for name, s in data["sets"].items():
        for m in s["models"]:
            sec, pad = m["seconds_per_epoch"], m["batches"]
            rows.append(
                [
                    name,
                    display_name(m["model"]),
                    f"{100 * pad['every position']['padding_share']:.0f}%",
                    f"{sec['every position']:.2f}",
                    f"{sec['targets only']:.2f}",
                    f"{sec['targets only + buckets']:.2f}",
                    f"{100 * pad['targets only + buckets']['padding_share']:.0f}%",
                ]
            )
    head = [
        "data",
        "model",
        "padding among targets",
        "every position (s)",
        "targets only (s)",
        "+ length buckets (s)",
        "padding with buckets",
    ]
    return "\n".join(out + [table(head, rows), ""])


def defaults() -> str:
    out = ["## The command line's defaults (ML-100K, seed 0)", ""]
    runs = {name: load(f"{name}-ml-100k-cpu-amd-epyc.json") for name in ("sasrec", "elastic")}
    if None in runs.values():
        return "\n".join(out + ["(results/{sasrec,elastic}-ml-100k-cpu-amd-epyc.json missing)"])
    rows = []
    for name, r in runs.items():
        spe = np.median(np.diff([0.0] + [h["seconds"] for h in r["history"]]))
        rows.append(
            [
                f"`--model {name}` ({r['config']['model']['model']})",
                f"{r['test']['HR@10']:.4f}",
                f"{r['test']['NDCG@10']:.4f}",
                f"{len(r['history'])} ({r['best_epoch']})",
                f"{spe:.1f}",
            ]
        )
    out += [
        "`python -m elastic_edu train --model sasrec --dataset ml-100k --seed 0 --quiet --out "
        "results/sasrec-ml-100k-cpu-amd-epyc.json` and the same with `--model elastic`, run "
        f"side by side with one torch thread each on the {CPU}; seconds per epoch are the "
        "median of the history's epoch times.",
        "",
        table(["model", "HR@10", "NDCG@10", "epochs (best)", "s/epoch"], rows),
        "",
    ]
    fix = load("elastic-ml-100k-cpu-amd-epyc-fix.json")
    if fix is not None:
        before = runs["elastic"]
        gaps = [abs(a["valid_NDCG@10"] - b["valid_NDCG@10"])
                for a, b in zip(before["history"], fix["history"])]  # fmt: skip
        first_gap = abs(before["history"][0]["loss"] - fix["history"][0]["loss"])
        out += [
            "`results/elastic-ml-100k-cpu-amd-epyc-fix.json`: `--model elastic` again, the same "
            "command with `--out` to that file, after the chunkwise kernel's reference fix "
            "(docs/DESIGN.md, decision 5, 'Ranges'; the same mathematics, other rounding), run "
            "beside other work (its seconds per epoch are not comparable): test NDCG@10 "
            f"{fix['test']['NDCG@10']:.4f} (HR@10 {fix['test']['HR@10']:.4f}), "
            f"{len(fix['history'])} epochs (best {fix['best_epoch']}). The first epoch's "
            f"training loss agrees to {first_gap:.0e}; the two validation NDCG@10 curves then "
            f"differ by up to {max(gaps):.4f} at the same epoch, so one seed's test NDCG@10 "
            "moves by that much with rounding alone: compare models over seeds (the tables "
            "below).",
            "",
        ]
    return "\n".join(out)


# ---- accuracy (untuned, converged) ------------------------------------------------------------
def best(summary: dict, prefix: str) -> str:
    labels = [k for k in summary if k.startswith(prefix)]
    return max(labels, key=lambda k: summary[k]["test"]["NDCG@10"]["mean"])


def paired_rows(accuracy: dict, elastic: str, others: list[str]) -> list[list[str]]:
    rows = []
    for other in others:
        key, flip = f"{elastic} vs {other}", False
        if key not in accuracy["paired"]:
            key, flip = f"{other} vs {elastic}", True
        if key not in accuracy["paired"]:
            continue
        t, sign = accuracy["paired"][key], (-1 if flip else 1)
        lo, hi = sorted(sign * x for x in t["ci95"])
        wins, losses = (t["losses"], t["wins"]) if flip else (t["wins"], t["losses"])
        rows.append(
            [
                f"{display_name(elastic)} - {display_name(other)}",
                f"{sign * t['mean_diff']:+.4f}",
                f"{lo:+.4f} .. {hi:+.4f}",
                f"{wins} / {losses}",
                f"{t['sign_test_p']:.2g}",
            ]
        )
    return rows


PAIRED_HEAD = [
    "comparison (test NDCG@10 per user, mean over seeds)",
    "difference",
    "95% CI",
    "wins / losses",
    "sign test p",
]


def by_length_table(parts: dict) -> str:
    buckets = list(next(iter(parts.values())))
    first = parts[next(iter(parts))]
    head = ["model", *(f"{b} items ({first[b]['users']} users)" for b in buckets)]
    rows = [
        [display_name(label), *(f"{row[b]['NDCG@10']:.4f}" for b in buckets)]
        for label, row in parts.items()
    ]
    return table(head, rows)


def untuned() -> str:
    out = ["## ML-100K, untuned: one fixed setting for every model (converged, 3 seeds)", ""]
    acc = load("accuracy-ml-100k-cpu-amd-epyc.json")
    if acc is None:
        return "\n".join(out + ["(results/accuracy-ml-100k-cpu-amd-epyc.json is missing)"])
    elastic = best(acc["summary"], "elastic-causal")
    out += [
        "`results/accuracy-ml-100k-cpu-amd-epyc.json` (made at commit b62b9a4, before the "
        "chunkwise layer: the same model, computed the materialising way; commands in the "
        "file's `commands`). Every model: d = 64, 2 layers, dropout 0.2, AdamW lr 1e-3, "
        "patience 20, full ranking, test NDCG@10 mean ± standard error over seeds 0, 1, 2. "
        "Not tuned: see the tuned table for the fair race.",
        "",
        "```",
        acc["table"],
        "```",
        "",
        table(PAIRED_HEAD, paired_rows(acc, elastic, ["lda-causal", "gru4rec", "sasrec"])),
        "",
        "NDCG@10 by the length of the test user's history:",
        "",
        by_length_table(acc["by_history_length"]),
        "",
    ]
    return "\n".join(out)


# ---- the fair race: tuned with an equal budget -----------------------------------------------
TUNED_MODELS = ("sasrec", "gru4rec", "lda-causal", "elastic-causal")


def tuned() -> str:
    out = ["## ML-100K, tuned: the same budget for every model", ""]
    studies = {m: load(f"tune-{m}-ml-100k-cpu-amd-epyc.json") for m in TUNED_MODELS}
    rows = []
    for model, t in studies.items():
        if t is None:
            rows.append([display_name(model), "(not tuned yet)", "", "", "", ""])
            continue
        best = t["best"] or {}
        params = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in best.get("params", {}).items()
        )
        rows.append(
            [
                display_name(model),
                f"{t['trials']['complete']} / {t['trials']['pruned']}",
                f"{t['seconds']['total'] / 60:.0f}",
                f"{best.get('valid_NDCG@10', best.get('value', float('nan'))):.4f}",
                params,
                f"`results/tune-{model}-ml-100k-cpu-amd-epyc.json`",
            ]
        )
    out += [
        "Each model: 20 trials of Optuna's TPE sampler (seed 0) over its own search space "
        "(`elastic_edu/search_space.py`), each trial trained to early stopping (patience 5, "
        "at most 50 epochs) and pruned by the median rule on its validation NDCG@10 curve after "
        "5 epochs; "
        "tuning reads validation users only. One torch thread per study, two studies at a "
        f"time on the {CPU}. Minutes: the trials' wall-clock seconds summed, as run beside "
        "other work (the ELASTIC and SASRec studies were also paused for about 45 minutes during "
        "the long-range studies and a bench): an upper bound, not a speed figure. "
        "The ELASTIC study ran the chunkwise kernel before its reference fix (docs/DESIGN.md, "
        "decision 5: same mathematics, other rounding).",
        "",
        "    python -m elastic_edu tune --model MODEL --dataset ../shared/data/ml-100k "
        "--trials 20 --seed 0 --epochs 50 --patience 5 --prune-warmup 5 --device cpu "
        "--out results/tune-MODEL-ml-100k-cpu-amd-epyc.json",
        "",
        table(
            [
                "model",
                "trials complete / pruned",
                "minutes",
                "best valid NDCG@10",
                "best setting",
                "file",
            ],
            rows,
        ),
        "",
    ]
    acc = load("tuned-ml-100k-cpu-amd-epyc.json")
    if acc is None:
        return "\n".join(
            out
            + [
                "(results/tuned-ml-100k-cpu-amd-epyc.json, the 3-seed table of "
                "the best settings, is not made yet)",
                "",
            ]
        )
    elastic = best_label(acc["summary"], "elastic-causal")
    others = [k for k in acc["summary"] if k != elastic]
    out += [
        "Then seeds 0, 1, 2 of each best setting, trained to the usual early stopping "
        "(patience 20, at most 200 epochs), full ranking over all items, test NDCG@10 mean "
        "± standard error over seeds (`results/tuned-ml-100k-cpu-amd-epyc.json`; the commands "
        "are in its `commands`):",
        "",
        "```",
        acc["table"],
        "```",
        "",
        table(PAIRED_HEAD, paired_rows(acc, elastic, others)),
        "",
        "NDCG@10 by the length of the test user's history:",
        "",
        by_length_table(acc["by_history_length"]),
        "",
    ]
    return "\n".join(out)


def best_label(summary: dict, prefix: str) -> str:
    labels = [k for k in summary if k.startswith(prefix)]
    return max(labels, key=lambda k: summary[k]["test"]["NDCG@10"]["mean"])


def memory() -> str:
    out = ["## The interest memory's effect, and two ways to give it more", ""]
    acc = load("memory-ml-100k-cpu-amd-epyc.json")
    if acc is None:
        return "\n".join(out + ["(results/memory-ml-100k-cpu-amd-epyc.json is not made yet)", ""])
    labels = list(acc["summary"])
    rows = []
    for label, runs in acc["runs"].items():
        used = [r.get("interests", {}).get("slots", {}).get("fraction_used") for r in runs]
        used = [u for u in used if u is not None]
        rows.append([label, f"{100 * np.mean(used):.1f}%" if used else "no memory"])
    pairs = []
    for key, t in acc["paired"].items():
        lo, hi = t["ci95"]
        pairs.append(
            [
                key,
                f"{t['mean_diff']:+.4f}",
                f"{lo:+.4f} .. {hi:+.4f}",
                f"{t['wins']} / {t['losses']}",
                f"{t['sign_test_p']:.2g}",
            ]
        )
    out += [
        "`results/memory-ml-100k-cpu-amd-epyc.json`: ELASTIC at its tuned setting against "
        "LDA-only at the same setting (the same layers with k learned experts instead of "
        "the memory), and ELASTIC with retrieval from the user's whole older history and "
        "with a longer window; seeds 0, 1, 2 each, one `train` run per seed (commands in "
        "the file's `commands`), merged with `scripts/merge_accuracy.py --run LABEL=FILE`.",
        "",
        "```",
        acc["table"],
        "```",
        "",
        table(["run", "memory slots ever used"], rows),
        "",
        table(
            [
                "pair (first minus second, test NDCG@10 per user)",
                "difference",
                "95% CI",
                "wins / losses",
                "sign test p",
            ],
            pairs,
        ),
        "",
        by_length_table(acc["by_history_length"]),
        "",
    ]
    del labels
    return "\n".join(out)


def long_range() -> str:
    out = ["## Long-range recall", ""]
    files = sorted(RESULTS.glob("long-context-*.json"))
    if not files:
        return "\n".join(out + ["(no results/long-context-*.json)"])
    from elastic_edu.viz.costs import study_runs

    rows = []
    for path in files:
        data = json.loads(path.read_text())
        study = data["long_context"]
        study = {**study, "elastic_model": data["settings"].get("elastic_model", "elastic-bidir")}
        for key, run in study_runs(study).items():
            model = key.partition(":")[0]
            curriculum = "no" if list(run.get("curriculum", [1.0])) == [1.0] else "yes"
            rows.append(
                [
                    study["distance"],
                    data["settings"].get("seed", 0),
                    display_name(model),
                    curriculum,
                    run["max_len"],
                    f"{run['HR@1']:.3f}",
                    f"{run['test']['HR@10']:.3f}",
                    f"{run.get('train_seconds', float('nan')):.0f}",
                    f"`{path.name}`",
                ]
            )
    rows.sort(key=lambda r: (r[0], r[2], r[3], r[1]))
    out += [
        "`scripts/synthetic_studies.py --study long-context`: a user's last item is the "
        "partner of a key seen `distance` events earlier, with nothing nearer hinting at it "
        "(256 users, 16 key pairs, chance HR@1 = 1/16). The dispatcher model reads N = 4 x "
        "distance rounded up to a power of two; SASRec gets the longest N whose training step "
        "is no slower than the dispatcher model's; both train for the same wall-clock budget "
        f"with the same curriculum over distance, on the {CPU}. Files from commit 7dc3014 ran the "
        "non-causal ELASTIC-bidir (their `elastic`); the commands are in results/README.md.",
        "",
        table(
            [
                "distance",
                "seed",
                "model",
                "curriculum",
                "N",
                "test HR@1",
                "test HR@10",
                "train s",
                "file",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(out)


# ---- on a GPU ---------------------------------------------------------------------------------
H200 = ("bench-nvidia-h200-fp32.json", "bench-nvidia-h200-bf16.json")


def gpu() -> str:
    out = ["## On a GPU: NVIDIA H200, commit 7dc3014 (the non-causal form only)", ""]
    benches = [(name, load(name)) for name in H200]
    if any(b is None for _, b in benches):
        return "\n".join(out + ["(results/bench-nvidia-h200-{fp32,bf16}.json are missing)", ""])
    out += [
        "Measured at commit 7dc3014, before the causal ELASTIC existed: the label `elastic-k32` "
        "in these files is the non-causal model now called `elastic-bidir` (shown as "
        "ELASTIC-bidir). NVIDIA H200, torch 2.11.0+cu130; batch 4, d = 64, 2 layers, 2 heads, "
        "1,000 items, random ids without padding, median of 10 runs after 3 warm-ups (CUDA "
        "events), peak memory = `torch.cuda.max_memory_allocated`; bfloat16 under autocast. "
        "Made by that commit's `scripts/gpu_checks.sh`, which ran one plain `bench` command per "
        "precision (today's script measures other settings: docs/USAGE.md):",
        "",
    ]
    for name, bench in benches:
        s = bench["settings"]
        out += [
            f"    python -m elastic_edu bench --device cuda --dtype {s['dtype']} --models "
            f"{' '.join(s['models'])} --k {' '.join(map(str, s['ks']))} --lengths "
            f"{' '.join(map(str, s['lengths']))} --batch {s['batch']} --repeats {s['repeats']} "
            f"--warmup {s['warmup']} --timeout {s['timeout']:g} --out results/{name}",
            "",
        ]
    for name, bench in benches:
        dtype = bench["settings"]["dtype"]
        for base in ("sasrec-sdpa", "sasrec-naive"):
            out += [
                f"### {dtype}: ELASTIC-bidir (k = 32) against {display_name(base)} "
                f"(`results/{name}`)",
                "",
                ratio_table(bench, base, labels=("elastic-k32",)),
                "",
            ]
        out += [f"### {dtype}: log-log slopes over N = 2048 .. 16384", "", slope_table(bench), ""]
    out += [
        "![Inference latency against N on an NVIDIA H200 in bfloat16, log-log, with fitted "
        "slopes: SASRec naive and fused, ELASTIC-bidir and LDA-only-bidir of commit 7dc3014]"
        "(images/complexity-h200-bf16-latency.png)",
        "![Inference peak memory against N on an NVIDIA H200 in float32, log-log, with fitted "
        "slopes](images/complexity-h200-fp32-memory.png)",
        "",
    ]
    return "\n".join(out)


# ---- everything else that is already committed -----------------------------------------------
def planted() -> str:
    data = load("planted-cpu-amd-epyc.json")
    out = ["## Planted interests: do the experts find them?", ""]
    if data is None:
        return "\n".join(out + ["(results/planted-cpu-amd-epyc.json is missing)"])
    rows = []
    for r in data["planted"].values():
        if isinstance(r, dict) and "nmi" in r:
            slot = f"{r['nmi_slots']:.3f}" if "nmi_slots" in r else "no memory"
            rows.append(
                [
                    f"{display_name(r['model'])} ({r['objective']})",
                    f"{r['nmi']:.3f} ({r['nmi_shuffled']:.3f})",
                    slot,
                    f"{r['nmi_per_user']:.3f} ({r['nmi_per_user_shuffled']:.3f})",
                ]
            )
    out += [
        "`results/planted-cpu-amd-epyc.json` (commit 48fff31, the causal layer computed the "
        "materialising way): 256 users, histories of N = 1024 items drawn from 8 planted "
        "interests, k = 16 experts, 9 epochs each. NMI between each item's expert (argmax of "
        "the last layer's dispatch weights) and its planted interest; shuffled labels in "
        "brackets. `python scripts/synthetic_studies.py --study planted --device cpu "
        "--users 256 --planted-len 1024 --planted-models elastic lda elastic-bidir "
        "--planted-epochs 9 --minutes 100 --quiet --out results/planted-cpu-amd-epyc.json`",
        "",
        table(
            [
                "model (objective)",
                "NMI by expert (shuffled)",
                "NMI by memory slot",
                "NMI per user (shuffled)",
            ],
            rows,
        ),
        "",
    ]
    return "\n".join(out)


def stream() -> str:
    bench = load("bench-cpu-amd-epyc-stream.json")
    if bench is None:
        return ""
    return "\n".join(
        [
            "## Streaming: the cost of one more event",
            "",
            f"`results/bench-cpu-amd-epyc-stream.json` ({CPU}, one thread; commit "
            "d87ab4d): `model.step` after N streamed events, beside a fresh stream "
            "timed alternately, and re-encoding the whole history.",
            "",
            f"    {bench_command(bench)}",
            "",
            "```",
            bench_report.format_stream(bench),
            "```",
            "",
        ]
    )


SECTIONS = [cost, tuned, memory, long_range, padding, defaults, untuned, planted, stream, gpu]


def document() -> str:
    head = [
        "# Results",
        "",
        "Generated by `python scripts/results_tables.py` from the files in `results/`: edit "
        "that script, never this page (`tests/test_results_doc.py` fails when they drift). "
        "Each table names its file and the command that made it; `results/README.md` lists "
        "every file.",
        "",
    ]
    return "\n".join(head + [s() for s in SECTIONS]).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare instead of writing")
    a = p.parse_args(argv)
    text = document()
    if a.check:
        same = DOC.exists() and DOC.read_text() == text
        print(
            "docs/RESULTS.md is up to date"
            if same
            else "docs/RESULTS.md has drifted from results/: python scripts/results_tables.py"
        )
        return 0 if same else 1
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
