"""Linear dispatcher attention (LDA), the layer of ELASTIC (Deng et al., arXiv 2408.09380).

The paper states only that k interest experts compress a long history in linear time; the
equations below are our decision (docs/DESIGN.md, "Linear dispatcher attention"). With the
history X (b, n, d), its padding mask and the experts E (b, e, d), one layer does

    aggregate (experts read the history)
        A = softmax_n((E Wq)(X Wk)^T / sqrt(d_h) + pad_mask)       (b, h, e, n)
        E <- E + out(A (X Wv))
    dispatch (every position reads the experts)
        D = softmax_e((X Wq')(E Wk')^T / sqrt(d_h))                (b, h, n, e)
        X <- X + out'(D (E Wv'))
    X <- X + FFN(norm X)

Each score tensor holds b h n e entries, so time is O(b n e d) and memory O(b n e): linear in n,
against O(b n^2 d) and O(b h n^2) for full self-attention. A position reads only the experts,
and the experts read padding with weight zero, so a padded position never changes another one.

Both steps are one call of `elastic_edu.nn.attention.attend` each: with ``return_weights=False``
torch's fused ``scaled_dot_product_attention`` (no score tensor kept beyond what autograd needs);
with ``return_weights=True`` the einops ``einsum`` softmax, which returns A and D for plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from elastic_edu.nn.attention import FeedForward, attend


@dataclass
class DispatcherOutput:
    """New states of one dispatcher layer; the weights only when asked for.

    x: (b, n, d) history states. experts: (b, e, d) expert states.
    aggregate: (b, h, e, n) how much each expert reads each position (rows sum to 1 over n).
    dispatch: (b, h, n, e) how much each position reads each expert (rows sum to 1 over e);
        its argmax over e is the position's expert assignment.
    """

    x: torch.Tensor
    experts: torch.Tensor
    aggregate: torch.Tensor | None = None
    dispatch: torch.Tensor | None = None


class Projections(nn.Module):
    """The projections of one multi-head attention step: to_q, to_kv, to_out."""

    def __init__(self, dim: int):
        super().__init__()
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)


class DispatcherAttention(nn.Module):
    """The two attention steps of one LDA layer, each a pre-norm residual update.

    `aggregate` and `dispatch` are the bare attention steps (inputs already normalised);
    `forward` chains them: experts are updated first, then the positions read the new experts.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads={heads} must be at least 1")
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.aggregate_proj = Projections(dim)  # queries: experts; keys, values: history
        self.dispatch_proj = Projections(dim)  # queries: history; keys, values: experts
        self.norm_x = nn.LayerNorm(dim)  # the history, read by both steps
        self.norm_e1 = nn.LayerNorm(dim)  # experts before they read
        self.norm_e2 = nn.LayerNorm(dim)  # experts after they read, before being read
        self.drop = nn.Dropout(dropout)

    def _p(self) -> float:
        return self.dropout if self.training else 0.0

    def aggregate(self, x, experts, pad, return_weights: bool = False):
        """Experts read the history. x (b, n, d), experts (b, e, d), pad (b, n) True at padding.

        Returns out(E') (b, e, d) and, when asked, the weights (b, h, e, n).
        """
        proj = self.aggregate_proj
        q = rearrange(proj.to_q(experts), "b e (h d) -> b h e d", h=self.heads)
        k, v = rearrange(proj.to_kv(x), "b n (two h d) -> two b h n d", two=2, h=self.heads)
        keep = rearrange(~pad, "b n -> b 1 1 n")  # True where a key may be read
        out, weights = attend(q, k, v, keep, self._p(), return_weights)  # weights (b, h, e, n)
        return proj.to_out(rearrange(out, "b h e d -> b e (h d)")), weights

    def dispatch(self, x, experts, return_weights: bool = False):
        """Positions read the experts. x (b, n, d), experts (b, e, d).

        Returns out(X') (b, n, d) and, when asked, the weights (b, h, n, e).
        """
        proj = self.dispatch_proj
        q = rearrange(proj.to_q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(proj.to_kv(experts), "b e (two h d) -> two b h e d", two=2, h=self.heads)
        out, weights = attend(q, k, v, None, self._p(), return_weights)  # weights (b, h, n, e)
        return proj.to_out(rearrange(out, "b h n d -> b n (h d)")), weights

    def forward(self, x, experts, pad, return_weights: bool = False) -> DispatcherOutput:
        """x (b, n, d), experts (b, e, d), pad (b, n) -> DispatcherOutput.

        Every history needs at least one non-padding position (the aggregate softmax is over n).
        """
        h = self.norm_x(x)
        # aggregate: E <- E + out(E')
        a, agg_w = self.aggregate(h, self.norm_e1(experts), pad, return_weights)
        experts = experts + self.drop(a)
        # dispatch: X <- X + out(X'), reading the updated experts
        d, dis_w = self.dispatch(h, self.norm_e2(experts), return_weights)
        x = x + self.drop(d)
        return DispatcherOutput(x=x, experts=experts, aggregate=agg_w, dispatch=dis_w)


class DispatcherBlock(nn.Module):
    """One ELASTIC layer: dispatcher attention, then a pre-norm position-wise feed-forward."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = DispatcherAttention(dim, heads, dropout)
        self.norm = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, experts, pad, return_weights: bool = False) -> DispatcherOutput:
        """x (b, n, d), experts (b, e, d), pad (b, n) -> DispatcherOutput, the experts
        updated by the layer."""
        out = self.attn(x, experts, pad, return_weights)
        out.x = out.x + self.drop(self.ff(self.norm(out.x)))
        return out
