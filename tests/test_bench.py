"""The bench end to end on tiny sizes (not timed), its failure statuses and its summary maths."""

from __future__ import annotations

import json

import pytest

from elastic_edu import bench
from elastic_edu.cli import main as cli_main

TINY = ["--lengths", "16", "32", "--dim", "16", "--heads", "2", "--layers", "1",
        "--num-items", "50", "--repeats", "1", "--warmup", "0", "--threads", "1",
        "--device", "cpu"]  # fmt: skip
KEYS = {"model", "n", "batch", "mode", "latency_ms", "peak_mb", "flops", "status"}


def test_cli_end_to_end_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    models = ["sasrec-naive", "sasrec-sdpa", "elastic", "lda"]
    assert cli_main(["bench", "--models", *models, "--k", "4", *TINY, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["torch"] and result["machine"]["hostname"] is not None
    assert result["device_name"] and result["settings"]["objective"] == "cut"
    points = result["points"]
    labels = ["sasrec-naive", "sasrec-sdpa", "elastic-k4", "lda-k4"]
    assert {(p["model"], p["n"], p["mode"]) for p in points} == {
        (m, n, mode) for m in labels for n in (16, 32) for mode in ("inference", "train")
    }
    for p in points:
        assert KEYS <= set(p), p
        assert p["status"] in bench.STATUSES
        assert p["batch"] == 4 and p["mode"] in ("inference", "train")
        if p["status"] == "ok":
            assert p["flops"] > 0 and p["latency_ms"] > 0 and p["peak_mb"] >= 0
    # training costs more matrix products than inference, and FLOPs grow with n
    flops = {(p["model"], p["n"], p["mode"]): p["flops"] for p in points}
    for m in labels:
        assert flops[m, 16, "train"] > flops[m, 16, "inference"]
        assert flops[m, 32, "inference"] > flops[m, 16, "inference"]
    printed = capsys.readouterr().out
    assert "log-log slope" in printed and "elastic-k4" in printed and "[16/16]" in printed


def test_timeout_and_oom_are_recorded_and_larger_n_skipped(tmp_path):
    argv = ["--models", "sasrec-naive", "--modes", "inference", *TINY, "--lengths", "16", "512"]
    settings = bench.make_settings([*argv, "--dim", "64", "--batch", "64", "--mem-limit", "0.2"])
    result = bench.run_bench(settings, log=lambda line: None)
    status = {p["n"]: p["status"] for p in result["points"]}
    assert status == {
        16: "ok",
        512: "oom",
    }  # (64, 2, 512, 512) float scores: several 128 MiB > 205 MiB
    settings.update(timeout=1e-6, mem_limit_mb=None, batch=2)  # one run exceeds the budget
    result = bench.run_bench(settings, log=lambda line: None)
    assert [p["status"] for p in result["points"]] == ["timeout", "timeout"]
    assert result["points"][1]["note"].startswith("skipped")
    assert result["points"][1]["flops"] > result["points"][0]["flops"]  # counted all the same


def test_expand_models_labels():
    labels = lambda models, ks: [v["label"] for v in bench.expand_models(models, ks)]
    assert labels(["sasrec-naive", "elastic", "lda"], [16, 32, 64]) == [
        "sasrec-naive", "elastic-k16", "elastic-k32", "elastic-k64", "lda-k32"
    ]  # fmt: skip
    assert labels(["elastic", "lda"], [32]) == ["elastic-k32", "lda-k32"]
    assert labels(["elastic-k8", "sasrec-sdpa"], [32]) == ["elastic-k8", "sasrec-sdpa"]
    with pytest.raises(SystemExit, match="unknown"):
        bench.expand_models(["transformer"], [32])


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
    summary = bench.summarise(_synthetic())
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
    table = bench.format_summary(summary)
    assert "log-log slope" in table and "2.00" in table and "x@8192" in table


def test_summarise_reads_json_keys_and_short_sweeps(tmp_path):
    path = tmp_path / "b.json"
    bench.write_json(path, _synthetic())
    loaded = bench.load_results(path)
    summary = bench.summarise(loaded, slope_from=100_000)  # too few: the three longest points
    assert summary["slopes"]["elastic-k32"]["train"]["n"] == [2048, 8192]
    assert "elastic-k32" in bench.format_summary(json.loads(json.dumps(summary)))


def test_loglog_slope_needs_two_positive_points():
    assert bench.loglog_slope([1, 2], [0.0, 1.0]) is None
    assert bench.loglog_slope([1, 2, 4], [3, 6, 12]) == pytest.approx(1.0)
