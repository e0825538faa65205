"""Notebook set-up: quick mode, seeds and threads, and the renderer that adds a PNG."""

from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from elastic_edu import tutorial


@pytest.fixture
def restore_plotly():
    renderer, threads = pio.renderers.default, torch.get_num_threads()
    yield
    pio.renderers.default = renderer
    torch.set_num_threads(threads)


def test_png_switch_off_keeps_json_only(monkeypatch, restore_plotly):
    monkeypatch.setenv(tutorial.PNG_ENV, "0")
    monkeypatch.setenv(tutorial.QUICK_ENV, "1")
    setup = tutorial.setup_notebook(seed=3)
    assert setup.quick and setup.seed == 3 and setup.threads == 1
    assert setup.renderer == "plotly_mimetype"
    a = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(a, torch.rand(3))  # seeded


def test_png_forced_without_a_browser_says_how_to_fix(monkeypatch, restore_plotly):
    monkeypatch.setattr(tutorial, "find_browser", lambda: None)
    monkeypatch.delenv(tutorial.PNG_ENV, raising=False)
    with pytest.raises(RuntimeError, match="ELASTIC_EDU_FIGURE_PNG=0"):
        tutorial.static_figures(True)
    assert tutorial.static_figures(None) == "plotly_mimetype"  # auto: no browser, no PNG


@pytest.mark.skipif(tutorial.find_browser() is None, reason="no Chromium for kaleido here")
def test_figures_carry_a_png_beside_the_json(restore_plotly):
    assert tutorial.static_figures(True) == "plotly_mimetype+png"
    bundle = go.Figure(go.Scatter(x=[1, 2], y=[3, 1]))._repr_mimebundle_()
    assert "application/vnd.plotly.v1+json" in bundle
    assert bundle["image/png"]  # base64 PNG


def test_tie_statistics_counts_ties_in_time_order():
    # user 1: times 5, 5, 7 (last two not tied); user 2: times 3, 9, 9 in file order 9, 3, 9
    users = [1, 2, 1, 2, 1, 2]
    times = [5, 9, 5, 3, 7, 9]
    ties = tutorial.tie_statistics(users, times)
    assert ties["pairs"] == 4 and ties["tied"] == 2 and ties["users"] == 2
    assert ties["last_two_tied"].tolist() == [2]


def test_bench_models_keeps_the_named_points_and_refuses_missing_ones():
    bench = {"settings": {}, "points": [
        {"model": "a", "mode": "inference"}, {"model": "a", "mode": "train"},
        {"model": "b", "mode": "inference"},
    ]}  # fmt: skip
    kept = tutorial.bench_models(bench, ["a"], "inference")
    assert kept["points"] == [{"model": "a", "mode": "inference"}]
    with pytest.raises(ValueError, match="c"):
        tutorial.bench_models(bench, ["a", "c"])


def test_count_layer_flops_matches_the_formulas():
    from elastic_edu.nn import CausalSelfAttention, DispatcherAttention
    from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention
    from elastic_edu.nn.flops import (
        causal_dispatcher_flops,
        dispatcher_flops,
        self_attention_flops,
    )

    n, d, h, k = 96, 16, 2, 4
    assert tutorial.count_layer_flops(DispatcherAttention, n, d, h, k) == dispatcher_flops(
        1, n, k, d
    )
    assert tutorial.count_layer_flops(
        CausalDispatcherAttention, n, d, h, k
    ) == causal_dispatcher_flops(1, n, k, d, h)
    assert tutorial.count_layer_flops(CausalSelfAttention, n, d, h) == self_attention_flops(1, n, d)


def test_key_search_latency_times_both_searches_per_size():
    latency = tutorial.key_search_latency([4, 8], key_dim=8, k=2, c=2, users=3, repeats=1)
    assert set(latency) == {"product keys", "brute force"}
    assert all(len(ms) == 2 and all(t > 0 for t in ms) for ms in latency.values())


def test_trained_model_trains_once_then_reuses_the_checkpoint(monkeypatch, tmp_path, capsys):
    from elastic_edu.config import TrainConfig
    from elastic_edu.data import leave_one_out, load_sequences
    from tests.conftest import make_tiny_config

    monkeypatch.setattr(tutorial, "data_dir", lambda: tmp_path)
    data = load_sequences("synthetic", num_users=12, num_items=40, num_interests=2, seq_len=20,
                          min_len=8, seed=0)  # fmt: skip
    split = leave_one_out(data)
    config = make_tiny_config("elastic-causal", num_items=data.num_items)
    train = TrainConfig(epochs=1, batch_size=8, device="cpu")
    first = tutorial.trained_model(config, train, split, "tiny.pt")
    assert "trained 1 epochs" in capsys.readouterr().out and not first.training
    again = tutorial.trained_model(config, train, split, "tiny.pt")
    assert "loaded the model trained earlier" in capsys.readouterr().out
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_accuracy_commands_follow_the_results_readme_template():
    from elastic_edu.tutorial import accuracy_commands, load_reported

    name, reported = load_reported("accuracy-ml-100k-cpu-amd-epyc.json")
    lines = accuracy_commands(reported, name)
    sasrec = "--models sasrec --seeds 0 1 2 --patience 20 --quiet --out T_sasrec.json"
    assert any(x.endswith(sasrec) for x in lines)
    assert all("--patience 20" in x for x in lines[:-1])
    assert lines[-1].startswith("python scripts/merge_accuracy.py")
