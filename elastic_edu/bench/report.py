"""Reading bench results: log-log slopes, ratios of ELASTIC to SASRec, the printed table.

`elastic_edu.bench.sweep` measures and writes the JSON; this module only reads it (plain dicts in,
plain dicts and text out), so notebooks and the README can summarise committed files.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from elastic_edu.models.registry import ALIASES, REGISTRY, name_in

# bench labels written before the model registry (commit 7dc3014, results/history/): there
# ``elastic-k32`` and ``lda-k32`` measured the non-causal forms
LEGACY_BENCH = {"elastic": "elastic-bidir", "lda": "lda-bidir"}


def reference_k(ks: list[int]) -> int:
    """The k that ``lda`` and the summary's ELASTIC reference use: the middle of the sorted ks."""
    ks = sorted(ks)
    return ks[(len(ks) - 1) // 2]


def bench_label_model(label: str) -> str:
    """The registry model a bench label measured: ``elastic-causal-k32`` -> elastic-causal,
    ``sasrec-sdpa`` -> sasrec; the alias labels of files from before the registry
    (``elastic-k32``) measured the non-causal form. The bench has written resolved names only
    since the registry, so an alias label can only come from such a file."""
    base = label.partition("+")[0]
    found = re.fullmatch(r"(.+)-k(\d+)", base)
    model = found[1] if found else base
    if model in LEGACY_BENCH:
        return LEGACY_BENCH[model]
    return name_in(model, aliases=False) or model


def is_baseline(label: str) -> bool:
    """Whether a bench label measured the quadratic baseline: a model with attention back-ends
    (full self-attention: SASRec), by its facts."""
    spec = REGISTRY.get(bench_label_model(label))
    return spec is not None and bool(spec.backends)


def load_results(path) -> dict:
    """A bench JSON written by `run_bench` (or ``python -m elastic_edu bench --out``)."""
    return json.loads(Path(path).read_text())


def loglog_slope(x, y, x_from: float | None = None) -> float | None:
    """Least-squares slope of log y against log x: the exponent of a power law, for tables and
    legend entries (`elastic_edu.viz` shows this one too).

    Over the positive points with x >= `x_from`, or the three largest x when fewer than two
    reach it; without `x_from`, all positive points. None below two points.
    """
    pairs = sorted((a, b) for a, b in zip(np.ravel(x), np.ravel(y)) if a and b and a > 0 and b > 0)
    if x_from is not None:
        long_end = [(a, b) for a, b in pairs if a >= x_from]
        pairs = long_end if len(long_end) >= 2 else pairs[-3:]
    if len(pairs) < 2:
        return None
    xs, zs = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(xs, zs, 1)[0])


