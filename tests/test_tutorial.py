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
