"""ELASTIC and LDA-only: outputs, padding invariance, gradients, linear cost, cheap retrieval,
errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import ModelConfig
from elastic_edu.models import build_model
from elastic_edu.models.elastic import ELASTIC, LDAOnly


def config(model: str = "elastic", **changes) -> ModelConfig:
    values = dict(
        model=model,
        num_items=40,
        max_len=32,
        dim=16,
        heads=2,
        layers=2,
        dropout=0.0,
        experts=4,
        subkeys=6,
        candidates=4,
        key_dim=8,
    )
    values.update(changes)
    return ModelConfig(**values)


def histories(b=3, n=12, num_items=40, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, num_items + 1, (b, n), generator=g)
    for row in range(b):
        items[row, : 3 * row] = 0  # left padding
    return items


def model(kind: str, dtype=torch.float64, **changes):
    torch.manual_seed(0)
    return build_model(config(kind, **changes)).to(dtype).eval()


def cpu_sdpa_flops(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of torch's fused CPU attention kernel, which FlopCounterMode does not know."""
    b, h, i, d = q_shape
    j, d_v = k_shape[2], v_shape[3]
    return 2 * b * h * i * j * d + 2 * b * h * i * j * d_v


def count_flops(fn) -> int:
    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa_flops}
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("kind", ["elastic", "lda"])
@pytest.mark.parametrize("return_weights", [False, True])
def test_encode_outputs(kind, return_weights):
    m = model(kind)
    items = histories()
    out = m.encode(items, return_weights)
    assert isinstance(m, ELASTIC if kind == "elastic" else LDAOnly)
    assert out.hidden.shape == (3, 12, 16) and torch.equal(out.pad, items == 0)
    assert len(out.aggregate) == len(out.dispatch) == (2 if return_weights else 0)
    for agg, dis in zip(out.aggregate, out.dispatch):
        assert agg.shape == (3, 2, 4, 12) and dis.shape == (3, 2, 12, 4)
        assert (agg.permute(0, 3, 1, 2)[out.pad] == 0).all()  # experts never read padding
    if kind == "elastic":
        assert out.slots.shape == out.slot_scores.shape == (3, 4)
    else:
        assert out.slots is None and out.slot_scores is None
    scores = m.score(items)
    assert scores.shape == (3, 41) and torch.isinf(scores[:, 0]).all()


@pytest.mark.parametrize("kind", ["elastic", "lda"])
def test_lean_path_equals_weights_path(kind):
    m = model(kind)
    items = histories()
    lean, full = m.encode(items).hidden, m.encode(items, return_weights=True).hidden
    torch.testing.assert_close(lean, full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["elastic", "lda", "sasrec"])
def test_more_left_padding_changes_nothing(kind):
    m = model(kind)
    items = histories()
    extra = 7
    longer = torch.cat([torch.zeros(3, extra, dtype=items.dtype), items], dim=1)
    a, b = m.encode(items), m.encode(longer)
    keep = items != 0
    torch.testing.assert_close(b.hidden[:, extra:][keep], a.hidden[keep], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m.user_repr(longer), m.user_repr(items), rtol=1e-10, atol=1e-10)
    if kind == "elastic":
        assert torch.equal(a.slots, b.slots)


@pytest.mark.parametrize("kind", ["elastic", "lda"])
def test_a_user_does_not_depend_on_the_batch(kind):
    m = model(kind)
    items = histories()
    torch.testing.assert_close(m.user_repr(items[1:2]), m.user_repr(items)[1:2])


def test_gradients_reach_memory_keys_query_and_only_retrieved_rows():
    m = model("elastic", dtype=torch.float32)
    items = histories()
    out = m.encode(items)
    m.loss(items, torch.tensor([1, 2, 3]), "cut").backward()
    memory = m.memory
    for p in (memory.keys1, memory.keys2, memory.to_query.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    retrieved = torch.zeros(memory.num_slots, dtype=torch.bool)
    retrieved[out.slots.flatten()] = True
    assert torch.equal(memory.values.weight.grad.abs().sum(dim=1) > 0, retrieved)
    assert m.memory_parameters() == [memory.values.weight]


def test_lda_experts_learn_and_have_no_memory():
    m = model("lda", dtype=torch.float32)
    m.loss(histories(), torch.tensor([1, 2, 3]), "cut").backward()
    assert m.experts.grad.abs().sum() > 0
    assert m.memory_parameters() == []


@pytest.mark.parametrize("kind", ["elastic", "lda"])
def test_all_positions_objective_is_refused(kind):
    m = model(kind)
    assert m.objectives == ("cut",)
    with pytest.raises(ValueError, match="future"):
        m.loss(histories(), histories(), "all")


def test_bad_arguments():
    with pytest.raises(ValueError, match="larger than the memory"):
        config(experts=40, subkeys=4)
    with pytest.raises(ValueError, match="smaller than experts"):
        config(experts=8, subkeys=16, candidates=4)
    with pytest.raises(ValueError, match="not divisible by heads"):
        config(dim=10, heads=4)
    # the memory checks its own arguments when the config skipped them
    with pytest.raises(ValueError, match="larger than the memory"):
        ELASTIC(config("lda", experts=40, subkeys=4))
    with pytest.raises(ValueError, match="smaller than experts"):
        ELASTIC(config("lda", experts=8, subkeys=16, candidates=4))
    with pytest.raises(ValueError, match="empty"):
        model("elastic").encode(torch.zeros(2, 5, dtype=torch.long))


@pytest.mark.parametrize("return_weights", [False, True], ids=["sdpa", "einsum"])
def test_forward_flops_grow_linearly(return_weights):
    cfg = config(max_len=8192, dim=8, heads=2, layers=1, experts=4, subkeys=4, key_dim=8)
    torch.manual_seed(0)
    m = ELASTIC(cfg).eval()
    g = torch.Generator().manual_seed(0)
    flops = {}
    for n in (1024, 2048, 4096, 8192):
        items = torch.randint(1, 41, (1, n), generator=g)
        flops[n] = count_flops(lambda items=items: m.encode(items, return_weights))
    for n in (1024, 2048, 4096):
        assert 1.9 <= flops[2 * n] / flops[n] <= 2.1, flops


def test_both_paths_count_the_same_flops():
    m = model("elastic", dtype=torch.float32)
    items = histories()
    assert count_flops(lambda: m.encode(items)) == count_flops(lambda: m.encode(items, True))


def test_a_million_slots_cost_almost_nothing_more():
    """ELASTIC forward at N = 200, default width: m = 1024 (M = 1M slots) vs m = 32."""
    items = histories(b=2, n=200, num_items=100)
    flops = {}
    for m in (32, 1024):
        cfg = ModelConfig(model="elastic", num_items=100, max_len=200, dropout=0.0, subkeys=m)
        torch.manual_seed(0)
        net = ELASTIC(cfg).eval()
        flops[m] = count_flops(lambda net=net: net.encode(items))
        del net
    assert flops[1024] <= 1.05 * flops[32], flops
