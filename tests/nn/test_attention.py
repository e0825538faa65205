"""`attend` and causal self-attention (SASRec's layer): loop reference, fused against explicit
path, the exact SDPA calls, causality, masks, errors."""

from __future__ import annotations

import pytest
import torch

from elastic_edu.bench.flops import count_flops
from elastic_edu.nn import CausalSelfAttention, TransformerBlock, attend, flops
from elastic_edu.nn.attention import attention_mask
from elastic_edu.nn.reference import causal_attention_reference


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm())


def inputs(b=3, n=8, dim=12, padded=True, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, dim, generator=g, dtype=dtype)
    pad = torch.zeros(b, n, dtype=torch.bool)
    if padded:
        for row in range(b):
            pad[row, : 2 * row] = True
    return x, pad


def randomised_attention(dim=12, heads=3, backend="naive") -> CausalSelfAttention:
    torch.manual_seed(0)
    attn = CausalSelfAttention(dim, heads, backend=backend).double().eval()
    with torch.no_grad():
        for p in attn.parameters():
            p.normal_(std=0.5)
    return attn


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("heads", [1, 3])
def test_einsum_path_matches_loop_reference(padded, heads):
    attn = randomised_attention(heads=heads)
    x, pad = inputs(padded=padded)
    out, weights = attn(x, pad, return_weights=True)
    ref_out, ref_weights = causal_attention_reference(attn, x, pad)
    assert weights.shape == (3, heads, 8, 8)
    assert rel_err(out, ref_out) <= 1e-10
    assert rel_err(weights, ref_weights) <= 1e-10


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-12), (torch.float32, 1e-5)], ids=["f64", "f32"]
)
def test_naive_equals_sdpa(dtype, tol):
    naive = randomised_attention(backend="naive").to(dtype)
    sdpa = CausalSelfAttention(12, 3, backend="sdpa").to(dtype).eval()
    sdpa.load_state_dict(naive.state_dict())
    x, pad = inputs(dtype=dtype)
    out_sdpa, none = sdpa(x, pad)
    assert none is None
    torch.testing.assert_close(out_sdpa, naive(x, pad)[0], rtol=tol, atol=tol)
    # asking for weights uses the einsum path on either back-end
    torch.testing.assert_close(sdpa(x, pad, True)[1], naive(x, pad, True)[1])


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_causal_future_does_not_leak(backend):
    torch.manual_seed(0)
    block = TransformerBlock(12, 3, backend=backend).double().eval()
    x, pad = inputs()
    t = 4
    changed = x.clone()
    changed[:, t + 1 :] = torch.randn_like(changed[:, t + 1 :])
    a, _ = block(x, pad)
    b, _ = block(changed, pad)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a[:, t + 1 :], b[:, t + 1 :])


def test_attention_mask():
    pad = torch.tensor([[True, False, False], [False, False, False]])
    mask = attention_mask(pad)
    assert mask.shape == (2, 1, 3, 3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], expected)  # padded key 0 only readable by itself
    assert torch.equal(mask[1, 0], torch.ones(3, 3, dtype=torch.bool).tril())
    assert torch.equal(attention_mask(pad, causal=False)[1, 0], torch.ones(3, 3, dtype=torch.bool))


def test_bad_arguments():
    with pytest.raises(ValueError, match="not divisible by heads"):
        CausalSelfAttention(10, 3)
    with pytest.raises(ValueError, match="backend"):
        CausalSelfAttention(12, 3, backend="flash")


def test_feedforward_chunks_equal_whole_at_inference():
    from elastic_edu.nn.attention import FeedForward

    torch.manual_seed(0)
    ff = FeedForward(8, chunk=5).double().eval()
    x = torch.randn(2, 23, 8, dtype=torch.float64)
    whole = ff.net(x)
    with torch.no_grad():
        chunked = ff(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)


def test_sdpa_without_padding_uses_causal_flag_and_counts_flops_on_meta():
    """No padding takes the is_causal path; the result equals the masked path, and FLOPs can
    still be counted on meta tensors (whose `pad.any()` has no value: the counter says False)."""
    torch.manual_seed(0)
    attn = CausalSelfAttention(16, 2, backend="sdpa").eval()
    x = torch.randn(2, 9, 16)
    no_pad = torch.zeros(2, 9, dtype=torch.bool)
    fast, _ = attn(x, no_pad)
    slow, _ = attn(x, no_pad, return_weights=True)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    with torch.device("meta"):
        layer = CausalSelfAttention(16, 2, backend="sdpa")
        xm, pm = torch.randn(2, 9, 16), torch.zeros(2, 9, dtype=torch.bool)
    assert count_flops(lambda: layer(xm, pm)) == flops.self_attention_flops(2, 9, 16)


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_sdpa_backend_calls_torch_with_the_same_arguments(padded, training, monkeypatch):
    """SASRec's training must not change: no padding -> is_causal=True alone, padding -> the
    boolean mask alone, dropout as dropout_p; nothing else."""
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    attn = CausalSelfAttention(12, 3, dropout=0.1, backend="sdpa").train(training)
    x, pad = inputs(padded=padded, dtype=torch.float32)
    attn(x, pad)
    ((args, kwargs),) = calls
    assert len(args) == 3 and all(a.shape == (3, 3, 8, 4) for a in args)
    p = 0.1 if training else 0.0
    if padded:
        assert kwargs.keys() == {"attn_mask", "dropout_p"} and kwargs["dropout_p"] == p
        assert torch.equal(kwargs["attn_mask"], attention_mask(pad, causal=True))
    else:
        assert kwargs == {"is_causal": True, "dropout_p": p}
    calls.clear()
    CausalSelfAttention(12, 3, backend="naive")(x, pad)  # naive never calls the fused kernel
    assert calls == []


def qkv(b=2, h=3, i=5, j=7, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, i, d, generator=g, dtype=torch.float64)
    k, v = (torch.randn(b, h, j, d, generator=g, dtype=torch.float64) for _ in range(2))
    return q, k, v


@pytest.mark.parametrize("case", ["plain", "mask", "causal", "mask+causal"])
def test_attend_fused_equals_explicit(case):
    q, k, v = qkv(i=6, j=6)
    mask = causal = None
    if "mask" in case:
        mask = torch.rand(2, 1, 1, 6, generator=torch.Generator().manual_seed(1)) > 0.3
        mask[..., 0] = True  # every query can read key 0
    causal = "causal" in case
    fused, none = attend(q, k, v, mask, causal=causal)
    explicit, weights = attend(q, k, v, mask, return_weights=True, causal=causal)
    assert none is None and weights.shape == (2, 3, 6, 6)
    torch.testing.assert_close(fused, explicit, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 6, dtype=torch.float64))
    allowed = torch.ones(6, 6, dtype=torch.bool)
    if causal:
        allowed = allowed.tril()
    if mask is not None:
        allowed = allowed & mask
    assert (weights.masked_select(~allowed.expand_as(weights)) == 0).all()


def test_attend_explicit_path_is_the_softmax_formula():
    q, k, v = qkv()
    out, weights = attend(q, k, v, return_weights=True)
    expected = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # sqrt(d = 4) = 2
    torch.testing.assert_close(weights, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, expected @ v, rtol=1e-12, atol=1e-12)
