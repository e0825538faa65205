"""Every figure of elastic_edu.viz builds from small arrays and holds the expected traces."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from elastic_edu import viz


def _bench() -> dict:
    points = []
    for n in (128, 256, 512, 1024):
        for model, lat in (("sasrec-naive", n**2 / 1e4), ("elastic-causal-k32", n / 10)):
            status = "oom" if model == "sasrec-naive" and n == 1024 else "ok"
            points.append({
                "model": model, "n": n, "batch": 4, "mode": "inference", "flops": 10 * lat,
                "latency_ms": lat if status == "ok" else None,
                "peak_mb": lat / 2 if status == "ok" else None, "status": status,
            })  # fmt: skip
    return {"device_name": "test CPU", "settings": {"batch": 4, "dtype": "float32"},
            "points": points}  # fmt: skip


def _names(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data]


NAIVE, ELASTIC = "SASRec, naive attention", "ELASTIC (k = 32)"  # elastic-causal-k32


@pytest.mark.parametrize("metric", ["latency_ms", "peak_mb"])
def test_complexity_figure(metric):
    fig = viz.complexity_figure(_bench(), metric=metric, slope_from=None)
    names = _names(fig)
    # human names; each measured line carries its log-log slope (n**2 and n in _bench)
    for expected in (f"{NAIVE} (slope 2.00)", f"{NAIVE} FLOPs", f"{NAIVE} failed",
                     f"{ELASTIC} (slope 1.00)", f"{ELASTIC} FLOPs", viz.FLOP_KEY,
                     viz.FAILED_KEY):  # fmt: skip
        assert expected in names, names
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "(ms)" in fig.layout.yaxis.title.text or "(MB)" in fig.layout.yaxis.title.text
    assert list(fig.layout.xaxis.tickvals) == [128, 256, 512, 1024]  # the measured N
    flop = fig.data[names.index(f"{ELASTIC} FLOPs")]
    measured = fig.data[names.index(f"{ELASTIC} (slope 1.00)")]
    assert measured.legendgroup == "elastic-causal-k32"  # the file's key stays reachable
    assert flop.y[0] == pytest.approx(measured.y[0])  # aligned at the smallest N
    assert flop.line.dash == "dash"
    failed = fig.data[names.index(f"{NAIVE} failed")]
    assert list(failed.x) == [1024] and list(failed.text) == ["oom"]
    last = fig.data[names.index(f"{NAIVE} (slope 2.00)")].y[-1]
    assert failed.y[0] == pytest.approx(last * 4)  # FLOP-projected: (1024 / 512)^2
    assert f"{ELASTIC} FLOPs" not in _names(viz.complexity_figure(_bench(), flops=False))
    # slopes over the long end only: N >= 256 leaves three points of each line
    assert "slope over N ≥ 256" in viz.complexity_figure(_bench(), slope_from=256).layout.title.text


def test_display_names_for_results_keys():
    assert viz.display_name("elastic-causal-k16") == "ELASTIC (k = 16)"
    assert viz.display_name("elastic-k16") == "ELASTIC-bidir (non-causal, k = 16)"  # 7dc3014
    assert viz.display_name("lda-causal-k32") == "LDA-only (k = 32)"
    assert viz.display_name("valid_NDCG@10") == "validation NDCG@10"
    assert viz.display_name("elastic-bidir:cloze") == "ELASTIC-bidir (non-causal, cloze)"
    assert viz.display_name("sasrec:all") == "SASRec, all positions"  # its own name wins
    assert viz.display_name("gru4rec:cut") == "GRU4Rec (random cuts)"
    assert viz.display_name("elastic:sideways") == "elastic:sideways"  # unknown objective
    assert viz.display_name("sasrec:cut") == "SASRec, random cuts"
    assert viz.display_name("something else") == "something else"


def test_log_ticks_spell_out_every_label():
    ticks = viz.log_ticks([0.3, 40.0])
    assert ticks["type"] == "log"
    assert ticks["ticktext"] == ["0.2", "0.5", "1", "2", "5", "10", "20", "50"]
    assert ticks["tickvals"][1] == pytest.approx(0.5)  # "0.5", never a bare "5"
    wide = viz.log_ticks([1e3, 1e10])  # many decades: decades only, with k / M / G
    assert len(wide["tickvals"]) <= 9 and "1G" in wide["ticktext"] and "1k" in wide["ticktext"]
    assert viz.loglog_slope([1, 2, 4, 8], [3, 12, 48, 192]) == pytest.approx(2.0)
    assert viz.loglog_slope([1, 2, 4, 8], [1, 2, 4, 8], x_from=4) == pytest.approx(1.0)
    assert viz.loglog_slope([1], [1]) is None


def test_loglog_figure_puts_slopes_in_the_legend():
    fig = viz.loglog_figure({"quadratic": ([1, 2, 4], [1, 4, 16]), "formula": ([1, 4], [2, 8])},
                            "t", "x", "y", dashed={"formula"})  # fmt: skip
    assert _names(fig) == ["quadratic (slope 2.00)", "formula (slope 1.00)"]
    assert fig.data[1].line.dash == "dash" and fig.layout.yaxis.type == "log"


def test_complexity_figure_rejects_unknown_metric():
    with pytest.raises(ValueError, match="metric"):
        viz.complexity_figure(_bench(), metric="seconds")


def test_data_figures():
    lengths = np.array([3, 5, 5, 8, 20, 100])
    fig = viz.length_histogram(lengths)
    assert isinstance(fig.data[0], go.Histogram) and "median 6" in fig.layout.title.text
    fig = viz.popularity_curve([0, 1, 10, 100, 5])
    assert list(fig.data[0].y) == [100, 10, 5, 1]  # sorted, zeros dropped for the log axis
    assert fig.layout.xaxis.type == "log"


def test_training_curves_and_bars():
    hist = {
        "sasrec": [{"epoch": 1, "loss": 5.0, "valid_NDCG@10": 0.1}, {"epoch": 2, "loss": 4.0}],
        "elastic": [{"epoch": 1, "loss": 5.5, "valid_NDCG@10": 0.12}],
    }
    fig = viz.training_curves(hist)
    assert _names(fig) == ["SASRec", "SASRec", "ELASTIC", "ELASTIC"]
    assert fig.layout.annotations[0].text == "validation NDCG@10"  # subplot titles, not keys
    assert list(fig.data[0].x) == [1] and list(fig.data[1].y) == [5.0, 4.0]
    assert len(viz.training_curves(hist, loss=None).data) == 2
    fig = viz.bar_table({"a": {"HR@10": 0.2, "NDCG@10": 0.1}, "b": {"HR@10": 0.3, "NDCG@10": 0.2}},
                        errors={"a": {"HR@10": 0.01, "NDCG@10": 0.02}})  # fmt: skip
    assert _names(fig) == ["a", "b"] and list(fig.data[0].error_y.array) == [0.01, 0.02]
    assert _names(viz.bar_table({"sasrec:all": {"HR@10": 0.1}})) == ["SASRec, all positions"]


def test_weight_heatmaps_take_tensors_and_arrays():
    w = torch.softmax(torch.randn(6, 6), dim=-1)
    fig = viz.attention_heatmap(w, "layer 1")
    assert np.asarray(fig.data[0].z).shape == (6, 6) and fig.layout.title.text == "layer 1"
    with pytest.raises(ValueError):
        viz.attention_heatmap(np.ones((2, 3)))
    fig = viz.expert_heatmap(np.random.rand(4, 10), item_labels=[f"item {i}" for i in range(10)])
    assert list(fig.data[0].y) == [f"expert {e}" for e in range(4)]
    assert fig.data[0].text[0][3] == "item 3"


def test_assignment_strip_with_planted_labels_and_a_colour_legend():
    assign = np.array([0, 0, 2, 2, 1])
    fig = viz.assignment_strip(assign, labels=["a", "b", "c"])
    assert _names(fig) == ["expert", "a", "b", "c"]  # the strip, then one legend key per colour
    assert list(fig.data[0].text[0]) == ["a", "a", "c", "c", "b"]
    keys = fig.data[1:]
    assert all(k.showlegend and k.marker.color == viz.PALETTE[i] for i, k in enumerate(keys))
    fig = viz.assignment_strip(torch.tensor(assign), planted=np.array([1, 1, 0, 0, 0]))
    assert _names(fig)[:2] == ["expert", "planted interest"]
    assert list(fig.data[1].z[0]) == [1, 1, 0, 0, 0]
    planted_keys = [t for t in fig.data if t.legendgroup == "planted interest"]
    assert [t.name for t in planted_keys] == ["planted interest 0", "planted interest 1"]


def test_slot_usage_title_reports_usage_and_entropy():
    fig = viz.slot_usage(np.array([0, 5, 5, 0]))
    assert list(fig.data[0].y) == [5, 5, 0, 0]
    title = fig.layout.title.text
    assert "50.0% of 4 slots" in title and f"entropy {math.log(2):.2f}" in title


def test_long_context_figure_groups_by_distance_and_marks_chance():
    def run(hr1, n):
        return {"HR@1": hr1, "chance_HR@1": 1 / 16, "max_len": n, "test": {"HR@10": 0.5}}

    studies = [
        {"distance": 300, "sasrec_step_s": {"256": 0.2}, "elastic": run(1.0, 512)}
        | {"sasrec": run(0.05, 256)},
        {"distance": 1500, "elastic": run(0.9, 2048), "elastic_no_curriculum": run(0.07, 2048)},
    ]
    fig = viz.long_context_figure(studies)
    assert _names(fig) == [  # files without elastic_model ran the non-causal form
        "ELASTIC-bidir (non-causal)",
        "SASRec",
        "ELASTIC-bidir (non-causal), no curriculum",
    ]
    assert list(fig.data[0].y) == [1.0, 0.9] and list(fig.data[1].y) == [0.05, None]
    assert list(fig.data[0].text) == ["N=512", "N=2048"]
    assert list(fig.data[0].x) == ["distance 300", "distance 1500"]
    assert fig.layout.shapes[0].y0 == 1 / 16  # the chance line
    assert list(viz.long_context_figure(studies, "HR@10").data[0].y) == [0.5, 0.5]
    with pytest.raises(ValueError, match="no long-context"):
        viz.long_context_figure([])
