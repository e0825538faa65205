"""Counting floating-point operations: PyTorch's count of one call, on the meta device.

FLOPs are those of matrix products, 2 per multiply-add, as `FlopCounterMode` counts them (the
per-layer formulas are in `elastic_edu.nn.flops`, each model's sum in its `flops` method). On
the meta device nothing is computed or allocated (shapes only), so a length that would not fit
in memory still gets its cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode


class CountTimeout(TimeoutError):
    """`count_flops` passed its deadline."""


class _MetaScalars(TorchDispatchMode):
    """On the meta device a data-dependent check (``if pad.any():``) has no value: say False
    (and 0 for a number), the branch taken by inputs without padding. Past `deadline`
    (``time.perf_counter()``) any op raises CountTimeout."""

    def __init__(self, deadline: float = math.inf):
        super().__init__()
        self.deadline = deadline

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if time.perf_counter() > self.deadline:
            raise CountTimeout("counting FLOPs took longer than its time limit")
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            return False if args[0].dtype == torch.bool else 0
        return func(*args, **(kwargs or {}))


def count_flops(fn: Callable[[], object], deadline: float = math.inf) -> int:
    """Matrix-product FLOPs of one call ``fn()``, counted by `FlopCounterMode`.

    Build the model and inputs under ``with torch.device("meta"):`` and nothing is computed or
    allocated; data-dependent checks then read as False (no padding, no underflow). On a real
    device it counts too, but torch's fused CPU attention kernel is not in its table and counts
    zero, one more reason to count on meta. Past `deadline` (a ``time.perf_counter()`` value)
    it raises CountTimeout: a very long history costs time on meta too, one op at a time.
    """
    with _MetaScalars(deadline), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())
