"""Causal ELASTIC and LDA-only: whole-model causality, retrieval without the future, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.models import ELASTICCausal, LDACausal, build_model
from tests.conftest import make_tiny_config

CAUSAL = ["lda-causal", "elastic-causal"]


def model(name: str, dtype=torch.float64, seed=0, **changes):
    torch.manual_seed(seed)
    m = build_model(make_tiny_config(name, **changes)).to(dtype).eval()
    for block in m.blocks:  # experts with different recency rates, as after training
        torch.nn.init.normal_(block.attn.to_rate.weight, std=0.3)
    return m


def histories(b=3, n=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 41, (b, n), generator=g)
    items[1, :5] = 0
    items[2, : n - 2] = 0
    return items


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("t", [0, 6, 12])
def test_changing_any_later_item_moves_no_earlier_output(name, t):
    """Every layer and the whole model: outputs at positions <= t ignore items after t."""
    m = model(name)
    items = histories()
    changed = items.clone()
    changed[:, t + 1 :] = torch.randint(1, 41, changed[:, t + 1 :].shape)
    changed[items == 0] = 0
    a = m.encode(items, return_weights=True)
    b = m.encode(changed, return_weights=True)
    keep = ~a.pad[:, : t + 1]
    torch.testing.assert_close(a.hidden[:, : t + 1][keep], b.hidden[:, : t + 1][keep],
                               rtol=0, atol=1e-6)  # fmt: skip
    for da, db in zip(a.dispatch, b.dispatch):  # every layer's reading of the experts
        torch.testing.assert_close(da[:, :, : t + 1], db[:, :, : t + 1], rtol=0, atol=1e-6)
    if t < 12:
        assert (a.hidden[:, -1] - b.hidden[:, -1]).abs().max() > 1e-4


@pytest.mark.parametrize("name", CAUSAL)
def test_each_layer_is_causal(name):
    m = model(name)
    items = histories()
    x, pad = m.embed(items)
    experts = m.initial_experts(*m.older_states(items[:, :0])).experts
    changed_x = x.clone()
    changed_x[:, 9:] = torch.randn_like(changed_x[:, 9:])
    for block in m.blocks:
        a, b = block(x, experts, pad).x, block(changed_x, experts, pad).x
        torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=1e-6)
        x, changed_x = a, b


def test_elastic_causal_retrieval_reads_only_items_before_the_window():
    m = model("elastic-causal", max_len=8, context=8)
    g = torch.Generator().manual_seed(3)
    items = torch.randint(1, 41, (2, 16), generator=g)  # 8 older items, then the window
    a = m.encode(items)
    changed = items.clone()
    changed[:, 8:] = torch.randint(1, 41, (2, 8), generator=g)  # a new window
    b = m.encode(changed)
    torch.testing.assert_close(a.slots, b.slots)  # the window does not pick the experts
    older = items.clone()
    older[:, :8] = torch.randint(1, 41, (2, 8), generator=g)
    assert not torch.equal(m.encode(older).slots, a.slots)  # the older items do


def test_short_histories_share_the_default_experts():
    m = model("elastic-causal", max_len=8, context=8)
    a = m.encode(torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])).slots
    b = m.encode(torch.tensor([[9, 10, 11, 12, 13, 14, 15, 16]])).slots
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", CAUSAL)
def test_streaming_gives_the_scores_of_the_whole_history(name):
    m = model(name, dtype=torch.float32)
    rng = np.random.default_rng(0)
    for length in (1, 5, 16):
        history = rng.integers(1, 41, length)
        whole = m.score([history])
        state = m.start()
        for item in history:
            state = m.step(state, [item])
        torch.testing.assert_close(m.score_state(state), whole, rtol=1e-5, atol=1e-5)


def test_streaming_with_older_items_equals_encoding_with_context():
    m = model("elastic-causal", dtype=torch.float32, max_len=8, context=8)
    history = np.random.default_rng(1).integers(1, 41, 14)  # 6 older items, a window of 8
    state = m.start(context=[history[:6]])
    for item in history[6:]:
        state = m.step(state, [item])
    torch.testing.assert_close(m.score_state(state), m.score([history]), rtol=1e-5, atol=1e-5)


def test_streams_run_side_by_side():
    m = model("lda-causal", dtype=torch.float32)
    a, b = [3, 4, 5], [9, 8, 7]
    state = m.start(batch=2)
    for x, y in zip(a, b):
        state = m.step(state, [x, y])
    torch.testing.assert_close(m.score_state(state), m.score([a, b]), rtol=1e-5, atol=1e-5)


def test_step_refuses_padding_and_wrong_batch():
    m = model("lda-causal")
    state = m.start(batch=2)
    with pytest.raises(ValueError, match=r"step: items has item ids outside 1\.\.40: \[0\]"):
        m.step(state, [0, 3])
    with pytest.raises(ValueError, match=r"one item per stream \(2 streams\), got \[3\]"):
        m.step(state, [3])
    with pytest.raises(ValueError, match="no event yet"):
        m.score_state(state)


@pytest.mark.parametrize(
    "items, says",
    [
        ([41], r"step: items has item ids outside 1\.\.40: \[41\]"),  # num_items + 1
        ([-1], r"step: items has item ids outside 1\.\.40: \[-1\]"),
        (torch.tensor([41]), r"outside 1\.\.40: \[41\]"),
        ([3.7], r"step: items must hold integer item ids; not integers: items\[0\]=3\.7"),
        ([True], r"not integers: items\[0\]=True \(bool\)"),
        (torch.tensor([3.0]), r"not integers: items\[0\]=np\.float32\(3\.0\)"),
        (torch.tensor([True]), r"not integers: items\[0\]=np\.True_"),
    ],
)
def test_step_checks_item_ids_as_recommend_does(items, says):
    """Ids past the catalogue were a bare IndexError; 3.7 and True were items 3 and 1."""
    m = model("lda-causal")
    with pytest.raises(ValueError, match=says):
        m.step(m.start(), items)


def test_step_accepts_integer_ids_of_any_kind():
    m = model("elastic-causal")
    expected = m.score_state(m.step(m.start(), [7]))
    for item in (7, np.int64(7), torch.tensor(7), torch.tensor([7]), np.array([7], np.int32)):
        torch.testing.assert_close(m.score_state(m.step(m.start(), item)), expected)


def test_start_checks_the_context_ids():
    m = model("elastic-causal")
    with pytest.raises(ValueError, match=r"start: context\[1\] has item ids outside 1\.\.40"):
        m.start(context=[[3, 4], [99]])
    integers = r"start: context\[0\] must hold integer item ids; not integers: context\[0\]\[0\]"
    with pytest.raises(ValueError, match=integers + r"=2\.5"):
        m.start(context=[[2.5]])
    with pytest.raises(ValueError, match=r"start: context has item ids outside 1\.\.40: \[-3\]"):
        m.start(context=torch.tensor([[0, -3, 5]]))
    torch.testing.assert_close(m.start(context=[[]]).experts, m.start().experts)


@pytest.mark.parametrize("cls", [LDACausal, ELASTICCausal])
def test_trains_on_every_position(cls):
    m = model(cls.name, dtype=torch.float32)
    m.train()
    items = histories()
    targets = torch.roll(items, -1, dims=1)
    targets[:, -1] = 7
    targets[items == 0] = 0
    loss = m.loss(items, targets, "all")
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
