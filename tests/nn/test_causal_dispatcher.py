"""Causal dispatcher attention: the loop reference, causality, the running sums, linear cost."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu.nn.causal_dispatcher import (
    CausalDispatcherAttention,
    CausalDispatcherBlock,
    prefix_softmax_average,
)
from elastic_edu.nn.reference import causal_dispatcher_reference


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


def test_prefix_average_equals_softmax_of_each_prefix():
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


def test_prefix_average_survives_scores_far_apart():
    """Scores spread over 300 would underflow exp() in float32 without the float64 fallback."""
    scores = torch.tensor([[[[-300.0, -299.0, 0.0]]]])
    values = torch.tensor([[[[1.0], [3.0], [5.0]]]])
    out = prefix_softmax_average(
        scores, values, torch.tensor([[[-400.0]]]), torch.zeros(1, 1, 1, 1)
    )
    first = torch.tensor([-400.0, -300.0]).double().softmax(0)[1] * 1.0
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0, 0, 0, 0].double(), first, rtol=1e-5, atol=1e-6)


def test_prefix_average_refuses_what_even_float64_cannot_hold():
    scores = torch.tensor([[[[-3000.0, 0.0]]]])
    with pytest.raises(FloatingPointError, match="diverged"):
        prefix_softmax_average(scores, torch.ones(1, 1, 2, 1), torch.tensor([[[-4000.0]]]),
                               torch.zeros(1, 1, 1, 1))  # fmt: skip


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


def test_prefix_average_gradients_match_autograd_of_the_plain_lines():
    from elastic_edu.nn.causal_dispatcher import PrefixAverage

    g = torch.Generator().manual_seed(4)
    w = torch.rand(2, 2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    w_own = torch.rand(2, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    values = torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    own = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(PrefixAverage.apply, (w, w_own, values, own))

    def plain(w, w_own, values, own):
        num = w[..., None] * values[:, :, :, None]
        num = torch.cat([num[:, :, :1] + (w_own[..., None] * own)[:, :, None], num[:, :, 1:]], 2)
        return num.cumsum(dim=2) / (w.cumsum(dim=2) + w_own[:, :, None])[..., None]

    weights = torch.randn(2, 2, 5, 3, 4, generator=g, dtype=torch.float64)
    fast = torch.autograd.grad((PrefixAverage.apply(w, w_own, values, own) * weights).sum(),
                               (w, w_own, values, own))  # fmt: skip
    slow = torch.autograd.grad((plain(w, w_own, values, own) * weights).sum(),
                               (w, w_own, values, own))  # fmt: skip
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b)


def test_long_windows_with_steep_recency_stay_finite_and_exact():
    """Recency spreads a window's scores by rate * n: 2 * 300 = 600, far beyond float32's exp()
    range. The chunked sums keep every prefix exact, and so do their gradients."""
    n = 300
    scores = (2.0 * torch.arange(1, n + 1, dtype=torch.float32)).reshape(1, 1, 1, n)
    values = torch.randn(1, 1, n, 2, requires_grad=True)
    own_v = torch.zeros(1, 1, 1, 2)
    out = prefix_softmax_average(scores, values, torch.zeros(1, 1, 1), own_v)
    exact = []
    for t in range(n):
        w = torch.cat([torch.zeros(1), scores[0, 0, 0, : t + 1]]).double().softmax(0)
        v = torch.cat([own_v[0, 0], values[0, 0, : t + 1].detach()]).double()
        exact.append(w @ v)
    torch.testing.assert_close(out[0, 0, :, 0].double(), torch.stack(exact), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(values.grad).all()


def test_windows_longer_than_a_chunk_match_the_reference():
    from elastic_edu.nn.causal_dispatcher import CHUNK

    attn = layer(rate_spread=2.0)
    x, experts, pad = inputs(b=2, n=CHUNK + 9, e=2)
    pad[1, :5] = True
    ref, _ = causal_dispatcher_reference(attn, x, experts, pad)
    torch.testing.assert_close(attn(x, experts, pad).x[~pad], ref[~pad], rtol=1e-10, atol=1e-10)
