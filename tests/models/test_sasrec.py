"""SASRec: causality on both back-ends, naive == sdpa, quadratic attention cost, objectives."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import ModelConfig
from elastic_edu.models import SASRec, build_model
from tests.conftest import make_tiny_config


def config(**changes) -> ModelConfig:
    return make_tiny_config("sasrec", **{"max_len": 32, **changes})


def histories(b=3, n=12, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 41, (b, n), generator=g)
    for row in range(b):
        items[row, : 3 * row] = 0
    return items


def sasrec(backend: str, dtype=torch.float64, **changes) -> SASRec:
    torch.manual_seed(0)
    return build_model(config(attention=backend, **changes)).to(dtype).eval()


@pytest.mark.parametrize("backend", ["naive", "sdpa"])
def test_changing_the_future_leaves_the_past(backend):
    m = sasrec(backend)
    items = histories()
    t = 8
    changed = items.clone()
    changed[:, t + 1 :] = torch.randint(1, 41, changed[:, t + 1 :].shape)
    a, b = m.encode(items).hidden, m.encode(changed).hidden
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a[:, -1], b[:, -1])


def test_naive_equals_sdpa():
    naive, sdpa = sasrec("naive"), sasrec("sdpa")
    sdpa.load_state_dict(naive.state_dict())
    items = histories()
    torch.testing.assert_close(sdpa.encode(items).hidden, naive.encode(items).hidden)
    weights = naive.encode(items, return_weights=True).attention
    assert len(weights) == 2 and weights[0].shape == (3, 2, 12, 12)
    assert (weights[0].triu(diagonal=1) == 0).all()  # nothing above the diagonal


def test_attention_flops_quadruple_when_n_doubles():
    m = sasrec("naive", dtype=torch.float32, max_len=1024, dim=8, layers=1)
    g = torch.Generator().manual_seed(0)
    bmm = {}
    for n in (256, 512, 1024):
        items = torch.randint(1, 41, (1, n), generator=g)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            m.encode(items)
        bmm[n] = counter.get_flop_counts()["Global"][torch.ops.aten.bmm]  # q k^T and attn v
    assert bmm[512] == 4 * bmm[256] and bmm[1024] == 4 * bmm[512]


def test_objectives():
    m = sasrec("sdpa", dtype=torch.float32)
    items = histories()
    assert m.objectives == ("all", "cut")
    targets = torch.roll(items, -1, dims=1)
    assert torch.isfinite(m.loss(items, targets, "all"))
    assert torch.isfinite(m.loss(items, items[:, -1], "cut"))
    with pytest.raises(ValueError, match="supports"):
        m.loss(items, targets, "cloze")


def test_score_reads_the_state_after_the_latest_item():
    """Causal: no [MASK]; final_state is the last position, and score ranks with it."""
    m = sasrec("sdpa")
    users = [[3, 4, 5], [7]]
    items = m.prepare(users)
    assert items.tolist() == [[3, 4, 5], [0, 0, 7]]
    state = m.final_state(items)
    torch.testing.assert_close(state, m.encode(items).hidden[:, -1])
    expected = (state @ m.item_repr().T).float()
    torch.testing.assert_close(m.score(users)[:, 1:], expected[:, 1:])
