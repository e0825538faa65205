"""Attention (Vaswani et al. 2017): `attend`, the one softmax-attention step, and the causal
multi-head self-attention SASRec uses (Kang & McAuley 2018).

    attn = softmax(Q K^T / sqrt(d_h) + mask) ;  out = attn V

Every layer whose read is this step calls `attend`: SASRec's self-attention and both steps of
the bidirectional dispatcher (`elastic_edu.nn.dispatcher`). The causal dispatcher's read is not
one softmax over one set of keys per query (each position reads prefix-normalised running
averages of the experts, `elastic_edu.nn.chunkwise`), so it has its own kernel.

`attend` owns the choice of kernel: torch's fused scaled_dot_product_attention (a flash or
memory-efficient kernel where available, no score tensor kept) or the explicit einsum softmax,
which materialises the (b, h, q, k) weights and returns them for plots. SASRec's ``naive``
back-end always takes the explicit path (the quadratic wall ELASTIC removes); ``sdpa`` the fused
one unless the weights are asked for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn


def attention_mask(pad: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Boolean (b, 1, n, n) mask, True where query position q may read key position k.

    pad: (b, n) True at padding. Keys that are padding are never read; with `causal` a query
    reads only keys at or before it. A padded query still reads itself so no row is empty.
    """
    n = pad.shape[1]
    allowed = ~rearrange(pad, "b n -> b 1 1 n")
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=pad.device).tril()
    eye = torch.eye(n, dtype=torch.bool, device=pad.device)
    return allowed | eye  # (b, 1, n, n)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout: float = 0.0,
    return_weights: bool = False,
    causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q (b, h, i, d), k and v (b, h, j, d) -> out (b, h, i, d) and weights (b, h, i, j) or None.

    mask: boolean, broadcastable to (b, h, i, j), True where query i may read key j; causal:
    query i reads keys j <= i only (combined with `mask` when both are given). Every query must
    be allowed at least one key. dropout: on the weights (pass 0.0 at evaluation).
    return_weights=False calls the fused kernel with exactly the arguments given (``is_causal``
    alone lets torch pick its flash kernel); True runs the explicit einsum path and returns the
    weights before dropout.
    """
    if causal and mask is not None:  # the fused kernel takes one or the other
        i, j = q.shape[-2], k.shape[-2]
        mask = mask & torch.ones(i, j, dtype=torch.bool, device=q.device).tril()
        causal = False
    if not return_weights:
        kwargs = {"attn_mask": mask} if mask is not None else {"is_causal": True} if causal else {}
        return F.scaled_dot_product_attention(q, k, v, **kwargs, dropout_p=dropout), None
    sim = einsum(q, k, "b h i d, b h j d -> b h i j") * q.shape[-1] ** -0.5
    if causal:
        mask = torch.ones(sim.shape[-2:], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        sim = sim.masked_fill(~mask, float("-inf"))  # (b, h, i, j)
    weights = sim.softmax(dim=-1)
    out = einsum(F.dropout(weights, dropout), v, "b h i j, b h j d -> b h i d")
    return out, weights


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask and a choice of back-end."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, backend: str = "sdpa"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        if backend not in ("naive", "sdpa"):
            raise ValueError(f"backend={backend!r}: choose 'naive' or 'sdpa'")
        self.heads, self.backend, self.dropout = heads, backend, dropout
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, pad: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (b, n, d), pad: (b, n) -> out (b, n, d) and weights (b, h, n, n) when asked."""
        q, k, v = rearrange(
            self.to_qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads
        )
        p = self.dropout if self.training else 0.0
        # no padding: the causal flag alone lets torch pick its flash kernel
        causal_only = not pad.any()
        mask = None if causal_only else attention_mask(pad, causal=True)
        explicit = return_weights or self.backend == "naive"
        out, weights = attend(q, k, v, mask, p, return_weights=explicit, causal=causal_only)
        weights = weights if return_weights else None
        return self.to_out(rearrange(out, "b h n d -> b n (h d)")), weights


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> GELU -> Dropout -> Linear.

    Without autograd (inference) long sequences go through in chunks of `chunk` positions: the
    same function, but the (b, n, 4d) hidden tensor never exists whole, so it stays in cache.
    """

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0, chunk: int = 1024):
        super().__init__()
        self.chunk = chunk
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.shape[1] <= self.chunk:
            return self.net(x)
        return torch.cat([self.net(part) for part in x.split(self.chunk, dim=1)], dim=1)


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + ff(norm(x))."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, backend: str = "sdpa"):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, dropout, backend)
        self.ff = FeedForward(dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, pad: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, weights = self.attn(self.norm1(x), pad, return_weights)
        x = x + self.drop(a)
        x = x + self.drop(self.ff(self.norm2(x)))
        return x, weights