def summarise(bench: dict, slope_from: int = 2048, ratio_at=(2048, 4096, 8192)) -> dict:
    """Log-log slopes per model and mode, and ELASTIC / LDA to SASRec ratios at `ratio_at`.

    slopes[label][mode] = {latency_ms, peak_mb, n: [lo, hi]}, fitted over the ok points with
    n >= slope_from (the three longest ok points when fewer than two qualify).
    ratios[label][baseline][mode][n] = {latency, memory, speedup}: label / baseline, so
    latency 0.1 means ten times faster (speedup = baseline / label).
    """
    div = lambda a, b: a / b if a is not None and b else None
    ok = [p for p in bench["points"] if p["status"] == "ok"]
    labels = list(dict.fromkeys(p["model"] for p in bench["points"]))
    modes = list(dict.fromkeys(p["mode"] for p in bench["points"]))
    slopes: dict = {}
    for label in labels:
        for mode in modes:
            pts = sorted((p for p in ok if p["model"] == label and p["mode"] == mode),
                         key=lambda p: p["n"])  # fmt: skip
            use = [p for p in pts if p["n"] >= slope_from]
            use = use if len(use) >= 2 else pts[-3:]
            ns = [p["n"] for p in use]
            slopes.setdefault(label, {})[mode] = {
                "latency_ms": loglog_slope(ns, [p["latency_ms"] for p in use]),
                "peak_mb": loglog_slope(ns, [p["peak_mb"] for p in use]),
                "n": [min(ns), max(ns)] if ns else None,
            }
    at = {(p["model"], p["mode"], p["n"]): p for p in ok}
    ratios: dict = {}
    for label in (x for x in labels if not is_baseline(x)):
        for base in (x for x in labels if is_baseline(x) and _tag(x) == _tag(label)):
            for mode in modes:
                for n in ratio_at:
                    a, b = at.get((label, mode, n)), at.get((base, mode, n))
                    if not (a and b):
                        continue
                    r = ratios.setdefault(label, {}).setdefault(base, {}).setdefault(mode, {})
                    r[n] = {"latency": div(a["latency_ms"], b["latency_ms"]),
                            "memory": div(a["peak_mb"], b["peak_mb"]),
                            "speedup": div(b["latency_ms"], a["latency_ms"])}  # fmt: skip
    s = bench.get("settings", {})
    ref = None
    if s.get("ks"):  # the recommended ELASTIC at the middle k (files before the registry: elastic)
        k = reference_k(s["ks"])
        names = [f"{ALIASES['elastic']}-k{k}", f"elastic-k{k}"]
        ref = next((x for x in names if x in labels), names[0])
    return {"reference": ref, "slope_from": slope_from, "ratio_at": list(ratio_at),
            "slopes": slopes, "ratios": ratios}  # fmt: skip


def _tag(label: str) -> str:
    """The compile tag of a label (``elastic-k32+compile`` -> ``compile``): ratios compare like
    with like."""
    return label.partition("+")[2]


def crossover(bench: dict, label: str, baseline: str, mode: str) -> dict:
    """Where `label` overtakes `baseline`: the smallest measured N from which it is faster at
    every N where both ran (None if never), and per N the speed-up (baseline / label latency),
    the memory share (label / baseline) and each status."""
    div = lambda a, b: a / b if a is not None and b else None
    pts = {(p["model"], p["n"]): p for p in bench["points"] if p["mode"] == mode}
    ns = sorted({n for m, n in pts if m in (label, baseline)})
    rows, faster = {}, []
    for n in ns:
        a, b = pts.get((label, n), {}), pts.get((baseline, n), {})
        both = a.get("status") == b.get("status") == "ok"
        x = b["latency_ms"] / a["latency_ms"] if both else None
        mem = div(a.get("peak_mb"), b.get("peak_mb")) if both else None
        rows[n] = {"speedup": x, "memory": mem, "status": [a.get("status"), b.get("status")]}
        if both:
            faster.append((n, x > 1))
    since = None
    for n, ok in reversed(faster):
        if not ok:
            break
        since = n
    return {"label": label, "baseline": baseline, "mode": mode, "from_n": since, "at": rows}


def format_crossover(c: dict, at=(16384, 65536)) -> str:
    """One line: where `label` overtakes `baseline`, and by how much at the N in `at`."""
    where = f"from N={c['from_n']}" if c["from_n"] else "never in the measured range"
    parts = [f"{c['label']} vs {c['baseline']} ({c['mode']}): faster {where}"]
    for n in at:
        r = c["at"].get(n) or c["at"].get(str(n))
        if r is None:
            parts.append(f"N={n}: not measured")
        elif r["speedup"] is None:
            a, b = (x or "-" for x in r["status"])
            parts.append(f"N={n}: {a} vs {b}")
        else:
            mem = "" if r["memory"] is None else f", {100 * r['memory']:.0f}% memory"
            parts.append(f"N={n}: {r['speedup']:.2f}x{mem}")
    return "; ".join(parts)


