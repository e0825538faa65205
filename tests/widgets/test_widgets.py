"""Widgets driven from code: the figures show what the model computes for each user, k, layer
and head; k at inference never changes the model; the complexity explorer adds measured points."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from elastic_edu import ModelConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.histories import PAD
from elastic_edu.models import build_model, recommend
from elastic_edu.nn.reference import full_keys
from elastic_edu.widgets import (
    ComplexityExplorer,
    InterestInspector,
    encode_with_experts,
    inspect_history,
    measure_point,
)
from elastic_edu.widgets.interests import window_items
from elastic_edu.widgets.views import WIDGET_VIEW

TRAINED_K = 4


@pytest.fixture(scope="module")
def data():
    return load_sequences("synthetic", num_users=24, num_items=60, num_interests=4, seq_len=30,
                          min_len=8, seed=1)  # fmt: skip


@pytest.fixture(scope="module", params=["elastic-bidir", "elastic-causal"])
def model(request, data):
    """Both ELASTIC forms: the paper's non-causal reading and the causal one."""
    from tests.conftest import make_tiny_config

    torch.manual_seed(0)
    config = make_tiny_config(
        request.param, num_items=data.num_items, max_len=20, num_experts=TRAINED_K,
        subkeys=6, candidates=4, context=20,
    )  # fmt: skip
    return build_model(config).eval()


@pytest.fixture
def inspector(model, data):
    return InterestInspector(model, data)


def with_k(model, k: int):
    """An independent reference: a copy of `model` built to retrieve k experts."""
    other = copy.deepcopy(model)
    other.memory.num_experts = k
    other.memory.candidates = max(other.memory.candidates, k)
    return other


def encoded(model, history) -> torch.Tensor:
    return model.prepare([history])


def retrieval_query(model, items: torch.Tensor) -> torch.Tensor:
    """The memory's query for items (b, n), the way each ELASTIC form builds it."""
    if model.causal:  # the older items before the window
        _, context = model.split(items)
        if context.shape[1] == 0:
            context = torch.zeros(items.shape[0], 1, dtype=torch.long)
        pad = context == PAD
        return model.memory.query(model.item_emb(context) * (~pad)[..., None], pad)
    return model.memory.query(*model.embed(items))


def expected(model, history, k: int, layer: int, head: int | None):
    """What the widgets must show, from the model's own `encode` (with k experts)."""
    reference = model if k == model.memory.num_experts else with_k(model, k)
    items = encoded(model, history)
    with torch.no_grad():
        out = reference.encode(items, return_weights=True)
    keep = window_items(model, items[0, -out.hidden.shape[1] :])
    agg = out.aggregate[layer][0][..., keep]  # (h, e, n)
    dis = out.dispatch[layer][0][:, keep]  # (h, n, e)
    agg = agg.mean(0) if head is None else agg[head]
    dis = dis.mean(0) if head is None else dis[head]
    recs = [i for i, _ in recommend(reference, history, 10)]
    return {"reads": agg.numpy(), "assign": dis.argmax(-1).numpy(), "slots": out.slots[0].numpy(),
            "scores": out.slot_scores[0].numpy(), "recs": recs}  # fmt: skip


def shown(ins: InterestInspector) -> dict:
    strip = ins.strip_fig.data[0]
    return {
        "reads": np.asarray(ins.heatmap_fig.data[0].z, dtype=float),
        "assign": np.asarray(strip.z, dtype=float)[0],
        "slots": [int(label.split()[-1]) for label in ins.slots_fig.data[0].y],
        "scores": np.asarray(ins.slots_fig.data[0].x, dtype=float),
        "recs": [int(i) for i in ins.inspection.top],
        "heat_rows": list(ins.heatmap_fig.data[0].y),
    }


def assert_shows(ins: InterestInspector, model, data, user, k, layer, head):
    history = data.sequences[user][:-1]
    want, got = expected(model, history, k, layer, head), shown(ins)
    np.testing.assert_allclose(got["reads"], want["reads"], atol=1e-6)
    np.testing.assert_array_equal(got["assign"], want["assign"])
    np.testing.assert_array_equal(got["slots"], want["slots"])
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-6)
    assert got["recs"] == want["recs"]
    assert got["heat_rows"] == list(ins.slots_fig.data[0].y)
    window = model.config.max_len - (0 if model.causal else 1)  # a [MASK] reads out
    assert got["reads"].shape == (k, min(len(history), window))


