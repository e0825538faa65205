"""Cost formulas and a timer the notebooks share: FLOPs by formula, bytes of a score matrix.

FLOPs count the matrix products of one layer's forward pass (a multiply-add is 2 FLOPs), as
``torch.utils.flop_counter.FlopCounterMode`` counts them; softmax, norms and other element-wise
work are left out. Axis letters as in the package docstring: b batch, n history length N,
d width, e experts (k of them), m sub-keys per half of a product-key memory.

- Causal self-attention (SASRec): Q, K, V and the output projection 8·b·n·d², the n x n scores
  and the weighted values 4·b·n²·d: quadratic in n.
- Linear dispatcher attention (ELASTIC, **our** layer equations, docs/DESIGN.md): aggregate and
  dispatch each project both sides and contract k x n scores: 8·b·n·d² + 8·b·k·d² + 8·b·n·k·d,
  linear in n; it does fewer FLOPs than self-attention for n > `dispatcher_crossover(k, d)`.
- Product-key retrieval: 2m sub-key scores of width d_k/2 per user, against M = m² full keys of
  width d_k for brute force.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch


def attention_flops(b: int, n: int, d: int) -> int:
    """Matrix-product FLOPs of one causal self-attention layer: 8bnd² + 4bn²d."""
    return 8 * b * n * d * d + 4 * b * n * n * d


def dispatcher_flops(b: int, n: int, k: int, d: int) -> int:
    """Matrix-product FLOPs of one dispatcher attention layer: 8bnd² + 8bkd² + 8bnkd."""
    return 8 * b * n * d * d + 8 * b * k * d * d + 8 * b * n * k * d


def dispatcher_crossover(k: int, d: int) -> float:
    """The n above which a dispatcher layer does fewer FLOPs than self-attention.

    Setting the two formulas equal, 4n²d = 8kd² + 8nkd, gives n² - 2kn - 2kd = 0, so
    n = k + sqrt(k² + 2kd).
    """
    return k + math.sqrt(k * k + 2 * k * d)


def product_key_flops(m: int, key_dim: int, users: int = 1) -> int:
    """Matrix-product FLOPs of a product-key search: 2m sub-keys of width key_dim/2 per user."""
    return 2 * users * m * key_dim


def bruteforce_key_flops(m: int, key_dim: int, users: int = 1) -> int:
    """Matrix-product FLOPs of scoring all M = m² keys of width key_dim per user."""
    return 2 * users * m * m * key_dim


def score_matrix_bytes(b: int, h: int, n: int, bytes_per_number: int = 4) -> int:
    """Memory of the (b, h, n, n) attention weights of one layer (float32: 4 bytes a number)."""
    return b * h * n * n * bytes_per_number


def median_ms(
    fn: Callable[[], object], repeats: int = 5, device: torch.device | str | None = None
) -> float:
    """Median wall time of ``fn()`` in milliseconds over `repeats` calls, after one warm-up call.

    On a CUDA `device` the clock waits for the queued kernels before and after each call.
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: need at least one timed call")
    cuda = device is not None and torch.device(device).type == "cuda"
    times = []
    for r in range(repeats + 1):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        if r:  # the first call warms up
            times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)