def format_crossovers(bench: dict, at=(16384, 65536)) -> str:
    """`format_crossover` lines, per mode: every other model against every SASRec of the same
    compile tag, and every compiled label against its eager self."""
    labels = list(dict.fromkeys(p["model"] for p in bench["points"]))
    pairs = [(a, b) for a in labels if not is_baseline(a)
             for b in labels if is_baseline(b) and _tag(a) == _tag(b)]  # fmt: skip
    pairs += [(a, a.partition("+")[0]) for a in labels if _tag(a) and a.partition("+")[0] in labels]
    modes = dict.fromkeys(p["mode"] for p in bench["points"] if p["mode"] != "stream")
    lines = [format_crossover(crossover(bench, a, b, m), at) for m in modes for a, b in pairs]
    return "\n".join(lines)


def format_stream(bench: dict) -> str:
    """Stream points: per-event latency after N events and on a fresh stream (timed alternately,
    so their ratio resists other load), re-encoding the history for comparison, and each model's
    per-event latency at its largest N over its smallest."""
    pts = sorted((p for p in bench["points"] if p["mode"] == "stream"),
                 key=lambda p: (p["model"], p["n"]))  # fmt: skip
    f = lambda x, spec: "-" if x is None else format(x, spec)
    lines = [f"{'model':<20} {'N':>7} {'ms/event':>9} {'fresh':>7} {'after/fresh':>11} "
             f"{'re-encode ms':>13} {'re-encode/event':>15}"]  # fmt: skip
    for p in pts:
        if p["status"] != "ok":
            lines.append(f"{p['model']:<20} {p['n']:>7} {p['status']:>9}")
            continue
        ms, fresh, re = p["latency_ms"], p.get("fresh_ms"), p.get("reencode_ms")
        grow = None if fresh is None else ms / fresh
        lines.append(f"{p['model']:<20} {p['n']:>7} {ms:>9.3f} {f(fresh, '.3f'):>7} "
                     f"{f(grow, '.2f'):>11} {f(re, '.2f'):>13} "
                     f"{f(None if re is None else re / ms, '.0f'):>15}")  # fmt: skip
    for label in dict.fromkeys(p["model"] for p in pts):
        ok = [p for p in pts if p["model"] == label and p["status"] == "ok"]
        if len(ok) >= 2:
            lo, hi = ok[0], ok[-1]
            x = hi["latency_ms"] / lo["latency_ms"]
            lines.append(f"{label}: per-event latency at N={hi['n']} is {x:.2f}x N={lo['n']}'s")
    return "\n".join(lines)


def efficiency(bench: dict) -> list[dict]:
    """Achieved GFLOP/s of every ok point (counted FLOPs / latency) and its share of the CPU's
    peak: the measured square matrix product and the formula (`elastic_edu.bench.profile`), when the
    file has them (`bench["peak"]`, CPU files from this commit on)."""
    peak = bench.get("peak") or {}
    measured = peak.get("matmul_gflops")
    theory = (peak.get("theoretical") or {}).get("gflops")
    rows = []
    for p in bench["points"]:
        if p["status"] != "ok" or not p.get("flops") or p["mode"] == "stream":
            continue
        rate = p["flops"] / (p["latency_ms"] / 1e3) / 1e9
        rows.append({"model": p["model"], "mode": p["mode"], "n": p["n"], "batch": p["batch"],
                     "gflops": rate, "of_matmul": rate / measured if measured else None,
                     "of_theoretical": rate / theory if theory else None})  # fmt: skip
    return rows


