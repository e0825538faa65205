"""Reading bench results: slopes, ratios, where one model overtakes another, stream tables;
every committed bench file still loads and summarises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elastic_edu.bench import report as bench_report
from elastic_edu.files import write_json

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _synthetic() -> dict:
    points = []
    for n in (512, 1024, 2048, 4096, 8192):
        for mode in ("inference", "train"):
            for model, lat, mem in (
                ("sasrec-naive", 1e-6 * n**2, 1e-5 * n**2),
                ("sasrec-sdpa", 1e-4 * n**1.5, 1e-3 * n),
                ("elastic-k32", 1e-3 * n, 5e-4 * n),
            ):
                points.append({"model": model, "n": n, "batch": 4, "mode": mode, "flops": n,
                               "latency_ms": lat, "peak_mb": mem, "status": "ok"})  # fmt: skip
    points.append({"model": "sasrec-naive", "n": 16384, "batch": 4, "mode": "train",
                   "flops": 1, "latency_ms": None, "peak_mb": None, "status": "oom"})  # fmt: skip
    return {"settings": {"ks": [16, 32, 64]}, "points": points}


def test_summarise_slopes_and_ratios():
    summary = bench_report.summarise(_synthetic())
    naive = summary["slopes"]["sasrec-naive"]["train"]
    assert naive["latency_ms"] == pytest.approx(2.0) and naive["peak_mb"] == pytest.approx(2.0)
    assert naive["n"] == [2048, 8192]  # only N >= 2048, and the oom point is left out
    assert summary["slopes"]["sasrec-sdpa"]["inference"]["latency_ms"] == pytest.approx(1.5)
    assert summary["slopes"]["elastic-k32"]["inference"]["peak_mb"] == pytest.approx(1.0)
    assert summary["reference"] == "elastic-k32"
    r = summary["ratios"]["elastic-k32"]["sasrec-naive"]["inference"][8192]
    assert r["latency"] == pytest.approx(1e-3 * 8192 / (1e-6 * 8192**2))
    assert r["speedup"] == pytest.approx(1 / r["latency"])
    assert r["memory"] == pytest.approx(5e-4 / (1e-5 * 8192))
    assert "sasrec-naive" not in summary["ratios"]
    table = bench_report.format_summary(summary)
    assert "log-log slope" in table and "2.00" in table and "x@8192" in table


def test_ratios_compare_compiled_with_compiled():
    b = _synthetic()
    b["points"] += [dict(p, model=p["model"] + "+compile") for p in b["points"]]
    ratios = bench_report.summarise(b)["ratios"]
    assert set(ratios["elastic-k32"]) == {"sasrec-naive", "sasrec-sdpa"}
    assert set(ratios["elastic-k32+compile"]) == {"sasrec-naive+compile", "sasrec-sdpa+compile"}


def test_summarise_reads_json_keys_and_short_sweeps(tmp_path):
    path = tmp_path / "b.json"
    write_json(path, _synthetic())
    loaded = bench_report.load_results(path)
    summary = bench_report.summarise(loaded, slope_from=100_000)  # too few: the longest three
    assert summary["slopes"]["elastic-k32"]["train"]["n"] == [2048, 8192]
    assert "elastic-k32" in bench_report.format_summary(json.loads(json.dumps(summary)))


def test_crossover_finds_where_elastic_overtakes():
    # sasrec-sdpa 1e-4 n^1.5 against elastic 1e-3 n: equal at n = 100, faster above
    b = _synthetic()
    c = bench_report.crossover(b, "elastic-k32", "sasrec-sdpa", "inference")
    assert c["from_n"] == 512
    assert c["at"][8192]["speedup"] == pytest.approx(1e-4 * 8192**0.5 / 1e-3)
    slow = [dict(p, latency_ms=p["latency_ms"] * 5) if p["model"] == "elastic-k32" and p["n"]
            < 4096 else p for p in b["points"]]  # fmt: skip
    c = bench_report.crossover({"points": slow}, "elastic-k32", "sasrec-sdpa", "inference")
    assert c["from_n"] == 4096  # slower at 2048 (5 x 2.048 ms > 9.3 ms), faster from 4096
    c = bench_report.crossover(b, "elastic-k32", "sasrec-naive", "train")
    line = bench_report.format_crossover(c, at=(8192, 16384, 65536))
    assert "from N=1024" in line and "N=16384: - vs oom" in line  # 1.02 ms against 1.05 ms
    assert "N=65536: not measured" in line
    never = bench_report.crossover(b, "sasrec-sdpa", "sasrec-naive", "inference")  # n < 1e4
    assert never["from_n"] is None and "never" in bench_report.format_crossover(never)


def test_format_stream():
    points = [{"model": "elastic-causal-k32", "n": n, "mode": "stream", "status": "ok",
               "latency_ms": ms, "fresh_ms": 0.4, "reencode_ms": re} for n, ms, re in
              ((512, 0.4, 40.0), (8192, 0.5, None))]  # fmt: skip
    points.append({"model": "lda-causal-k32", "n": 8192, "mode": "stream", "status": "timeout"})
    lines = bench_report.format_stream({"points": points}).splitlines()
    assert lines[1].split() == ["elastic-causal-k32", "512", "0.400", "0.400", "1.00", "40.00",
                                "100"]  # fmt: skip
    assert lines[2].split() == ["elastic-causal-k32", "8192", "0.500", "0.400", "1.25", "-", "-"]
    assert lines[3].split() == ["lda-causal-k32", "8192", "timeout"]
    assert lines[4] == "elastic-causal-k32: per-event latency at N=8192 is 1.25x N=512's"


@pytest.mark.parametrize("path", sorted(RESULTS.rglob("bench-*.json")), ids=lambda p: p.name)
def test_committed_bench_files_load_and_summarise(path):
    b = bench_report.load_results(path)
    summary = bench_report.summarise(b)
    assert summary["slopes"] and "log-log slope" in bench_report.format_summary(summary)


def test_loglog_slope_needs_two_positive_points():
    assert bench_report.loglog_slope([1, 2], [0.0, 1.0]) is None
    assert bench_report.loglog_slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)


def test_subset_keeps_only_the_named_labels():
    sub = bench_report.subset(_synthetic(), ["sasrec-sdpa", "elastic-k32", "absent"])
    assert {p["model"] for p in sub["points"]} == {"sasrec-sdpa", "elastic-k32"}
    assert sub["settings"]["labels"] == ["sasrec-sdpa", "elastic-k32"]


def test_claims_at_the_longest_common_n_and_where_sasrec_failed():
    rows = {(r["label"], r["baseline"]): r for r in bench_report.claims(_synthetic(), "train")}
    naive = rows[("elastic-k32", "sasrec-naive")]
    assert naive["n"] == 8192 and naive["baseline_failed"] == {}  # elastic has no 16384 point
    assert naive["memory_saved"] == pytest.approx(1 - 5e-4 / (1e-5 * 8192))
    assert naive["speedup"] == pytest.approx(1e-6 * 8192 / 1e-3)
    text = bench_report.format_claims(_synthetic(), "train")
    assert "elastic-k32 (= elastic-bidir) vs sasrec-naive" in text and "reaches 90%" in text


def test_describe_names_the_models_and_the_command():
    path = RESULTS / "bench-cpu-amd-epyc.json"
    text = bench_report.describe(bench_report.load_results(path), path.name)
    assert "elastic-causal-k8 = elastic-causal" in text
    assert "--out results/bench-cpu-amd-epyc.json" in text
