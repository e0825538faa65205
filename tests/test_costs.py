"""FLOP formulas against FlopCounterMode on the library's layers; the crossover; the timer."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import costs
from elastic_edu.nn import CausalSelfAttention, DispatcherAttention, product_key_topk


def counted(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("n", [16, 64])
def test_layer_formulas_match_flop_counter(n):
    b, d, k = 2, 16, 4
    x, e = torch.randn(b, n, d), torch.randn(b, k, d)
    pad = torch.zeros(b, n, dtype=torch.bool)
    attn = CausalSelfAttention(d, 2, backend="naive").eval()
    lda = DispatcherAttention(d, 2).eval()
    assert counted(lambda: attn(x, pad, return_weights=True)) == costs.attention_flops(b, n, d)
    got = counted(lambda: lda(x, e, pad, return_weights=True))
    assert got == costs.dispatcher_flops(b, n, k, d)


def test_product_key_formulas_match_flop_counter():
    m, key_dim, users = 8, 16, 3
    q = torch.randn(users, key_dim)
    k1, k2 = torch.randn(m, key_dim // 2), torch.randn(m, key_dim // 2)
    got = counted(lambda: product_key_topk(q, k1, k2, 4, 4))
    assert got == costs.product_key_flops(m, key_dim, users)
    assert costs.bruteforce_key_flops(m, key_dim, users) == 2 * users * m * m * key_dim


def test_crossover_is_where_the_formulas_meet():
    k, d = 32, 64
    n = costs.dispatcher_crossover(k, d)
    assert n == pytest.approx(k + math.sqrt(k * k + 2 * k * d))
    lo, hi = math.floor(n), math.floor(n) + 1
    assert costs.dispatcher_flops(1, lo, k, d) > costs.attention_flops(1, lo, d)
    assert costs.dispatcher_flops(1, hi, k, d) < costs.attention_flops(1, hi, d)
    assert costs.score_matrix_bytes(4, 2, 16384) == 4 * 2 * 16384**2 * 4


def test_median_ms_warms_up_then_times():
    calls = []
    ms = costs.median_ms(lambda: calls.append(1), repeats=3)
    assert len(calls) == 4 and ms >= 0
    with pytest.raises(ValueError, match="repeats"):
        costs.median_ms(lambda: None, repeats=0)