def format_efficiency(bench: dict, at=(8192,)) -> str:
    """Lines of achieved GFLOP/s at the N in `at`, with the share of each peak."""
    peak = bench.get("peak") or {}
    theory = peak.get("theoretical") or {}
    head = (
        f"achieved GFLOP/s (counted matrix-product FLOPs / latency); peak: square matmul "
        f"{peak.get('matmul_gflops', float('nan')):.0f} GFLOP/s measured, "
        f"{theory.get('gflops', float('nan')):.0f} by formula ({theory.get('formula', '-')})"
    )
    lines = [head]
    for r in efficiency(bench):
        if r["n"] in at:
            share = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
            lines.append(f"{r['model']:<20} {r['mode']:<10} n={r['n']:<6} {r['gflops']:7.1f} "
                         f"GFLOP/s  {share(r['of_matmul'])} of matmul, "
                         f"{share(r['of_theoretical'])} of formula")  # fmt: skip
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    """The printed table: slopes, then speed-up and memory share against each SASRec."""
    f = lambda x, spec, unit="": (
        "-" if x is None or not math.isfinite(x) else format(x, spec) + unit
    )
    head = f"{'model':<20} {'mode':<10} {'N range':<12} {'latency':>8} {'memory':>8}"
    lines = [f"log-log slope over N >= {summary['slope_from']} (else the longest)", head]
    for label, by_mode in summary["slopes"].items():
        for mode, sl in by_mode.items():
            rng = f"{sl['n'][0]}-{sl['n'][1]}" if sl["n"] else "-"
            lines.append(f"{label:<20} {mode:<10} {rng:<12} {f(sl['latency_ms'], '.2f'):>8} "
                         f"{f(sl['peak_mb'], '.2f'):>8}")  # fmt: skip
    ns = summary["ratio_at"]
    lines += ["", "speed-up = SASRec latency / model latency; memory = model peak / SASRec peak",
              f"{'model':<20} {'vs':<20} {'mode':<10} "
              + "".join(f"{'x@' + str(n):>9}" for n in ns)
              + "".join(f"{'mem@' + str(n):>10}" for n in ns)]  # fmt: skip
    for label, by_base in summary["ratios"].items():
        for base, by_mode in by_base.items():
            for mode, r in by_mode.items():
                x = [r.get(n, r.get(str(n), {})) for n in ns]  # int keys, or str from JSON
                mem = [None if q.get("memory") is None else 100 * q["memory"] for q in x]
                lines.append(f"{label:<20} {base:<20} {mode:<10} "
                             + "".join(f"{f(q.get('speedup'), '.1f', 'x'):>9}" for q in x)
                             + "".join(f"{f(m, '.1f', '%'):>10}" for m in mem))  # fmt: skip
    return "\n".join(lines)


def subset(bench: dict, labels: list[str]) -> dict:
    """The bench with the points of `labels` only (and its settings' labels cut to them): a
    figure or summary of the models a reader compares, from a file that measured more."""
    keep = [x for x in labels if any(p["model"] == x for p in bench["points"])]
    points = [p for p in bench["points"] if p["model"] in keep]
    return {**bench, "points": points, "settings": {**bench.get("settings", {}), "labels": keep}}


def command_of(bench: dict, name: str) -> str:
    """The bench command line that reproduces file `name` from its stored settings (files from
    before the registry name their models by the old labels: check them out at their commit)."""
    s = bench["settings"]
    compiled = [c for c in s.get("compile", ["off"]) if c != "off"]
    return (f"python -m elastic_edu bench --models {' '.join(s['models'])} "
            f"--k {' '.join(map(str, s['ks']))} --lengths {' '.join(map(str, s['lengths']))} "
            f"--modes {' '.join(s['modes'])} --batch {s['batch']} --device {s['device']} "
            f"--dtype {s['dtype']} --dim {s['dim']} --layers {s['layers']} --heads {s['heads']} "
            f"--threads {s['threads']} --timeout {s['timeout']:g}"
            + (f" --compile off {' '.join(compiled)}" if compiled else "")
            + f" --out results/{name}")  # fmt: skip


