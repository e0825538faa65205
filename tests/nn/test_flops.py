"""FLOP formulas against PyTorch's count on the meta device: every layer family, and every
model's own sum of them (its `flops` method)."""

from __future__ import annotations

import math

import pytest
import torch

from elastic_edu.bench import flops as counting
from elastic_edu.bench.flops import count_flops
from elastic_edu.models import build_model
from elastic_edu.nn import CausalSelfAttention, DispatcherAttention, FeedForward, flops
from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention

SHAPES = [(1, 2, 3, 4, 1), (2, 9, 4, 16, 2), (3, 33, 5, 24, 3), (1, 300, 3, 8, 2)]  # b, n, k, d, h


@pytest.mark.parametrize(("b", "n", "k", "d", "h"), SHAPES)
def test_layer_formulas_equal_counted_flops(b, n, k, d, h):
    with torch.device("meta"):
        x, experts = torch.randn(b, n, d), torch.randn(b, k, d)
        pad = torch.zeros(b, n, dtype=torch.bool)
        layers = (CausalSelfAttention(d, h), DispatcherAttention(d, h),
                  CausalDispatcherAttention(d, h), FeedForward(d))  # fmt: skip
    attn, lda, causal, ff = layers
    count = count_flops
    assert count(lambda: attn(x, pad)) == flops.self_attention_flops(b, n, d)
    assert count(lambda: lda(x, experts, pad)) == flops.dispatcher_flops(b, n, k, d)
    assert count(lambda: causal(x, experts, pad)) == flops.causal_dispatcher_flops(b, n, k, d, h)
    assert count(lambda: ff(x)) == flops.feedforward_flops(b, n, d)


@pytest.mark.parametrize(
    "model", ["sasrec", "lda-bidir", "elastic-bidir", "lda-causal", "elastic-causal"]
)
@pytest.mark.parametrize(("b", "n", "context"), [(2, 16, 0), (3, 24, 6)])
def test_encoder_formula_equals_counted_flops(tiny_config, model, b, n, context):
    """Each model's `flops` against the count of its `encode` on a window of n, after the
    older items only a model with a context reads."""
    config = tiny_config(model, max_len=n, dim=32, num_experts=8, subkeys=6, candidates=8,
                         key_dim=16, context=max(context, 1))  # fmt: skip
    with torch.device("meta"):
        encoder = build_model(config).eval()
        older = context if encoder.context else 0
        items = torch.ones(b, older + n, dtype=torch.long)
    counted = count_flops(lambda: encoder.encode(items))
    assert counted == encoder.flops(b, n, older)


def test_quadratic_against_linear_growth():
    """Doubling n: self-attention's n^2 term quadruples, the dispatchers' costs double."""
    b, k, d, h = 4, 32, 64, 2
    big = 1 << 16
    assert flops.self_attention_flops(b, 2 * big, d) / flops.self_attention_flops(b, big, d) > 3.9
    for f in (lambda n: flops.dispatcher_flops(b, n, k, d),
              lambda n: flops.causal_dispatcher_flops(b, n, k, d, h)):  # fmt: skip
        assert f(2 * big) / f(big) == pytest.approx(2.0, rel=1e-3)


def test_no_formula_for_a_recurrent_model(tiny_config):
    with pytest.raises(ValueError, match="no formula for model 'gru4rec'"):
        build_model(tiny_config("gru4rec")).flops(2, 8)


def test_count_flops_reads_data_dependent_checks_as_false():
    """A branch on a value (`if x.any():`) cannot run on meta tensors; the counter says False."""
    with torch.device("meta"):
        a, flag = torch.randn(4, 8), torch.ones(3, dtype=torch.bool)

    def branchy():
        return a @ a.T if not flag.any() else a @ a.T @ a

    assert count_flops(branchy) == 2 * 4 * 8 * 4


def test_product_key_formulas_equal_counted_flops():
    from elastic_edu.nn import product_key_topk

    m, key_dim, users = 8, 16, 3
    q = torch.randn(users, key_dim)
    k1, k2 = torch.randn(m, key_dim // 2), torch.randn(m, key_dim // 2)
    assert count_flops(lambda: product_key_topk(q, k1, k2, 4, 4)) == flops.product_key_flops(
        m, key_dim, users
    )
    assert flops.bruteforce_key_flops(m, key_dim, users) == m * flops.product_key_flops(
        m, key_dim, users
    )


def test_crossover_is_where_the_formulas_meet():
    k, d = 32, 64
    n = flops.dispatcher_crossover(k, d)
    lo, hi = math.floor(n), math.floor(n) + 1
    assert flops.dispatcher_flops(1, lo, k, d) > flops.self_attention_flops(1, lo, d)
    assert flops.dispatcher_flops(1, hi, k, d) < flops.self_attention_flops(1, hi, d)
    assert flops.score_matrix_bytes(4, 2, 16384) == 4 * 2 * 16384**2 * 4


def test_count_flops_stops_at_its_deadline():
    """A very long history costs time on meta too: the bench bounds the count (issue 22)."""
    import time

    with torch.device("meta"):
        a = torch.randn(4, 8)
    assert count_flops(lambda: a @ a.T, time.perf_counter() + 60) == 2 * 4 * 8 * 4
    with pytest.raises(counting.CountTimeout):
        count_flops(lambda: a @ a.T, time.perf_counter() - 1)
