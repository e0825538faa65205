"""ELASTIC and LDA-only: outputs, padding invariance, gradients, linear cost, cheap retrieval,
the [MASK] read-out of these non-causal encoders, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import ModelConfig
from elastic_edu.config import MemoryConfig
from elastic_edu.data.batches import Cloze
from elastic_edu.histories import PAD
from elastic_edu.models import build_model
from elastic_edu.models.dispatcher import ELASTIC, LDAOnly
from tests.conftest import make_tiny_config


def config(model: str = "elastic-bidir", **changes) -> ModelConfig:
    return make_tiny_config(model, **{"max_len": 32, "subkeys": 6, **changes})


def histories(b=3, n=12, num_items=40, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, num_items + 1, (b, n), generator=g)
    for row in range(b):
        items[row, : 3 * row] = 0  # left padding
    return items


def as_lists(items: torch.Tensor) -> list[list[int]]:
    """Left-padded items (b, n) -> the histories they hold."""
    return [[int(v) for v in row if v != PAD] for row in items]


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


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
@pytest.mark.parametrize("return_weights", [False, True])
def test_encode_outputs(kind, return_weights):
    m = model(kind)
    items = histories()
    out = m.encode(items, return_weights)
    assert isinstance(m, ELASTIC if kind == "elastic-bidir" else LDAOnly)
    assert out.hidden.shape == (3, 12, 16) and torch.equal(out.pad, items == 0)
    assert len(out.aggregate) == len(out.dispatch) == (2 if return_weights else 0)
    for agg, dis in zip(out.aggregate, out.dispatch):
        assert agg.shape == (3, 2, 4, 12) and dis.shape == (3, 2, 12, 4)
        assert (agg.permute(0, 3, 1, 2)[out.pad] == 0).all()  # experts never read padding
    if kind == "elastic-bidir":
        assert out.slots.shape == out.slot_scores.shape == (3, 4)
    else:
        assert out.slots is None and out.slot_scores is None
    scores = m.score(as_lists(items))
    assert scores.shape == (3, 41) and torch.isinf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_prediction_is_read_at_a_mask_after_the_history(kind):
    """prepare keeps the last max_len - 1 items and appends [MASK]; score reads the state there,
    not at the latest item (which the encoder sees as an input, not as a question)."""
    m = model(kind, max_len=8)
    assert m.mask_token == 41
    long, short = list(range(1, 21)), [5, 6]
    items = m.prepare([long, short])
    assert items.tolist() == [[14, 15, 16, 17, 18, 19, 20, 41], [0, 0, 0, 0, 0, 5, 6, 41]]
    hidden = m.encode(items).hidden[:, -1]
    expected = torch.einsum("bd,id->bi", hidden, m.item_repr()).float()
    torch.testing.assert_close(m.score([long, short])[:, 1:], expected[:, 1:])
    at_last_item = m.encode(items[:, :-1]).hidden[:, -1]
    assert not torch.allclose(hidden, at_last_item)
    assert m.item_repr().shape[0] == 41  # [MASK] is embedded but never recommended


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_cut_loss_reads_at_the_mask_like_score(kind):
    """`cut` appends [MASK] to the history before the cut: its logits are `score`'s."""
    m = model(kind)
    items, targets = histories(), torch.tensor([1, 2, 3])
    logits = m.score(as_lists(items))
    expected = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(m.loss(items, targets, "cut"), expected)


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_cloze_loss_is_cross_entropy_at_the_masked_positions(kind):
    m = model(kind, dtype=torch.float32, max_len=8)
    seqs = [np.arange(1, 12), np.arange(20, 26)]
    inputs, targets = Cloze(seqs, 8, 2, mask_token=m.mask_token).epoch(np.random.default_rng(0))[0]
    masked = targets != PAD
    assert torch.equal(inputs == m.mask_token, masked) and masked.any()
    loss = m.loss(inputs, targets, "cloze")
    logits = m.encode(inputs).hidden[masked] @ m.item_repr().T  # (masked positions, i)
    logits[:, PAD] = float("-inf")
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, targets[masked]))
    loss.backward()
    assert m.item_emb.weight.grad[m.mask_token].abs().sum() > 0  # [MASK] is an input that learns


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_lean_path_equals_weights_path(kind):
    m = model(kind)
    items = histories()
    lean, full = m.encode(items).hidden, m.encode(items, return_weights=True).hidden
    torch.testing.assert_close(lean, full, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir", "sasrec"])
def test_more_left_padding_changes_nothing(kind):
    m = model(kind)
    items = histories()
    extra = 7
    longer = torch.cat([torch.zeros(3, extra, dtype=items.dtype), items], dim=1)
    a, b = m.encode(items), m.encode(longer)
    keep = items != 0
    torch.testing.assert_close(b.hidden[:, extra:][keep], a.hidden[keep], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m.final_state(longer), m.final_state(items), rtol=1e-10,
                               atol=1e-10)  # fmt: skip
    if kind == "elastic-bidir":
        assert torch.equal(a.slots, b.slots)


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_a_user_does_not_depend_on_the_batch(kind):
    m = model(kind)
    users = as_lists(histories())
    torch.testing.assert_close(m.score(users[1:2]), m.score(users)[1:2])


def test_gradients_reach_memory_keys_query_and_only_retrieved_rows():
    m = model("elastic-bidir", dtype=torch.float32)
    items = histories()
    out = m.encode(m.readout(items))  # what the cut loss encodes: the history and [MASK]
    m.loss(items, torch.tensor([1, 2, 3]), "cut").backward()
    memory = m.memory
    for p in (memory.keys1, memory.keys2, memory.to_query.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    retrieved = torch.zeros(memory.num_slots, dtype=torch.bool)
    retrieved[out.slots.flatten()] = True
    assert torch.equal(memory.values.weight.grad.abs().sum(dim=1) > 0, retrieved)
    assert m.memory_parameters() == [memory.values.weight]


def test_lda_experts_learn_and_have_no_memory():
    m = model("lda-bidir", dtype=torch.float32)
    m.loss(histories(), torch.tensor([1, 2, 3]), "cut").backward()
    assert m.experts.weight.grad.abs().sum() > 0
    assert m.memory_parameters() == []


@pytest.mark.parametrize("kind", ["elastic-bidir", "lda-bidir"])
def test_all_positions_objective_is_refused(kind):
    m = model(kind)
    assert m.objectives == ("cloze", "cut") and m.default_objective == "cloze"
    with pytest.raises(ValueError, match="future"):
        m.loss(histories(), histories(), "all")


def test_bad_arguments():
    # the memory checks k <= M and c >= k when it is built
    with pytest.raises(ValueError, match="num_experts=40 is larger than the memory"):
        build_model(config(num_experts=40, subkeys=4))
    with pytest.raises(ValueError, match="smaller than num_experts"):
        build_model(config(num_experts=8, subkeys=16, candidates=4))
    assert build_model(config("lda-bidir", num_experts=40, subkeys=4)).experts.weight.shape == (
        40,
        16,
    )
    with pytest.raises(ValueError, match="not divisible by heads"):
        config(dim=10, heads=4)
    with pytest.raises(ValueError, match="empty"):
        model("elastic-bidir").encode(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="LDA-only has a fixed set"):
        model("lda-bidir").encode(histories(), num_experts=2)


@pytest.mark.parametrize("return_weights", [False, True], ids=["sdpa", "einsum"])
def test_forward_flops_grow_linearly(return_weights):
    cfg = config(max_len=8192, dim=8, heads=2, layers=1, subkeys=4)
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
    m = model("elastic-bidir", dtype=torch.float32)
    items = histories()
    assert count_flops(lambda: m.encode(items)) == count_flops(lambda: m.encode(items, True))


def test_a_million_slots_cost_almost_nothing_more():
    """ELASTIC forward at N = 200, default width: m = 1024 (M = 1M slots) vs m = 32."""
    items = histories(b=2, n=200, num_items=100)
    flops = {}
    for m in (32, 1024):
        # the default widths (d = 64, k = 32), not the tiny ones: the claim is about them
        cfg = ModelConfig(model="elastic-bidir", num_items=100, max_len=200, dropout=0.0,
                          memory=MemoryConfig(subkeys=m))  # fmt: skip
        torch.manual_seed(0)
        net = ELASTIC(cfg).eval()
        flops[m] = count_flops(lambda net=net: net.encode(items))
        del net
    assert flops[1024] <= 1.05 * flops[32], flops