def describe(bench: dict, name: str) -> str:
    """Where and how a bench file was made: machine, torch, sizes, how memory was read, which
    model each label measured, and the command that reproduces it."""
    s = bench["settings"]
    labels = list(dict.fromkeys(p["model"] for p in bench["points"]))
    status = {st: sum(p["status"] == st for p in bench["points"])
              for st in dict.fromkeys(p["status"] for p in bench["points"])}  # fmt: skip
    models = ", ".join(f"{x} = {bench_label_model(x)}" for x in labels)
    return "\n".join([
        f"{name}: {bench['device_name']} ({bench['device']}), torch {bench['torch']}, "
        f"created {bench.get('created', '?')}",
        f"  d={s['dim']}, {s['layers']} layers, {s['heads']} heads, batch {s['batch']}, "
        f"{s['dtype']}, {s['threads']} CPU thread(s), N = {s['lengths']}; points: {status}",
        f"  memory: {s.get('memory', '?')}",
        f"  labels measured: {models}",
        f"  made by: {command_of(bench, name)}",
    ])  # fmt: skip


def claims(bench: dict, mode: str = "inference") -> list[dict]:
    """Each non-baseline label against each SASRec of the same compile tag at the longest N where
    both finished: memory saved (1 - label / SASRec peak) and speed-up (SASRec / label time), the
    two numbers the paper's "up to 90% less memory, 2.7x faster inference" are about; and the
    longer N where SASRec failed (out of memory or time) while the label finished."""
    pts = {(p["model"], p["n"]): p for p in bench["points"] if p["mode"] == mode}
    labels = list(dict.fromkeys(p["model"] for p in bench["points"] if p["mode"] == mode))
    rows = []
    for label in (x for x in labels if not is_baseline(x)):
        for base in (x for x in labels if is_baseline(x) and _tag(x) == _tag(label)):
            ns = sorted(n for (m, n) in pts if m == label)
            both = [n for n in ns if pts[(label, n)]["status"] == "ok"
                    and pts.get((base, n), {}).get("status") == "ok"]  # fmt: skip
            failed = [n for n in ns if pts[(label, n)]["status"] == "ok"
                      and pts.get((base, n), {}).get("status") not in (None, "ok")]  # fmt: skip
            if not both:
                continue
            a, b = pts[(label, both[-1])], pts[(base, both[-1])]
            measured = a.get("peak_mb") and b.get("peak_mb")
            saved = 1 - a["peak_mb"] / b["peak_mb"] if measured else None
            rows.append({"label": label, "baseline": base, "mode": mode, "n": both[-1],
                         "memory_saved": saved, "speedup": b["latency_ms"] / a["latency_ms"],
                         "baseline_failed": {n: pts[(base, n)]["status"]
                                             for n in failed}})  # fmt: skip
    return rows


def format_claims(bench: dict, mode: str = "inference") -> str:
    """`claims` as lines, each saying plainly whether it reaches the paper's two figures."""
    lines = []
    for r in claims(bench, mode):
        saved = r["memory_saved"]
        mem = ("memory not measured" if saved is None
               else f"{100 * saved:.1f}% less memory" if saved >= 0
               else f"{-100 * saved:.1f}% MORE memory")  # fmt: skip
        x = r["speedup"]
        speed = f"{x:.2f}x faster" if x >= 1 else f"{1 / x:.2f}x SLOWER"
        reach = [
            "memory: "
            + ("reaches" if saved is not None and saved >= 0.9 else "falls short of")
            + " 90%",
            "speed: " + ("reaches" if x >= 2.7 else "falls short of") + " 2.7x",
        ]
        failed = r["baseline_failed"].items()
        fail = "".join(f"; SASRec {st} at N={n}, ELASTIC ran" for n, st in failed)
        model = bench_label_model(r["label"])
        name = r["label"] if r["label"].startswith(model) else f"{r['label']} (= {model})"
        lines.append(f"{name} vs {r['baseline']} ({mode}, N={r['n']}): {mem}, {speed} "
                     f"({', '.join(reach)}){fail}")  # fmt: skip
    return "\n".join(lines)
