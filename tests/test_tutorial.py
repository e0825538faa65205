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


def test_accuracy_commands_follow_the_results_readme_template():
    from elastic_edu.tutorial import accuracy_commands, load_reported

    name, reported = load_reported("accuracy-ml-100k-cpu-amd-epyc.json")
    lines = accuracy_commands(reported, name)
    sasrec = "--models sasrec --seeds 0 1 2 --patience 20 --quiet --out T_sasrec.json"
    assert any(x.endswith(sasrec) for x in lines)
    assert all("--patience 20" in x for x in lines[:-1])
    assert lines[-1].startswith("python scripts/merge_accuracy.py")
