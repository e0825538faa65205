"""The chunkwise causal dispatcher against the plain (n, e, d) computation, its scan, its ranges,
its gradients, and the promise that no (n, e, d) tensor is ever formed."""

from __future__ import annotations

import math

import pytest
import torch
from einops import einsum, rearrange
from torch.utils._python_dispatch import TorchDispatchMode

from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention
from elastic_edu.nn.chunkwise import (
    CHUNK,
    MAX_RATE,
    RECOMPUTE_FROM,
    Carry,
    ExpertTerms,
    carry_states,
    causal_dispatch,
    chunk_size,
)
from elastic_edu.nn.reference import prefix_softmax_average


def random_inputs(b=2, h=2, n=40, e=3, d=4, seed=0, dtype=torch.float64, max_rate=MAX_RATE):
    """Projections, a padding mask (row 1 starts late, row 0 is full) and expert terms."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
    keys, values, route, gate = (rand(b, h, n, d) for _ in range(4))
    pad = torch.zeros(b, n, dtype=torch.bool)
    if b > 1:
        pad[1, : n // 3] = True
    terms = ExpertTerms(query=rand(b, h, e, d), own_score=rand(b, h, e), own_value=rand(b, h, e, d),
                        key=rand(b, h, e, d),
                        rate=max_rate * torch.rand(b, h, e, generator=g, dtype=dtype))  # fmt: skip
    return keys, values, route, gate, pad, terms


def materialised(keys, values, route, gate, pad, terms):
    """The plain computation: every summary A_e(t) formed, then read. (b h n d), (b h n e)."""
    d = keys.shape[-1]
    time = (~pad).cumsum(dim=1).to(keys.dtype)
    scores = einsum(terms.query, keys, "b h e d, b h n d -> b h e n") * d**-0.5
    scores = scores + einsum(terms.rate, time, "b h e, b n -> b h e n")
    scores = scores.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf"))
    summary = prefix_softmax_average(scores, values, terms.own_score, terms.own_value)
    sim = einsum(route, terms.key, "b h n d, b h e d -> b h n e")
    sim = sim + einsum(gate, summary, "b h n d, b h n e d -> b h n e")
    dispatch = (sim * d**-0.5).softmax(dim=-1)
    return einsum(dispatch, summary, "b h n e, b h n e d -> b h n d"), dispatch


@pytest.mark.parametrize("n", [1, 5, 31, 32, 33, 50, 97])
@pytest.mark.parametrize("chunk", [None, 1, 7, CHUNK])
def test_matches_the_materialised_computation_in_float64(n, chunk):
    args = random_inputs(n=n, seed=n)
    out, dispatch, _ = causal_dispatch(*args, chunk=chunk)
    ref_out, ref_dispatch = materialised(*args)
    real = ~args[4]
    torch.testing.assert_close(out.transpose(1, 2)[real], ref_out.transpose(1, 2)[real],
                               rtol=1e-9, atol=1e-9)  # fmt: skip
    torch.testing.assert_close(dispatch.transpose(1, 2)[real], ref_dispatch.transpose(1, 2)[real],
                               rtol=1e-9, atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_matches_the_float64_computation(seed):
    args = random_inputs(n=300, seed=seed)
    ref_out, _ = materialised(*args)
    cast = [a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args[:5]]
    terms = ExpertTerms(*(t.float() for t in vars(args[5]).values()))
    out, _, _ = causal_dispatch(*cast, terms)
    real = ~args[4]
    torch.testing.assert_close(out.transpose(1, 2)[real].double(), ref_out.transpose(1, 2)[real],
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_the_layer_matches_the_layer_written_the_plain_way():
    from elastic_edu.nn.reference import causal_dispatcher_materialised

    torch.manual_seed(3)
    attn = CausalDispatcherAttention(16, 2).double().eval()
    torch.nn.init.normal_(attn.to_rate.weight, std=1.0)
    x, experts = torch.randn(3, 77, 16, dtype=torch.float64), torch.randn(3, 6, 16).double()
    pad = torch.zeros(3, 77, dtype=torch.bool)
    pad[2, :70] = True
    out = attn(x, experts, pad, return_weights=True)
    ref, dispatch = causal_dispatcher_materialised(attn, x, experts, pad)
    torch.testing.assert_close(out.x[~pad], ref[~pad], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out.dispatch.transpose(1, 2)[~pad],
                               dispatch.transpose(1, 2)[~pad], rtol=1e-9, atol=1e-9)  # fmt: skip


def test_slices_that_carry_their_state_equal_the_whole_window():
    keys, values, route, gate, pad, terms = random_inputs(n=101, seed=5)
    whole, _, end = causal_dispatch(keys, values, route, gate, pad, terms)
    carry, parts = None, []
    for lo, hi in [(0, 13), (13, 64), (64, 65), (65, 101)]:
        part = [t[:, :, lo:hi] for t in (keys, values, route, gate)]
        out, _, carry = causal_dispatch(*part, pad[:, lo:hi], terms, carry)
        parts.append(out)
    real = ~pad
    torch.testing.assert_close(torch.cat(parts, dim=2).transpose(1, 2)[real],
                               whole.transpose(1, 2)[real], rtol=1e-12, atol=1e-12)  # fmt: skip
    assert torch.equal(carry.tau, end.tau)


def test_the_first_carry_holds_only_the_experts_own_entries():
    *_, terms = random_inputs()
    carry = Carry.begin(terms, 2)
    assert torch.equal(carry.state[..., :-1], terms.own_value)
    assert torch.equal(carry.state[..., -1], torch.ones_like(terms.own_score))


@pytest.mark.parametrize("chunks", [1, 2, 3, 5, 16, 17, 50])
def test_the_two_level_scan_equals_the_sequential_recurrence(chunks):
    g = torch.Generator().manual_seed(chunks)
    first = torch.randn(2, 2, 3, 5, generator=g, dtype=torch.float64)
    sums = torch.rand(2, 2, chunks, 3, 5, generator=g, dtype=torch.float64)
    top = torch.randn(2, 2, chunks, 3, generator=g, dtype=torch.float64).cummax(dim=2).values
    start = torch.randint(0, 5, (2, chunks), generator=g).cumsum(dim=1)
    rate = MAX_RATE * torch.rand(2, 2, 3, generator=g, dtype=torch.float64)
    reference = top + rate[:, :, None] * start[:, None, :, None]
    state, expected = first, []
    for j in range(chunks):
        expected.append(state)
        if j + 1 < chunks:
            decay = torch.exp(reference[:, :, j] - reference[:, :, j + 1])[..., None]
            state = decay * (state + sums[:, :, j])
    got = carry_states(first, sums, top, start, rate)
    torch.testing.assert_close(got, torch.stack(expected, 2))


def test_steep_recency_over_16k_positions_stays_finite_and_exact():
    """Every rate at MAX_RATE: the own entry ends e^-32768 below the last item, far outside
    float32's range, and a chunk spreads its scores by MAX_RATE * CHUNK = 64."""
    n = 16_384
    keys, values, route, gate, pad, terms = random_inputs(b=1, h=1, n=n, e=2, d=4, seed=7)
    terms.rate.fill_(MAX_RATE)
    out64, _, _ = causal_dispatch(keys, values, route, gate, pad, terms)
    f32 = [t.float() for t in (keys, values, route, gate)]
    out32, _, _ = causal_dispatch(
        *f32, pad, ExpertTerms(*(t.float() for t in vars(terms).values()))
    )
    assert torch.isfinite(out32).all()
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-5)
    # float64 against the definition at a few positions, with log-sum-exp over the prefix
    d = keys.shape[-1]
    time = torch.arange(1, n + 1, dtype=torch.float64)
    scores = (terms.query[0, 0] @ keys[0, 0].T) * d**-0.5 + terms.rate[0, 0, :, None] * time
    for t in (0, 31, 32, 5000, n - 1):
        logits = torch.cat([terms.own_score[0, 0, :, None], scores[:, : t + 1]], dim=1)
        vals = torch.cat([terms.own_value[0, 0, :, None], values[0, 0, None, : t + 1].expand(
            2, -1, -1)], dim=1)  # fmt: skip
        summary = einsum(logits.softmax(dim=1), vals, "e s, e s d -> e d")
        sim = terms.key[0, 0] @ route[0, 0, t] + summary @ gate[0, 0, t]
        expected = (sim * d**-0.5).softmax(dim=0) @ summary
        torch.testing.assert_close(out64[0, 0, t], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n", [70, RECOMPUTE_FROM + 30])  # the second recomputes in backward
def test_gradients_match_autograd_of_the_materialised_computation(n):
    args = list(random_inputs(n=n, seed=11))
    leaves = [a.requires_grad_() for a in args[:4]] + [
        t.requires_grad_() for t in vars(args[5]).values()]  # fmt: skip
    weights = torch.randn(2, 2, n, 4, dtype=torch.float64)
    real = rearrange(~args[4], "b n -> b 1 n 1")
    fast, _, _ = causal_dispatch(*args)
    slow, _ = materialised(*args)
    g_fast = torch.autograd.grad((fast * weights * real).sum(), leaves)
    g_slow = torch.autograd.grad((slow * weights * real).sum(), leaves)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_an_old_item_that_scored_high_leaves_the_gradients_finite_and_exact():
    """The long-range task's divergence, in small: one item near the start scores about 60
    above the rest for expert 0, whose steep recency rate then decays it. A reference kept at
    the running maximum of the content scores alone stayed 60 above every later term, so their
    normalisers fell to e^-60 and the backward pass (which divides by them twice) overflowed
    float32 into NaN. Row 1 starts after two chunks of padding; n recomputes in backward."""
    n, first = RECOMPUTE_FROM + 32, 70
    args = list(random_inputs(n=n, seed=5))
    keys, pad, terms = args[0], args[4], args[5]
    q = terms.query[:, :, 0]  # (b, h, d): expert 0 scores c = q . k / sqrt(d) = 60 there
    keys[:, :, first] = q * 120 / rearrange((q * q).sum(-1), "b h -> b h 1")
    terms.rate[:, :, 0] = MAX_RATE
    leaves64 = [a.requires_grad_() for a in args[:4]]
    f32 = [a.detach().float().requires_grad_() for a in args[:4]]
    terms32 = ExpertTerms(*(t.float() for t in vars(terms).values()))
    weights = torch.randn(2, 2, n, 4, dtype=torch.float64)
    real = rearrange(~pad, "b n -> b 1 n 1")
    fast, _, _ = causal_dispatch(*f32, pad, terms32)
    slow, _ = materialised(*args)
    g_fast = torch.autograd.grad((fast * weights.float() * real).sum(), f32)
    g_slow = torch.autograd.grad((slow * weights * real).sum(), leaves64)
    for a, b in zip(g_fast, g_slow):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-4)