def test_encode_with_trained_k_is_the_models_encode(model):
    items = torch.randint(1, model.config.num_items + 1, (3, 12), generator=torch.Generator())
    items[1, :5] = 0
    with torch.no_grad():
        a, b = model.encode(items, return_weights=True), encode_with_experts(model, items)
    torch.testing.assert_close(a.hidden, b.hidden, rtol=0, atol=0)
    assert torch.equal(a.slots, b.slots)
    for x, y in zip(a.aggregate + a.dispatch, b.aggregate + b.dispatch):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("k", [1, 3, 7, 20])
def test_other_k_matches_a_model_built_for_it_and_leaves_the_model_alone(model, k):
    before = {n: p.clone() for n, p in model.state_dict().items()}
    config = copy.deepcopy(model.config)
    items = torch.randint(1, model.config.num_items + 1, (2, 15), generator=torch.Generator())
    with torch.no_grad():
        got = encode_with_experts(model, items, k)
        want = with_k(model, k).encode(items, return_weights=True)
    torch.testing.assert_close(got.hidden, want.hidden)
    assert got.slots.shape == (2, k) and got.aggregate[0].shape[:3] == (2, 2, k)
    assert torch.equal(got.slots, want.slots)
    # k > candidates: the search widens c, so the slots are still the exact top k of all M
    with torch.no_grad():
        keys = full_keys(model.memory.keys1, model.memory.keys2)
        brute = retrieval_query(model, items) @ keys.T
    torch.testing.assert_close(got.slot_scores, brute.topk(k).values)
    assert model.memory.num_experts == TRAINED_K and model.config == config
    assert all(torch.equal(p, before[n]) for n, p in model.state_dict().items())


def test_encode_with_experts_refuses_a_model_without_memory(data):
    sasrec = build_model(ModelConfig(model="sasrec", num_items=data.num_items, max_len=8, dim=8))
    with pytest.raises(TypeError, match="no interest memory"):
        encode_with_experts(sasrec, torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="no interest memory"):
        InterestInspector(sasrec, data)


def test_initial_view_is_what_the_model_computes(inspector, model, data):
    assert_shows(inspector, model, data, inspector.user, TRAINED_K, 0, 0)
    assert "elastic-inspector" in inspector.widget._dom_classes


def test_changing_the_user_updates_every_view(inspector, model, data):
    before = shown(inspector)
    users = list(inspector.user_select.options)
    user = users[3][1]
    inspector.set_user(user)
    assert inspector.user == user
    assert_shows(inspector, model, data, user, TRAINED_K, 0, 0)
    assert not np.array_equal(before["reads"], shown(inspector)["reads"])
    uid = str(data.user_ids[user])
    assert f"user {uid}," in inspector.heatmap_fig.layout.title.text
    assert f"user {uid}:" in inspector.status.value and "updated in" in inspector.status.value
    assert inspector.last_update_ms > 0
    # the browser changes the dropdown's value: the same update runs
    inspector.user_select.value = users[5][1]
    assert_shows(inspector, model, data, users[5][1], TRAINED_K, 0, 0)


@pytest.mark.parametrize("k", [1, 2, 9])
def test_changing_k_retrieves_k_experts(inspector, model, data, k):
    inspector.set_k(k)
    assert inspector.k == k and len(inspector.slots_fig.data[0].x) == k
    assert_shows(inspector, model, data, inspector.user, k, 0, 0)
    assert model.memory.num_experts == TRAINED_K and model.config.num_experts == TRAINED_K


@pytest.mark.parametrize(("layer", "head"), [(1, 0), (0, 1), (1, None)])
def test_layer_and_head_select_the_weights(inspector, model, data, layer, head):
    inspector.set_k(5)
    inspector.set_layer(layer)
    inspector.set_head(head)
    assert_shows(inspector, model, data, inspector.user, 5, layer, head)
    where = f"layer {layer}, " + ("mean of heads" if head is None else f"head {head}")
    assert where in inspector.strip_fig.layout.title.text


def test_planted_interests_are_shown_for_synthetic_data(inspector, data):
    planted = np.asarray(inspector.strip_fig.data[1].z)[0]
    n = len(inspector.inspection.items)
    np.testing.assert_array_equal(planted, data.labels[inspector.user][:-1][-n:])
    assert inspector.history_html.value.count("interest ") >= n


