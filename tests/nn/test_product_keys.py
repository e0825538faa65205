"""Product-key interest memory: exactness against brute force, padding, gradients, cost, errors."""

from __future__ import annotations

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elastic_edu.bench.flops import count_flops
from elastic_edu.nn import ProductKeyMemory, Retrieval, product_key_topk
from elastic_edu.nn.flops import retrieval_flops
from elastic_edu.nn.reference import full_keys, product_key_bruteforce


@st.composite
def searches(draw, integer_entries: bool = False):
    """(q, keys1, keys2, k, c) with c >= k or c >= m, the exact regime."""
    m = draw(st.integers(1, 12))
    half = draw(st.integers(1, 4))
    b = draw(st.integers(1, 3))
    k = draw(st.integers(1, min(m * m, 40)))
    c = draw(st.integers(min(k, m), max(k, m) + 2))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    shapes = [(b, 2 * half), (m, half), (m, half)]
    if integer_entries:  # entries in {-1, 0, 1}: many tied scores
        q, keys1, keys2 = (torch.randint(-1, 2, s, generator=g).double() for s in shapes)
    else:
        q, keys1, keys2 = (torch.randn(s, generator=g, dtype=torch.float64) for s in shapes)
    return q, keys1, keys2, k, c


def check_exact_topk(q, keys1, keys2, k, c, tol):
    scores, slots = product_key_topk(q, keys1, keys2, k, c)
    ref_scores, _ = product_key_bruteforce(q, keys1, keys2, k)
    every = q @ full_keys(keys1, keys2).T  # (b, M) all slot scores
    assert scores.shape == slots.shape == (q.shape[0], k)
    # the same top-k score values as brute force, best first
    torch.testing.assert_close(scores, ref_scores, rtol=0, atol=tol)
    # each slot really has the score reported for it, and no slot comes twice
    torch.testing.assert_close(every.gather(1, slots), scores, rtol=0, atol=tol)
    assert all(len(set(row.tolist())) == k for row in slots)
    return scores, slots, every


@settings(max_examples=60, deadline=None)
@given(searches())
def test_topk_equals_bruteforce(case):
    q, keys1, keys2, k, c = case
    scores, slots, every = check_exact_topk(q, keys1, keys2, k, c, tol=1e-12)
    # where the top k+1 scores are distinct, the slots themselves are determined: compare them
    ranked = every.sort(dim=1, descending=True)
    for row in range(q.shape[0]):
        top = ranked.values[row, : k + 1]
        if top.numel() < 2 or (top[:-1] - top[1:]).min() > 1e-9:
            assert slots[row].tolist() == ranked.indices[row, :k].tolist()


@settings(max_examples=40, deadline=None)
@given(searches(integer_entries=True))
def test_topk_equals_bruteforce_with_ties(case):
    check_exact_topk(*case, tol=0.0)


def test_candidates_above_m_are_clamped():
    g = torch.Generator().manual_seed(0)
    q, keys1, keys2 = (
        torch.randn(2, 8, generator=g),
        torch.randn(4, 4, generator=g),
        torch.randn(4, 4, generator=g),
    )
    scores, slots = product_key_topk(q, keys1, keys2, k=16, c=100)
    torch.testing.assert_close(scores, product_key_bruteforce(q, keys1, keys2, 16)[0].float())
    assert sorted(slots[0].tolist()) == list(range(16))


def test_bad_search_arguments():
    q, keys = torch.randn(2, 8), torch.randn(4, 4)
    with pytest.raises(ValueError, match="larger than the memory"):
        product_key_topk(q, keys, keys, k=17, c=4)
    with pytest.raises(ValueError, match="smaller than num_experts"):
        product_key_topk(q, keys, keys, k=3, c=2)
    with pytest.raises(ValueError, match="differ"):
        product_key_topk(q, keys, torch.randn(5, 4), k=3, c=3)
    with pytest.raises(ValueError, match="query width"):
        product_key_topk(torch.randn(2, 6), keys, keys, k=3, c=3)
    with pytest.raises(ValueError, match="must be even"):
        ProductKeyMemory(dim=8, key_dim=7, subkeys=4, num_experts=2, candidates=2)
    with pytest.raises(ValueError, match="larger than the memory"):
        ProductKeyMemory(dim=8, key_dim=8, subkeys=4, num_experts=17, candidates=4)
    with pytest.raises(ValueError, match="smaller than num_experts"):
        ProductKeyMemory(dim=8, key_dim=8, subkeys=16, num_experts=8, candidates=4)


def history(b=3, n=10, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, dim, generator=g)
    pad = torch.zeros(b, n, dtype=torch.bool)
    for row in range(b):
        pad[row, : 2 * row] = True
    return x * ~pad[..., None], pad


def small_memory(seed=0) -> ProductKeyMemory:
    torch.manual_seed(seed)
    return ProductKeyMemory(dim=16, key_dim=8, subkeys=6, num_experts=5, candidates=5)