def test_gradcheck_of_the_kernel():
    keys, values, route, gate, pad, terms = random_inputs(b=1, h=1, n=9, e=2, d=3, seed=2)
    leaves = [keys, values, route, gate, *vars(terms).values()]
    for t in leaves:
        t.requires_grad_()

    def fn(keys, values, route, gate, query, own_score, own_value, key, rate):
        terms = ExpertTerms(query, own_score, own_value, key, rate)
        return causal_dispatch(keys, values, route, gate, pad, terms, chunk=4)[0]

    assert torch.autograd.gradcheck(fn, leaves)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements any operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if torch.is_tensor(t):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("grad", [False, True])
def test_no_tensor_holds_every_summary(grad):
    """The point of the chunkwise form: nothing of size n * e * d (b h n e d) is ever formed,
    in the forward pass or in backward."""
    b, h, n, e, d = 2, 2, 512, 32, 32
    keys, values, route, gate, pad, terms = random_inputs(b, h, n, e, d, dtype=torch.float32)
    if grad:
        keys.requires_grad_()
    with LargestTensor() as meter, torch.set_grad_enabled(grad):
        out, _, _ = causal_dispatch(keys, values, route, gate, pad, terms)
        if grad:
            out.sum().backward()
    assert meter.largest <= b * h * n * max(e, d, CHUNK) + b * h * n  # (b h n e) at most
    assert meter.largest < b * h * n * e * d / 8


def test_chunk_sizes_are_even_and_bounded():
    assert chunk_size(50) == 25 and chunk_size(8192) == CHUNK and chunk_size(1) == 1
    assert all(chunk_size(n) <= CHUNK and chunk_size(n) * math.ceil(n / chunk_size(n)) - n
               < math.ceil(n / CHUNK) for n in range(1, 400))  # fmt: skip
    with pytest.raises(ValueError, match="at most 32"):
        causal_dispatch(*random_inputs(n=80), chunk=CHUNK + 1)


def test_runs_in_float32_under_bfloat16_autocast():
    args = random_inputs(n=64, dtype=torch.float32)
    plain, _, _ = causal_dispatch(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto, dispatch, _ = causal_dispatch(*args)
    assert auto.dtype == torch.float32 and dispatch.dtype == torch.float32
    torch.testing.assert_close(auto, plain)
