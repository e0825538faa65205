"""GRU4Rec: causal, blind to left padding, trained on every position."""

from __future__ import annotations

import torch

from elastic_edu.models import GRU4Rec, build_model
from tests.conftest import make_tiny_config


def gru(**changes) -> GRU4Rec:
    torch.manual_seed(0)
    return build_model(make_tiny_config("gru4rec", **changes)).double().eval()


def test_changing_the_future_leaves_the_past():
    m = gru()
    items = torch.randint(1, 41, (3, 12), generator=torch.Generator().manual_seed(0))
    items[1, :4] = 0
    changed = items.clone()
    changed[:, 7:] = torch.randint(1, 41, (3, 5))
    a, b = m.encode(items).hidden, m.encode(changed).hidden
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-12)
    assert (a[:, -1] - b[:, -1]).abs().max() > 1e-4


def test_left_padding_changes_nothing():
    m = gru()
    items = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[0, 0, 0, 5, 6, 7, 8]])
    torch.testing.assert_close(m.encode(items).hidden[:, -4:], m.encode(padded).hidden[:, -4:])
    assert (m.encode(padded).hidden[:, :3] == 0).all()


def test_a_user_does_not_depend_on_the_batch():
    m = gru()
    a = m.score([[1, 2, 3], [4, 5, 6, 7, 8, 9]])
    torch.testing.assert_close(a[0], m.score([[1, 2, 3]])[0])
    torch.testing.assert_close(a[1], m.score([[4, 5, 6, 7, 8, 9]])[0])


def test_loss_on_every_position_reaches_every_weight():
    m = gru(dropout=0.2).float().train()
    items = torch.randint(1, 41, (4, 10))
    loss = m.loss(items, torch.roll(items, -1, 1), "all")
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())