def test_titles_and_genres_are_shown_for_movielens_like_data(model, data):
    movies = copy.deepcopy(data)
    movies.labels = None
    movies.item_titles = [""] + [f"Film <{i}>" for i in range(1, movies.num_items + 1)]
    movies.item_genres = [[]] + [["Drama", "Comedy"]] * movies.num_items
    ins = InterestInspector(model, movies)
    assert [t.type for t in ins.strip_fig.data].count("heatmap") == 1  # no planted row
    first = ins.inspection.items[0]
    assert f"Film &lt;{first}&gt;" in ins.history_html.value
    assert "Drama, Comedy" in ins.history_html.value
    # the slot figure names each slot's nearest items (dot product of value row and items)
    values = model.memory.values.weight[torch.as_tensor(ins.inspection.slots)]
    with torch.no_grad():
        sim = values @ model.item_emb.weight[1:].T
    best = int(sim[0].argmax()) + 1
    assert ins.slots_fig.data[0].text[0].startswith(f"Film <{best}>")


def test_held_out_item_is_marked_when_recommended(model, data):
    split = leave_one_out(data)
    j = 2
    probe = inspect_history(model, split.test.histories[j], top=10)
    split.test.targets[j] = probe.top[3]  # make the held-out item the 4th recommendation
    ins = InterestInspector(model, data, split, user=int(split.test.users[j]))
    assert ins.inspection.target_rank == 4
    assert ins.recs_html.value.count("(held out!)") == 1
    assert "rank 4 of" in ins.recs_html.value


def test_bad_choices_raise(inspector, data):
    short = [u for u, s in enumerate(data.sequences) if len(s) < 3]
    for bad in [-1, data.num_users, *short]:
        with pytest.raises(ValueError, match="held-out"):
            inspector.set_user(bad)
    for bad in [0, inspector.k_slider.max + 1]:
        with pytest.raises(ValueError, match="k="):
            inspector.set_k(bad)
    with pytest.raises(ValueError, match="layers"):
        inspector.set_layer(2)
    with pytest.raises(ValueError, match="heads"):
        inspector.set_head(2)


def test_measure_point_sees_quadratic_attention_memory():
    explorer = ComplexityExplorer(lengths=(32, 128), repeats=1)
    sasrec, elastic = explorer.models["SASRec"], explorer.models["ELASTIC"]
    small, large = measure_point(sasrec, 32, repeats=1), measure_point(sasrec, 128, repeats=1)
    assert large["peak_mb"] / small["peak_mb"] > 6  # N x N maps: ~16x for 4x the length
    lin = measure_point(elastic, 128, repeats=1)["peak_mb"]
    assert lin / measure_point(elastic, 32, repeats=1)["peak_mb"] < 5
    assert small["latency_ms"] > 0 and small["runs"] == 1


def test_complexity_explorer_adds_points_in_place():
    explorer = ComplexityExplorer(lengths=(16, 32, 64), repeats=1)
    fig = explorer.fig
    assert all(len(t.x) == 0 for t in fig.data)
    explorer.measure(64)
    explorer.slider.value = 32  # a slider move measures too
    assert explorer.fig is fig
    for trace in fig.data:
        pts = explorer.points[trace.meta["model"]]
        assert list(trace.x) == [32, 64]
        assert list(trace.y) == [p[trace.meta["metric"]] for p in pts]
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert all("(slope: latency" in name for name in legend), legend
    explorer.measure(64)  # measuring again replaces the point
    assert [list(t.x) for t in fig.data] == [[32, 64]] * 4
    assert "N=64" in explorer.status.value and explorer.last_update_ms > 0
    assert explorer.slider.value == 64  # the slider shows what the readout says
    with pytest.raises(ValueError, match="max_len"):
        explorer.measure(65)
    explorer.measure(48)  # between the slider's stops: the slider gains the stop and moves there
    assert explorer.slider.value == 48 and 48 in explorer.slider.options
    assert [list(t.x) for t in fig.data] == [[32, 48, 64]] * 4  # measured once, not twice


def test_widget_outputs_carry_a_text_summary(inspector, data):
    """A saved notebook stores a widget's view and this text: what a reader without a kernel
    sees (scripts/execute_notebooks.py keeps both)."""
    bundle = inspector._repr_mimebundle_()
    assert set(bundle) == {WIDGET_VIEW, "text/plain"}
    assert bundle[WIDGET_VIEW]["model_id"] == inspector.widget.model_id
    text = bundle["text/plain"]
    assert f"user {data.user_ids[inspector.user]}" in text
    assert str(inspector.inspection.slots.tolist()) in text
    explorer = ComplexityExplorer(lengths=(16, 32), repeats=1)
    assert "no point yet" in explorer._repr_mimebundle_()["text/plain"]
    explorer.measure(16)
    text = explorer._repr_mimebundle_()["text/plain"]
    assert "SASRec: N=16" in text and "ms" in text and "MB" in text
