"""The sub-key load-balancing loss: 1 at uniform usage, larger when users crowd, differentiable."""

from __future__ import annotations

import torch

from elastic_edu.nn.product_keys import ProductKeyMemory, subkey_balance


def test_balance_is_one_when_usage_is_uniform_and_grows_with_crowding():
    b, m, c = 64, 8, 2
    rows = torch.arange(b)
    uniform = torch.zeros(b, m)
    uniform[rows, rows % m] = 5.0
    uniform[rows, (rows + 1) % m] = 5.0
    crowded = torch.zeros(b, m)
    crowded[:, :2] = 5.0
    assert abs(subkey_balance(uniform, uniform, c).item() - 1.0) < 0.05
    assert subkey_balance(crowded, crowded, c).item() > 3.0


def test_balance_gradient_reaches_the_query_network_and_the_keys():
    torch.manual_seed(0)
    memory = ProductKeyMemory(dim=16, key_dim=8, subkeys=4, num_experts=4, candidates=4)
    x = torch.randn(5, 7, 16)
    out = memory(x, torch.zeros(5, 7, dtype=torch.bool))
    out.balance.backward()
    assert memory.to_query.weight.grad.abs().sum() > 0
    assert memory.keys1.grad.abs().sum() > 0 and memory.keys2.grad.abs().sum() > 0
