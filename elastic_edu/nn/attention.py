"""Causal multi-head self-attention (Vaswani et al. 2017), as SASRec uses it (Kang & McAuley 2018).

    attn = softmax(Q K^T / sqrt(d_h) + causal_and_padding_mask) ;  out = attn V

Two back-ends compute the same function: ``naive`` materialises the (b, h, n, n) score matrix,
the quadratic wall ELASTIC removes; ``sdpa`` calls torch's fused scaled_dot_product_attention
(a memory-efficient / flash kernel where available).
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
        if self.backend == "sdpa" and not return_weights:
            # no padding: the causal flag alone lets torch pick its flash kernel (meta tensors,
            # used to count FLOPs, hold no values to check and take the masked path)
            if pad.device.type != "meta" and not pad.any():
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
            else:
                mask = attention_mask(pad, causal=True)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
            weights = None
        else:
            mask = attention_mask(pad, causal=True)
            sim = einsum(q, k, "b h n d, b h m d -> b h n m") * q.shape[-1] ** -0.5
            sim = sim.masked_fill(~mask, float("-inf"))
            weights = sim.softmax(dim=-1)  # (b, h, n, m)
            out = einsum(F.dropout(weights, p), v, "b h n m, b h m d -> b h n d")
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
