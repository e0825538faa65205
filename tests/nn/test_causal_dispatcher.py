"""Causal dispatcher attention (the layer): the loop reference, causality, streaming, linear
cost. The chunkwise kernel itself is tested in tests/nn/test_chunkwise.py."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention, CausalDispatcherBlock
from elastic_edu.nn.reference import causal_dispatcher_reference, prefix_softmax_average


def layer(dim=8, heads=2, seed=0, rate_spread=0.5) -> CausalDispatcherAttention:
    torch.manual_seed(seed)
    attn = CausalDispatcherAttention(dim, heads).double().eval()
    torch.nn.init.normal_(attn.to_rate.weight, std=rate_spread)  # experts with other rates
    return attn


def inputs(b=3, n=7, e=3, dim=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, dim, generator=g, dtype=torch.float64)
    experts = torch.randn(b, e, dim, generator=g, dtype=torch.float64)
    pad = torch.zeros(b, n, dtype=torch.bool)
    if b >= 3:
        pad[1, :2] = True
        pad[2, : n - 1] = True  # a history of one item
    return x, experts, pad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_float64_loop_reference(seed):
    attn = layer(seed=seed)
    x, experts, pad = inputs(seed=seed + 10)
    out = attn(x, experts, pad, return_weights=True)
    ref, dispatch = causal_dispatcher_reference(attn, x, experts, pad)
    torch.testing.assert_close(out.x[~pad], ref[~pad], rtol=1e-10, atol=1e-10)
    real = ~pad[:, None, :, None].expand_as(dispatch)
    torch.testing.assert_close(out.dispatch[real], dispatch[real], rtol=1e-10, atol=1e-10)


def test_float32_path_matches_the_reference():
    attn = layer()
    x, experts, pad = inputs()
    out = attn.float()(x.float(), experts.float(), pad).x
    ref, _ = causal_dispatcher_reference(attn, x, experts, pad)
    torch.testing.assert_close(out[~pad].double(), ref[~pad], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("t", [0, 3, 5])
def test_changing_the_future_leaves_the_past(t):
    attn = layer()
    x, experts, pad = inputs(n=8)
    changed = x.clone()
    changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :]) * 5
    a, b = attn(x, experts, pad).x, attn(changed, experts, pad).x
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert (a[:, t + 1 :] - b[:, t + 1 :]).abs().max() > 1e-3  # the future does reach later t


def test_padding_is_never_read():
    attn = layer()
    x, experts, pad = inputs()
    noisy = x.clone()
    noisy[pad] = torch.randn_like(noisy[pad]) * 100
    torch.testing.assert_close(attn(x, experts, pad).x[~pad], attn(noisy, experts, pad).x[~pad])


def test_event_by_event_equals_the_whole_window():
    torch.manual_seed(0)
    block = CausalDispatcherBlock(8, 2).double().eval()
    torch.nn.init.normal_(block.attn.to_rate.weight, std=0.5)
    x, experts, _ = inputs(b=2, n=9)
    whole = block(x, experts, torch.zeros(2, 9, dtype=torch.bool)).x
    state = block.start(experts)
    for t in range(9):
        out, state = block.step(x[:, t], state, torch.full((2,), t + 1))
        torch.testing.assert_close(out, whole[:, t], rtol=1e-10, atol=1e-10)


def test_the_state_has_a_fixed_size():
    block = CausalDispatcherBlock(8, 2).eval()
    x, experts, _ = inputs(b=2, n=40)
    state = block.start(experts.float())
    sizes = set()
    with torch.no_grad():
        for t in range(40):
            _, state = block.step(x[:, t].float(), state, torch.full((2,), t + 1))
            sizes.add(state.num.numel() + state.den.numel() + state.top.numel())
    assert sizes == {2 * 2 * 3 * (4 + 2)}  # b h e (d_h + 2)


def flops(n: int, e: int = 8, dim: int = 32) -> int:
    attn = CausalDispatcherAttention(dim, 2).eval()
    x = torch.randn(2, n, dim)
    experts = torch.randn(2, e, dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        attn(x, experts, torch.zeros(2, n, dtype=torch.bool))
    return counter.get_total_flops()


def test_flops_double_with_the_history():
    counts = [flops(n) for n in (256, 512, 1024, 2048)]
    ratios = [b / a for a, b in zip(counts, counts[1:])]
    assert all(1.9 <= r <= 2.1 for r in ratios), ratios


def test_flops_grow_with_experts_not_with_their_square():
    ratio = flops(512, e=16) / flops(512, e=8)
    assert 1.0 < ratio < 2.0  # projections of the history do not depend on k


def test_prefix_average_equals_softmax_of_each_prefix():
    """The readable reference the tests and notebook 02 use: one softmax per prefix."""
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 2, 3, 5, generator=g, dtype=torch.float64)
    values = torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64)
    own_s = torch.randn(2, 2, 3, generator=g, dtype=torch.float64)
    own_v = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64)
    out = prefix_softmax_average(scores, values, own_s, own_v)
    for t in range(5):
        s = torch.cat([own_s[..., None], scores[..., : t + 1]], dim=-1).softmax(-1)
        v = torch.cat([own_v[:, :, :, None], values[:, :, None, : t + 1].expand(-1, -1, 3, -1, -1)],
                      dim=3)  # fmt: skip
        expected = (s[..., None] * v).sum(dim=3)
        torch.testing.assert_close(out[:, :, t], expected)


def test_windows_longer_than_a_chunk_match_the_loop_reference():
    from elastic_edu.nn.chunkwise import CHUNK

    attn = layer(rate_spread=2.0)
    x, experts, pad = inputs(b=2, n=2 * CHUNK + 9, e=2)
    pad[1, :5] = True
    ref, _ = causal_dispatcher_reference(attn, x, experts, pad)
    torch.testing.assert_close(attn(x, experts, pad).x[~pad], ref[~pad], rtol=1e-10, atol=1e-10)


def test_inference_in_slices_equals_the_whole_window(monkeypatch):
    """Without autograd a block runs a long window in slices that carry their state."""
    import elastic_edu.nn.causal_dispatcher as module

    monkeypatch.setattr(module, "SLICE", 40)
    torch.manual_seed(0)
    block = CausalDispatcherBlock(8, 2).double().eval()
    torch.nn.init.normal_(block.attn.to_rate.weight, std=1.0)
    x, experts, pad = inputs(b=3, n=131, e=4)
    pad[0, :90] = True  # a history that starts in the third slice
    with torch.no_grad():
        sliced = block(x, experts, pad)
        whole = block(x, experts, pad, return_weights=True)  # weights: one pass, no slices
    torch.testing.assert_close(sliced.x[~pad], whole.x[~pad], rtol=1e-12, atol=1e-12)
    assert torch.equal(sliced.carry.tau, whole.carry.tau)


def test_a_carried_slice_continues_the_window():
    attn = layer(rate_spread=1.0)
    x, experts, pad = inputs(b=3, n=30, e=4)
    whole = attn(x, experts, pad).x
    first = attn(x[:, :11], experts, pad[:, :11])
    rest = attn(x[:, 11:], experts, pad[:, 11:], carry=first.carry).x
    torch.testing.assert_close(torch.cat([first.x, rest], 1)[~pad], whole[~pad], rtol=1e-12,
                               atol=1e-12)  # fmt: skip
