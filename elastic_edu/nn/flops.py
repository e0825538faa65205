"""What each layer costs in floating-point operations, by formula.

FLOPs here are those of matrix products, 2 per multiply-add, which is what
`torch.utils.flop_counter.FlopCounterMode` counts (softmax, norms and other element-wise work are
left out; `elastic_edu.bench.flops.count_flops` lets PyTorch count, and the tests hold every
formula to its count). For a batch of b histories of length n, width d, k experts and h heads
(heads split d, so they do not change the count), one layer's attention costs

    self-attention (SASRec)               8 b n d^2 + 4 b n^2 d          quadratic in n
    dispatcher attention (ELASTIC, LDA)   8 b n d^2 + 8 b k d^2 + 8 b n k d          linear in n
    causal dispatcher attention          10 b n d^2 + 8 b k d^2 + 10 b n k d + 4 b n C (d + h k)
                                         + smaller terms (chunks of C <= 32 positions)

and every block adds a feed-forward of 16 b n d^2 (d -> 4d -> d). A contraction over an axis of
size 1 runs as an element-wise product, which the counter leaves out. Each model adds up the
formulas of its own layers (its `flops` method, `elastic_edu.models`).
"""

from __future__ import annotations

import math

from elastic_edu.nn.chunkwise import chunk_size


def self_attention_flops(b: int, n: int, d: int) -> int:
    """One causal self-attention layer: 8 b n d^2 + 4 b n^2 d.

    Q, K, V and output projections 8 b n d^2; scores Q K^T 2 b n^2 d; weights times V 2 b n^2 d
    (the full n x n products: a causal kernel may skip the upper half, the count does not).
    """
    return 8 * b * n * d * d + 4 * b * n * n * d


def dispatcher_flops(b: int, n: int, k: int, d: int) -> int:
    """One dispatcher attention layer (aggregate, then dispatch): 8 b n d^2 + 8 b k d^2 + 8 b n k d.

    aggregate: expert queries 2 b k d^2, history keys and values 4 b n d^2, k x n scores and
    reads 4 b n k d, expert outputs 2 b k d^2; dispatch: history queries 2 b n d^2, expert keys
    and values 4 b k d^2, n x k scores and reads 4 b n k d, outputs 2 b n d^2.
    """
    return 8 * b * n * d * d + 8 * b * k * d * d + 8 * b * n * k * d


def causal_dispatcher_flops(b: int, n: int, k: int, d: int, heads: int) -> int:
    """One causal dispatcher layer, computed chunk by chunk (`elastic_edu.nn.chunkwise`):

        10 b n d^2 + 8 b k d^2 + 2 b k d (h + 1)       projections
      + 10 b n' k d + 2 b n' k h                       scores, route . key, chunk sums, reads
      + 4 b n' C (d + h k)                             the masked C x C products inside chunks
      + 2 b (G - 1) g k (d + h)                        the carry's hand-overs between groups

    history keys, values, routes and gates 8 b n d^2, outputs 2 b n d^2; expert queries, own
    keys and values, dispatch keys 8 b k d^2, recency rates 2 b k d h, own scores 2 b k d. With
    chunks of C = chunk_size(n) positions and n' = the window rounded up to whole chunks: content
    scores, route . key, the gate against the carried states, and the read of the carried states
    2 b n' k d each; the chunk sums of the values and their normaliser 2 b n' k (d + h); per chunk
    g v^T and (P u^T) v 2 b n' C d each, (g v^T) u and P u^T 2 b n' C h k each. The carry of the
    J = n' / C chunk states runs in G groups of g = isqrt(J - 1) + 1 chunks
    (`elastic_edu.nn.chunkwise.carry_states`): each group but the last hands its chunks' sums on,
    a weighted sum over g chunks of (d_h + 1)-vectors per expert and head. Linear in n for a
    fixed C; inference on windows longer than SLICE runs in slices, which may round n' otherwise.
    """
    size = chunk_size(n)
    chunks = math.ceil(n / size)
    padded = chunks * size
    group = math.isqrt(chunks - 1) + 1 if chunks > 1 else 1
    groups = math.ceil(chunks / group)
    projections = 10 * b * n * d * d + 8 * b * k * d * d + 2 * b * k * d * (heads + 1)
    return (
        projections
        + 10 * b * padded * k * d
        + 2 * b * padded * k * heads
        + (4 * b * padded * size * (d + heads * k))
        + 2 * b * (groups - 1) * group * k * (d + heads)
    )


def feedforward_flops(b: int, n: int, d: int, mult: int = 4) -> int:
    """The position-wise feed-forward d -> mult d -> d: 4 mult b n d^2 (16 b n d^2)."""
    return 4 * mult * b * n * d * d


def retrieval_flops(b: int, c: int, d: int, key_dim: int, subkeys: int) -> int:
    """Product-key retrieval: 2 b c d + 2 b d d_k + 2 b m d_k.

    pooling c positions 2 b c d (c = 1 is a plain product, which the counter leaves out), the
    query projection 2 b d d_k, both halves' m sub-key scores 2 b m d_k; the c x c candidate
    sums and the top-k are not matrix products.
    """
    return (2 * b * c * d if c > 1 else 0) + 2 * b * d * key_dim + 2 * b * subkeys * key_dim


def dispatcher_crossover(k: int, d: int) -> float:
    """The n above which a dispatcher layer does fewer FLOPs than self-attention.

    Setting 4 n^2 d = 8 k d^2 + 8 n k d gives n^2 - 2 k n - 2 k d = 0, so n = k + sqrt(k^2 + 2kd).
    """
    return k + math.sqrt(k * k + 2 * k * d)


def bruteforce_key_flops(m: int, key_dim: int, users: int = 1) -> int:
    """Scoring all M = m^2 memory keys of width key_dim per user: 2 users m^2 key_dim (what the
    product-key search avoids; its own sub-key scores cost 2 users m key_dim)."""
    return 2 * users * m * m * key_dim


def product_key_flops(m: int, key_dim: int, users: int = 1) -> int:
    """The product-key search's sub-key scores: 2m sub-keys of width key_dim/2 per user."""
    return 2 * users * m * key_dim


def score_matrix_bytes(b: int, h: int, n: int, bytes_per_number: int = 4) -> int:
    """Memory of one layer's (b, h, n, n) attention weights (float32: 4 bytes a number)."""
    return b * h * n * n * bytes_per_number
