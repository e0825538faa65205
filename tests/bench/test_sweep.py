"""The bench sweep end to end on tiny sizes (not timed): its JSON, its refusals, its sandbox
(address-space cap, out of memory, timeouts) and its exit status when a point fails."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from elastic_edu.bench import BenchConfig, sweep
from elastic_edu.bench.config import model_config, parse_label
from elastic_edu.cli import main as cli_main
from elastic_edu.models import build_model

TINY = ["--lengths", "16", "32", "--dim", "16", "--heads", "2", "--layers", "1",
        "--num-items", "50", "--repeats", "1", "--warmup", "0", "--threads", "1",
        "--device", "cpu"]  # fmt: skip
KEYS = {"model", "n", "batch", "mode", "latency_ms", "peak_mb", "flops", "status", "params"}
ROOT = Path(__file__).resolve().parents[2]


def test_cli_end_to_end_writes_valid_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    models = ["sasrec-naive", "sasrec-sdpa", "elastic", "lda-k4"]
    assert cli_main(["bench", "--models", *models, "--k", "4", *TINY, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["machine"]["hostname"] == platform.node()
    assert result["settings"]["objective"] == "cut" and result["device"] == "cpu"
    labels = ["sasrec-naive", "sasrec-sdpa", "elastic-causal-k4", "lda-causal-k4"]  # no aliases
    assert result["settings"]["labels"] == labels
    points = result["points"]
    assert [(p["model"], p["n"], p["mode"]) for p in points] == [
        (m, n, mode) for mode in ("inference", "train") for n in (16, 32) for m in labels
    ]  # models interleaved at each n
    for p in points:
        assert KEYS <= set(p) and p["status"] == "ok" and p["batch"] == 4, p
        assert p["latency_ms"] == p["runs_ms"][0] and p["peak_mb"] > 0
    at = {(p["model"], p["n"], p["mode"]): p for p in points}
    s = BenchConfig.from_argv(["--models", *models, "--k", "4", *TINY])
    for label in labels:  # FLOPs counted on meta equal the formulas, for each point's own N
        for n in (16, 32):
            config = model_config(parse_label(label, [4])[0], s, n)
            assert at[label, n, "inference"]["flops"] == build_model(config).flops(4, n)
        assert at[label, 16, "train"]["flops"] > 2 * at[label, 16, "inference"]["flops"]
    # naive attention holds (b, h, n, n) float scores: 4 * 2 * 32 * 32 * 4 bytes at least
    assert at["sasrec-naive", 32, "inference"]["peak_mb"] * 2**20 >= 4 * 2 * 32 * 32 * 4
    printed = capsys.readouterr().out
    assert "log-log slope" in printed and "elastic-causal-k4" in printed and "[16/16]" in printed


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--models", "elastic", "--k", "0"], "--k=0"),
        (["--models", "elastic-k0"], "elastic-k0"),
        (["--models", "elastic", "--k", "2048"], "--k=2048"),
        (["--batch", "0"], "--batch=0"),
        (["--batch", "100000"], "--batch=100000"),
        (["--lengths", "0", "16"], "--lengths=0"),
        (["--lengths", "16", "1000000000"], "--lengths=1000000000"),
        (["--models", "sasrec-sdpa", "--modes", "stream"], "does not stream"),
        (["--models", "popularity"], "not a neural sequence encoder"),
        (["--models", "sasrec-k4"], "back-end 'k4'"),
        (["--mem-limit", "0"], "--mem-limit=0"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(args, named, capsys):
    assert cli_main(["bench", "--device", "cpu", "--models", "elastic", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err


def test_each_point_is_built_for_its_own_n():
    """A huge N in the sweep must not size the models of the short points: with max_len = 2**20
    the position table alone (2**20 x 64 floats, 256 MiB) exceeds the 205 MiB cap."""
    argv = ["--models", "sasrec-sdpa", "--modes", "inference", *TINY, "--dim", "64"]
    s = BenchConfig.from_argv([*argv, "--lengths", "16", "1048576", "--mem-limit", "0.2"])
    points = sweep.run_bench(s, log=lambda line: None)["points"]
    assert [(p["n"], p["status"]) for p in points] == [(16, "ok"), (1048576, "oom")]
    assert points[0]["params"] < 60_000  # (51 + 16) x 64 embeddings and one block of d = 64
    assert points[1]["flops"] > points[0]["flops"]  # counted on meta all the same


def test_an_existing_address_space_limit_is_kept_not_recorded_as_oom(tmp_path):
    """Under `ulimit -v` the cap (size + --mem-limit) would exceed the hard limit, which an
    unprivileged process cannot raise: the bench caps at the existing limit instead."""
    hard = 4 * 2**30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))

    out = tmp_path / "b.json"
    argv = ["bench", "--models", "sasrec-sdpa", "--modes", "inference", *TINY,
            "--lengths", "16", "--mem-limit", "64", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "elastic_edu", *argv], cwd=ROOT, env=env,
                         preexec_fn=limit, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert [p["status"] for p in json.loads(out.read_text())["points"]] == ["ok"]


def test_timeout_and_oom_are_recorded_and_larger_n_skipped():
    argv = ["--models", "sasrec-naive", "--modes", "inference", *TINY, "--lengths", "16", "512"]
    s = BenchConfig.from_argv([*argv, "--dim", "64", "--batch", "64", "--mem-limit", "0.2"])
    result = sweep.run_bench(s, log=lambda line: None)
    # (64, 2, 512, 512) float scores are 128 MiB each: a few of them exceed the 205 MiB cap
    assert {p["n"]: p["status"] for p in result["points"]} == {16: "ok", 512: "oom"}
    s = replace(s, timeout=1e-6, mem_limit_mb=None, batch=2, repeats=2)  # one run is too long
    result = sweep.run_bench(s, log=lambda line: None)
    assert [p["status"] for p in result["points"]] == ["timeout", "timeout"]
    assert result["points"][1]["note"].startswith("skipped: timeout at n=16")


def _fake_point(spec):
    """Stands in for run_point in a forked worker: lda fails, its process dies at n=32."""
    if spec["variant"].label.startswith("lda") and spec["n"] == 16:
        raise RuntimeError("boom: a shape bug, not a memory problem")
    if spec["variant"].label.startswith("lda"):
        os._exit(3)
    return {"status": "ok", "latency_ms": 1.0, "runs_ms": [1.0], "peak_mb": 1.0, "params": 1}


def test_a_point_failing_for_another_reason_is_an_error_and_the_exit_status_is_1(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(sweep, "START_METHOD", "fork")  # the worker inherits the fake
    monkeypatch.setattr(sweep, "run_point", _fake_point)
    out = tmp_path / "b.json"
    argv = ["bench", "--models", "sasrec-sdpa", "lda-k4", "--modes", "inference", *TINY]
    assert cli_main([*argv, "--out", str(out)]) == 1
    status = {(p["model"], p["n"]): p["status"] for p in json.loads(out.read_text())["points"]}
    assert status == {("sasrec-sdpa", 16): "ok", ("lda-causal-k4", 16): "error",
                      ("sasrec-sdpa", 32): "ok", ("lda-causal-k4", 32): "error"}  # fmt: skip
    assert "boom: a shape bug" in capsys.readouterr().err
    # a worker that dies without a word and was not killed is an error too, not "oom"
    spec = {"config": replace(BenchConfig.from_argv(TINY), timeout=30, mem_limit_mb=None),
            "n": 32, "mode": "inference", "variant": parse_label("lda-k4", [4])[0],
            "device": "cpu"}  # fmt: skip
    result = sweep._run_isolated(multiprocessing.get_context("fork"), spec)
    assert result == {"status": "error", "note": "worker died (exit code 3)"}


def test_out_is_checked_before_anything_is_measured(monkeypatch, capsys):
    """Case 4: --out /proc/x.json failed only after measuring."""
    monkeypatch.setattr(sweep, "point_flops", lambda *a: pytest.fail("measured"))
    argv = ["bench", "--models", "elastic-k4", *TINY, "--lengths", "16", "--out", "/proc/x.json"]
    assert cli_main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "error: --out /proc/x.json cannot be written: its folder /proc takes no new file "
        "(No such file or directory)\n"
    )
    assert "bench on" not in captured.out


def test_the_timeout_bounds_the_flop_count_on_meta(monkeypatch):
    """Case 5: the FLOP count on meta ignored --timeout (minutes at N = 2**20)."""
    monkeypatch.setattr(sweep, "START_METHOD", "fork")
    monkeypatch.setattr(sweep, "run_point", _fake_point)  # no measuring: only the count matters
    s = BenchConfig.from_argv(["--models", "sasrec-sdpa", "--modes", "train", *TINY])
    s = replace(s, timeout=1e-9)
    points = sweep.run_bench(s, log=lambda line: None)["points"]
    assert [(p["flops"], p["flops_source"], p["status"]) for p in points] == [
        (None, "skipped", "ok"), (None, "skipped", "ok")]  # fmt: skip
    assert points[0]["flops_note"] == "counting on meta took longer than --timeout (1e-09 s)"


def test_a_bench_json_that_cannot_be_written_at_the_end_is_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "START_METHOD", "fork")
    monkeypatch.setattr(sweep, "run_point", _fake_point)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "b.json"
    write = sweep.write_json

    def full_disk(path, payload):
        if Path(path) == out:
            raise OSError(28, "No space left on device")
        return write(path, payload)

    monkeypatch.setattr(sweep, "write_json", full_disk)
    argv = ["bench", "--models", "sasrec-sdpa", "--modes", "inference", *TINY, "--out", str(out)]
    assert cli_main(argv) == 2
    (kept,) = tmp_path.glob("b-*.json")
    captured = capsys.readouterr()
    assert captured.out.count("warning: --out") == 1  # said once, at the first point
    assert captured.err == (f"error: --out {out} could not be written (No space left on device): "
                            f"kept in {kept} instead\n")  # fmt: skip
    assert len(json.loads(kept.read_text())["points"]) == 2
