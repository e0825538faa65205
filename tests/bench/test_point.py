"""Bench labels from the model registry, each point's own model, and the stream workload."""

from __future__ import annotations

import pytest
import torch

from elastic_edu.bench import BenchConfig
from elastic_edu.bench import point as bench_point
from elastic_edu.bench.config import (
    STREAM_EVENTS,
    Variant,
    expand_models,
    model_config,
    parse_label,
)

TINY = ["--dim", "16", "--heads", "2", "--layers", "1", "--num-items", "50", "--repeats", "2",
        "--warmup", "1", "--threads", "1", "--device", "cpu", "--batch", "2"]  # fmt: skip


def labels(names, ks=(16, 32), compiles=("off",)):
    return [v.label for v in expand_models(list(names), list(ks), compiles)]


def test_labels_come_from_the_registry():
    assert labels(["sasrec-naive", "sasrec", "elastic", "lda-k8"]) == [  # aliases resolve
        "sasrec-naive", "sasrec-sdpa", "elastic-causal-k16", "elastic-causal-k32",
        "lda-causal-k8"]  # fmt: skip
    assert labels(["elastic-causal-k16", "lda-causal", "gru4rec"], ks=[4]) == [
        "elastic-causal-k16", "lda-causal-k4", "gru4rec"]  # fmt: skip
    assert parse_label("elastic-causal-k16", [])[0] == Variant(
        "elastic-causal-k16", "elastic-causal", num_experts=16
    )  # not elastic with a suffix "causal-k16"
    assert parse_label("sasrec-naive", [])[0].attention == "naive"
    assert labels(["elastic", "elastic-causal-k16"], ks=[16]) == ["elastic-causal-k16"]  # once


def test_compile_modes_label_each_variant():
    assert labels(["sasrec-sdpa", "elastic-bidir-k8"], compiles=("off", "default")) == [
        "sasrec-sdpa", "sasrec-sdpa+compile", "elastic-bidir-k8",
        "elastic-bidir-k8+compile"]  # fmt: skip
    v = expand_models(["elastic-bidir-k8+cudagraphs"], [], ("off",))
    assert [(x.label, x.compile) for x in v] == [("elastic-bidir-k8+cudagraphs", "reduce-overhead")]


@pytest.mark.parametrize(
    ("name", "message"),
    [("transformer", "unknown 'transformer'"), ("popularity", "not a neural sequence encoder"),
     ("elastic-k0", "k=0 must lie in 1..1024"), ("elastic-k2000", "k=2000"),
     ("elastic-x", "expected elastic-causal-k<K>"), ("sasrec-flash", "back-end 'flash'"),
     ("gru4rec-k4", "takes no suffix"), ("elastic-k8+jit", "unknown suffix +jit")],
)  # fmt: skip
def test_bad_labels_are_refused(name, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        expand_models([name], [16])


def test_each_point_builds_its_model_for_its_own_n():
    s = BenchConfig.from_argv(["--lengths", "16", "4096", *TINY])
    v = parse_label("elastic-causal-k4", [])[0]
    assert [model_config(v, s, n).max_len for n in (16, 4096)] == [16, 4096]
    assert model_config(v, s, 16).memory.candidates == 4


def test_stream_point_times_events_on_a_streamed_state_and_the_reencoding():
    s = BenchConfig.from_argv(
        ["--models", "lda-causal-k4", "--modes", "stream", "--lengths", "40", *TINY]
    )
    v = parse_label("elastic-causal-k4", [])[0]
    spec = {"config": s, "variant": v, "n": 40, "mode": "stream", "device": "cpu", "flops": 1}
    point = bench_point.run_point(spec)
    assert point["status"] == "ok" and point["events_per_run"] == STREAM_EVENTS
    assert len(point["runs_ms"]) == len(point["fresh_runs_ms"]) == len(point["reencode_runs_ms"])
    assert len(point["runs_ms"]) == 2 and point["fresh_ms"] > 0
    per_run = sorted(point["runs_ms"])[0] / STREAM_EVENTS
    assert point["latency_ms"] >= per_run and point["reencode_ms"] > 0 and point["peak_mb"] > 0
    # per event, one step's FLOPs; a step reads the state, not the history, so they do not grow
    per_event = [bench_point.point_flops(v, s, n, "stream") for n in (16, 4096)]
    with torch.device("meta"):
        encode = bench_point.point_flops(v, s, 16, "inference")
    assert per_event[0] == per_event[1] and 0 < per_event[0] < encode


def test_a_point_out_of_time_is_a_timeout():
    s = BenchConfig.from_argv(["--lengths", "64", *TINY, "--timeout", "1e-6"])
    spec = {"config": s, "variant": parse_label("lda-k4", [])[0], "n": 64,
            "mode": "inference", "device": "cpu", "flops": 1}  # fmt: skip
    point = bench_point.run_point(spec)
    assert point["status"] == "timeout" and point["note"].startswith("projected")


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_bfloat16_autocast_points_measure_their_memory(mode):
    """The memory run (a dispatch mode on CPU) under bf16 autocast, through the retrieval's
    einsum: under inference_mode it would see float and bfloat16 inputs and fail."""
    s = BenchConfig.from_argv(["--lengths", "16", *TINY, "--dtype", "bfloat16"])
    spec = {"config": s, "variant": parse_label("elastic-k4", [])[0], "n": 16, "mode": mode,
            "device": "cpu", "flops": 1}  # fmt: skip
    point = bench_point.run_point(spec)
    assert point["status"] == "ok" and point["peak_mb"] > 0


def test_a_flop_count_on_the_device_is_bounded_by_the_timeout_too():
    a = torch.randn(4, 8)
    assert bench_point.device_flops(lambda: a @ a.T, 60) == {
        "flops": 2 * 4 * 8 * 4, "flops_source": "device"}  # fmt: skip
    assert bench_point.device_flops(lambda: a @ a.T, 1e-9) == {
        "flops": None, "flops_source": "skipped",
        "flops_note": "counting took longer than --timeout (1e-09 s)"}  # fmt: skip
