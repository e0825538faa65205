"""Linear dispatcher attention: einops steps vs loop references, lean (SDPA) vs einsum path,
padding isolation, argument checks."""

from __future__ import annotations

import pytest
import torch

from elastic_edu.nn import DispatcherAttention, DispatcherBlock
from elastic_edu.nn.reference import aggregate_reference, dispatch_reference, dispatcher_reference


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp(min=1e-300))


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights everywhere (layer norms included) so that no parameter hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
    return module


def inputs(b=3, n=9, e=4, dim=16, padded=True, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, dim, generator=g, dtype=dtype)
    experts = torch.randn(b, e, dim, generator=g, dtype=dtype)
    pad = torch.zeros(b, n, dtype=torch.bool)
    if padded:  # left padding of different lengths; every user keeps at least one item
        for row in range(b):
            pad[row, : (row * 3) % n] = True
    return x, experts, pad


def layer(dim=16, heads=4, dtype=torch.float64) -> DispatcherAttention:
    return randomise(DispatcherAttention(dim, heads)).to(dtype).eval()


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_aggregate_matches_loop_reference(padded, heads):
    attn = layer(heads=heads)
    x, experts, pad = inputs(padded=padded)
    out, weights = attn.aggregate(x, experts, pad, return_weights=True)
    ref_out, ref_weights = aggregate_reference(attn, x, experts, pad)
    assert out.shape == (3, 4, 16) and weights.shape == (3, heads, 4, 9)
    assert rel_err(out, ref_out) <= 1e-10
    assert rel_err(weights, ref_weights) <= 1e-10


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_dispatch_matches_loop_reference(padded, heads):
    attn = layer(heads=heads)
    x, experts, _ = inputs(padded=padded)
    out, weights = attn.dispatch(x, experts, return_weights=True)
    ref_out, ref_weights = dispatch_reference(attn, x, experts)
    assert out.shape == (3, 9, 16) and weights.shape == (3, heads, 9, 4)
    assert rel_err(out, ref_out) <= 1e-10
    assert rel_err(weights, ref_weights) <= 1e-10


@pytest.mark.parametrize("padded", [False, True])
def test_forward_matches_loop_reference(padded):
    attn = layer()
    x, experts, pad = inputs(padded=padded)
    out = attn(x, experts, pad, return_weights=True)
    ref_x, ref_experts = dispatcher_reference(attn, x, experts, pad)
    assert rel_err(out.experts, ref_experts) <= 1e-10
    # padded positions are computed too (and ignored later), so compare every position
    assert rel_err(out.x, ref_x) <= 1e-10


@pytest.mark.parametrize("padded", [False, True])
def test_weights_are_distributions_and_padding_gets_zero(padded):
    attn = layer()
    x, experts, pad = inputs(padded=padded)
    out = attn(x, experts, pad, return_weights=True)
    ones = torch.ones((), dtype=torch.float64)
    torch.testing.assert_close(out.aggregate.sum(-1), ones.expand(3, 4, 4))
    torch.testing.assert_close(out.dispatch.sum(-1), ones.expand(3, 4, 9))
    assert (out.aggregate.permute(0, 3, 1, 2)[pad] == 0).all()  # (b, n, h, e) -> padded rows


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"]
)
@pytest.mark.parametrize("padded", [False, True])
def test_lean_path_equals_einsum_path(dtype, tol, padded):
    block = randomise(DispatcherBlock(16, 4)).to(dtype).eval()
    x, experts, pad = inputs(padded=padded, dtype=dtype)
    lean = block(x, experts, pad, return_weights=False)
    full = block(x, experts, pad, return_weights=True)
    assert lean.aggregate is None and lean.dispatch is None
    torch.testing.assert_close(lean.x, full.x, rtol=tol, atol=tol)
    torch.testing.assert_close(lean.experts, full.experts, rtol=tol, atol=tol)


def test_lean_path_gradients_equal_einsum_path():
    block = randomise(DispatcherBlock(16, 4)).double().eval()
    x, experts, pad = inputs()
    grads = []
    for return_weights in (False, True):
        xr, er = x.clone().requires_grad_(), experts.clone().requires_grad_()
        out = block(xr, er, pad, return_weights)
        (out.x[~pad].square().sum() + out.experts.sum()).backward()
        grads.append((xr.grad, er.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("return_weights", [False, True])
def test_padded_positions_affect_nothing(return_weights):
    block = randomise(DispatcherBlock(16, 4)).double().eval()
    x, experts, pad = inputs()
    noisy = x.clone()
    noisy[pad] = torch.randn(int(pad.sum()), 16, dtype=torch.float64) * 100
    a = block(x, experts, pad, return_weights)
    b = block(noisy, experts, pad, return_weights)
    torch.testing.assert_close(a.experts, b.experts, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.x[~pad], b.x[~pad], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("return_weights", [False, True])
def test_more_left_padding_changes_nothing(return_weights):
    block = randomise(DispatcherBlock(16, 4)).double().eval()
    x, experts, pad = inputs()
    extra = 5
    x_long = torch.cat([torch.randn(3, extra, 16, dtype=torch.float64), x], dim=1)
    pad_long = torch.cat([torch.ones(3, extra, dtype=torch.bool), pad], dim=1)
    a = block(x, experts, pad, return_weights)
    b = block(x_long, experts, pad_long, return_weights)
    torch.testing.assert_close(b.experts, a.experts, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(b.x[:, extra:][~pad], a.x[~pad], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("b", "n", "e", "dim", "heads"), [(1, 1, 1, 4, 1), (2, 33, 5, 12, 3)])
def test_shapes(b, n, e, dim, heads):
    block = DispatcherBlock(dim, heads)
    x, experts, pad = inputs(b=b, n=n, e=e, dim=dim, padded=False, dtype=torch.float32)
    out = block(x, experts, pad, return_weights=True)
    assert out.x.shape == (b, n, dim) and out.experts.shape == (b, e, dim)
    assert out.aggregate.shape == (b, heads, e, n) and out.dispatch.shape == (b, heads, n, e)


def test_dropout_only_in_training():
    block = DispatcherBlock(16, 4, dropout=0.5)
    x, experts, pad = inputs(dtype=torch.float32)
    torch.manual_seed(0)
    a, b = block(x, experts, pad).x, block(x, experts, pad).x
    assert not torch.equal(a, b)
    block.eval()
    torch.testing.assert_close(block(x, experts, pad).x, block(x, experts, pad, True).x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="not divisible by heads"):
        DispatcherAttention(10, 3)
    with pytest.raises(ValueError, match="not divisible by heads"):
        DispatcherBlock(10, 4)
    with pytest.raises(ValueError, match="heads=0"):
        DispatcherAttention(8, 0)


def test_both_steps_go_through_attend(monkeypatch):
    """One attention switch: aggregate and dispatch are `attend` calls (mask only on aggregate)."""
    import elastic_edu.nn.dispatcher as dispatcher
    from elastic_edu.nn.attention import attend

    calls = []

    def spy(q, k, v, mask=None, dropout=0.0, return_weights=False):
        calls.append((q.shape, mask is None, return_weights))
        return attend(q, k, v, mask, dropout, return_weights)

    monkeypatch.setattr(dispatcher, "attend", spy)
    x, experts, pad = inputs(dtype=torch.float32)
    layer(dtype=torch.float32)(x, experts, pad, return_weights=True)
    assert calls == [((3, 4, 4, 4), False, True), ((3, 4, 9, 4), True, True)]