def test_retrieval_shapes_and_exactness():
    memory = small_memory()
    x, pad = history()
    r = memory(x, pad)
    assert isinstance(r, Retrieval)
    assert r.experts.shape == (3, 5, 16) and r.slots.shape == r.scores.shape == (3, 5)
    assert r.slots.dtype == torch.int64 and 0 <= r.slots.min() and r.slots.max() < 36
    assert (r.scores[:, :-1] >= r.scores[:, 1:]).all()
    q = memory.query(x, pad)
    torch.testing.assert_close(
        r.scores.double(), product_key_bruteforce(q, memory.keys1, memory.keys2, 5)[0]
    )
    gates = r.scores.softmax(-1) * 5  # documented gating, mean one
    torch.testing.assert_close(r.experts, memory.values(r.slots) * gates[..., None])


def test_query_ignores_padding_and_the_rest_of_the_batch():
    memory = small_memory()
    x, pad = history()
    base = memory(x, pad)
    noisy = x.clone()
    noisy[pad] = 50.0  # padding contents
    longer_x = torch.cat([torch.randn(3, 4, 16), x], dim=1)  # more left padding
    longer_pad = torch.cat([torch.ones(3, 4, dtype=torch.bool), pad], dim=1)
    for r in (memory(noisy, pad), memory(longer_x, longer_pad)):
        assert torch.equal(r.slots, base.slots)
        torch.testing.assert_close(r.experts, base.experts)
    alone = memory(x[2:], pad[2:])  # no batch statistics
    assert torch.equal(alone.slots, base.slots[2:])
    torch.testing.assert_close(alone.experts, base.experts[2:])


def test_gradients_reach_keys_query_and_only_retrieved_rows():
    memory = small_memory()
    x, pad = history()
    r = memory(x, pad)
    (r.experts * torch.randn_like(r.experts)).sum().backward()
    for p in (memory.keys1, memory.keys2, memory.to_query.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    row_has_grad = memory.values.weight.grad.abs().sum(dim=1) > 0  # (M,)
    retrieved = torch.zeros(36, dtype=torch.bool)
    retrieved[r.slots.flatten()] = True
    assert torch.equal(row_has_grad, retrieved)
    assert (memory.values.weight.grad[~retrieved] == 0).all()
    assert memory.memory_parameters() == [memory.values.weight]


@pytest.fixture(scope="module")
def million_slots() -> ProductKeyMemory:
    """m = 1024: M = 1,048,576 slots, a 1M x 64 value table."""
    torch.manual_seed(0)
    return ProductKeyMemory(dim=64, key_dim=64, subkeys=1024, num_experts=32, candidates=32)


def test_million_slot_memory_is_quick(million_slots):
    x, pad = history(b=4, n=200, dim=64)
    start = time.perf_counter()
    with torch.no_grad():
        r = million_slots(x, pad)
    assert time.perf_counter() - start < 2.0  # no O(M) work per user
    assert r.experts.shape == (4, 32, 64) and r.slots.max() < 1024**2
    # all M scores of one user as an outer sum of half scores (cheaper than full keys)
    q1, q2 = million_slots.query(x, pad)[0].double().chunk(2)
    every = (million_slots.keys1.double() @ q1)[:, None] + (million_slots.keys2.double() @ q2)
    top = every.flatten().topk(32)
    torch.testing.assert_close(r.scores[0].double(), top.values, rtol=1e-5, atol=1e-5)
    assert set(r.slots[0].tolist()) == set(top.indices.tolist())


def test_retrieval_costs_under_one_percent_of_bruteforce(million_slots):
    b = 2
    x, pad = history(b=b, n=200, dim=64)
    with torch.no_grad():
        retrieval = count_flops(lambda: million_slots(x, pad))
    assert retrieval == retrieval_flops(b, 200, 64, key_dim=64, subkeys=1024)
    q = million_slots.query(x, pad)
    meta = [t.detach().to("meta") for t in (q, million_slots.keys1, million_slots.keys2)]
    brute = count_flops(lambda: product_key_bruteforce(*meta, 32))  # counted, never computed
    assert brute == 2 * b * 1024**2 * 64
    assert retrieval < 0.01 * brute


@pytest.mark.parametrize("k", [1, 3, 12])
def test_memory_retrieves_another_k_exactly(k):
    """forward(..., num_experts=k) keeps max(c, k) candidates, so it is exact for any k <= M."""
    torch.manual_seed(k)
    memory = ProductKeyMemory(dim=8, key_dim=6, subkeys=5, num_experts=2, candidates=2).double()
    x, pad = torch.randn(3, 7, 8, dtype=torch.float64), torch.zeros(3, 7, dtype=torch.bool)
    r = memory(x, pad, num_experts=k)
    best, _ = product_key_bruteforce(memory.query(x, pad), memory.keys1, memory.keys2, k)
    assert r.slots.shape == (3, k)
    torch.testing.assert_close(r.scores, best)
    with pytest.raises(ValueError, match="num_experts=26"):
        memory(x, pad, num_experts=26)
