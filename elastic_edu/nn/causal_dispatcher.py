"""Causal dispatcher attention: ELASTIC's linear dispatcher attention made causal (ours).

The paper's dispatcher (arXiv 2408.09380; `elastic_edu.nn.dispatcher`) lets k experts read the
whole history, so position t sees items after t. Here each expert's summary is a running,
prefix-normalised softmax average, so position t reads only what happened up to t
(docs/DESIGN.md, "Causal dispatcher attention"). Per head, with experts E (fixed for the window)
and history states x_1..x_n:

    query of expert e        q_e = E_e Wq               its own entry: k_e0 = E_e Wk, v_e0 = E_e Wv
    score of item s          a_es = q_e . (x_s Wk) / sqrt(d_h) + lambda_e * s
    summary at t             A_e(t) = (exp(a_e0) v_e0 + sum_{s<=t} exp(a_es) x_s Wv)
                                      / (exp(a_e0) + sum_{s<=t} exp(a_es))
    dispatch at t            D_te = softmax_e((x_t Wr) . (E_e Wc) + (x_t Wg) . A_e(t)) / sqrt(d_h))
    output at t              out(sum_e D_te A_e(t))

- The expert queries depend on the window's experts only, never on positions, so the sums over
  s <= t are cumulative sums: O(n e d) time and memory, computed for every t at once.
- lambda_e = MAX_RATE * sigmoid(w . E_e) in [0, MAX_RATE] is a recency rate: the weight of item
  s grows like exp(lambda_e s), so an expert with a large rate summarises the last few items and
  one with rate 0 the whole prefix. Softmax over s <= t ignores any offset of s, so a history
  needs no position embedding, and a state carried event by event (`LayerState`) gives the same
  summaries as the whole window.
- The expert's own entry (k_e0, v_e0) is always in the sum: the softmax is never empty, and a
  history of one item is already a mixture of prior and evidence.
- The dispatch score adds a content term (x_t Wg) . A_e(t): moving the projection onto the
  query side avoids a (position, expert) d x d projection of A.
- Stability: the cumulative sums run over chunks of CHUNK positions, each weighted relative to its
  own largest score, with what came before carried in as a running average and weight, so exp()
  only spans the scores of one chunk; if a prefix's weights still underflow (scores within a chunk
  spread over more than ~80 in float32) the layer recomputes in float64, and raises if even that
  underflows. The event-by-event state keeps an exact running maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from elastic_edu.nn.attention import FeedForward


def prefix_softmax_average(
    scores: torch.Tensor,
    values: torch.Tensor,
    own_score: torch.Tensor,
    own_value: torch.Tensor,
) -> torch.Tensor:
    """Every prefix's softmax average: (b, h, n, e, d).

    scores (b, h, e, n), -inf at padding; values (b, h, n, d); own_score (b, h, e) and
    own_value (b, h, e, d) are each expert's own entry, part of every prefix.
    out[:, :, t, e] = sum over {own} + {s <= t} of softmax(score) * value. Computed in float32
    (float64 inputs stay float64); see the module docstring for the stability guard. The
    positions come before the experts so that each position's read of the experts is a
    plain batched matrix product.
    """
    return torch.cat(prefix_average_parts(scores, values, own_score, own_value), dim=2)


def prefix_average_parts(scores, values, own_score, own_value) -> list[torch.Tensor]:
    """`prefix_softmax_average` as a list of chunks of CHUNK positions, (b, h, c, e, d) each."""
    dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
    args = (scores, values, own_score, own_value)
    parts = _prefix_average(*(a.to(dtype) for a in args))
    if parts is None and dtype == torch.float32:
        parts = _prefix_average(*(a.double() for a in args))
        parts = None if parts is None else [p.float() for p in parts]
    if parts is None:
        raise FloatingPointError(
            "causal dispatcher: the scores of one window span more than exp() can represent "
            "(a prefix has all its weights underflow); the weights have diverged"
        )
    return parts


MAX_RATE = 2.0  # the largest recency rate: an item weighs e^-2 of the one after it
CHUNK = 32  # positions per reference: bounds the spread of scores exp() must hold


def _prefix_average(scores, values, own_score, own_value) -> list[torch.Tensor] | None:
    """Chunks of CHUNK positions, each weighted relative to its own largest score (and what came
    before): within a chunk the recency term spreads the scores by at most MAX_RATE * CHUNK.
    What came before enters a chunk as its own entry: the running average so far, weighted by the
    running sum of weights. Returns None when a prefix's weights all underflow."""
    carry_ref, carry_w, carry_v = own_score.detach(), torch.ones_like(own_score), own_value
    parts = []
    for lo in range(0, scores.shape[-1], CHUNK):
        a = scores[..., lo : lo + CHUNK]  # (b, h, e, c)
        ref = torch.maximum(a.amax(dim=-1), carry_ref).detach()  # (b, h, e)
        w = rearrange(torch.exp(a - ref[..., None]), "b h e n -> b h n e")
        w_own = carry_w * torch.exp(carry_ref - ref)  # (b, h, e)
        with torch.no_grad():
            if ((w.cumsum(dim=2) + w_own[:, :, None]) == 0).any():
                return None
        part = PrefixAverage.apply(w, w_own, values[:, :, lo : lo + CHUNK], carry_v)
        carry_ref, carry_w, carry_v = ref, w_own + w.sum(dim=2), part[:, :, -1]
        parts.append(part)
    return parts


class PrefixAverage(torch.autograd.Function):
    """A(t) = (w_own v_own + sum_{s<=t} w_s v_s) / (w_own + sum_{s<=t} w_s), for every t.

    w (b, h, n, e) and w_own (b, h, e) are positive weights, values (b, h, n, d), own_value
    (b, h, e, d) -> A (b, h, n, e, d). The same function as the three lines

        num = w[..., None] * values[:, :, :, None] ; num[:, :, 0] += w_own[..., None] * own_value
        A = num.cumsum(dim=2) / (w.cumsum(dim=2) + w_own[:, :, None])[..., None]

    with a hand-written backward, so that one training step holds two tensors of size
    (b, h, n, e, d) instead of six (tests/nn/test_causal_dispatcher.py checks the gradients
    against autograd of those lines). With G = dL/dA, gN = G / den and R = reverse cumulative
    sums over positions:
        dL/dvalues_s = sum_e w_se R[gN]_se      dL/dw_se = values_s . R[gN]_se + R[gD]_se
        where gD_te = -(G_te . A_te) / den_te.
    """

    @staticmethod
    def forward(ctx, w, w_own, values, own_value):
        den = w.cumsum(dim=2) + w_own[:, :, None]  # (b, h, n, e)
        num = w[..., None] * values[:, :, :, None]  # (b, h, n, e, d)
        num[:, :, 0] += w_own[..., None] * own_value
        out = num.cumsum_(dim=2).div_(den[..., None])
        ctx.save_for_backward(w, w_own, values, own_value, den, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        w, w_own, values, own_value, den, out = ctx.saved_tensors
        g_num = grad / den[..., None]  # (b, h, n, e, d)
        g_den = -einsum(grad, out, "b h n e d, b h n e d -> b h n e") / den
        tail = g_num.flip(2).cumsum_(dim=2).flip(2)  # sum over t >= s
        tail_den = g_den.flip(2).cumsum(dim=2).flip(2)  # (b, h, n, e)
        g_values = einsum(w, tail, "b h n e, b h n e d -> b h n d")
        g_w = einsum(values, tail, "b h n d, b h n e d -> b h n e") + tail_den
        first = tail[:, :, 0]  # (b, h, e, d): every prefix holds the own entry
        g_own_w = einsum(own_value, first, "b h e d, b h e d -> b h e") + tail_den[:, :, 0]
        g_own_value = w_own[..., None] * first
        return g_w, g_own_w, g_values, g_own_value


@dataclass
class CausalDispatcherOutput:
    """x: (b, n, d) new states; aggregate: (b, h, e, n) each expert's weight on each item in
    the whole-window prefix (t = n), dispatch: (b, h, n, e), both only when asked."""

    x: torch.Tensor
    aggregate: torch.Tensor | None = None
    dispatch: torch.Tensor | None = None


@dataclass
class LayerState:
    """One layer's running summaries for a batch of streams (the recurrent form).

    terms: what stays fixed for the window (`CausalDispatcherAttention.expert_terms`).
    top (b, h, e): running maximum score; den (b, h, e): sum of exp(score - top);
    num (b, h, e, d): sum of exp(score - top) * value. Size e x (d_h + 2) per head.
    """

    terms: dict[str, torch.Tensor]
    top: torch.Tensor
    den: torch.Tensor
    num: torch.Tensor


class CausalDispatcherAttention(nn.Module):
    """Experts summarise every prefix; each position reads the experts' summaries at its time."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.to_q = nn.Linear(dim, dim, bias=False)  # experts -> aggregate queries
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)  # history (and experts) -> keys, values
        self.to_route = nn.Linear(dim, 2 * dim, bias=False)  # history -> dispatch queries
        self.to_expert_key = nn.Linear(dim, dim, bias=False)  # experts -> dispatch keys
        self.to_rate = nn.Linear(dim, heads)  # experts -> recency rates in [0, MAX_RATE]
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_rate.weight)
        nn.init.constant_(self.to_rate.bias, -3.66)  # 2 * sigmoid(-3.66) = 0.05 per item

    def expert_terms(self, experts: torch.Tensor) -> dict[str, torch.Tensor]:
        """experts (b, e, d), normalised -> what stays fixed for the window, per head."""
        h = self.heads
        q = rearrange(self.to_q(experts), "b e (h d) -> b h e d", h=h)
        k0, v0 = rearrange(self.to_kv(experts), "b e (two h d) -> two b h e d", two=2, h=h)
        key = rearrange(self.to_expert_key(experts), "b e (h d) -> b h e d", h=h)
        rate = rearrange(MAX_RATE * torch.sigmoid(self.to_rate(experts)), "b e h -> b h e")
        own = einsum(q, k0, "b h e d, b h e d -> b h e") * q.shape[-1] ** -0.5
        return {"q": q, "own_score": own, "own_value": v0, "key": key, "rate": rate}

    def forward(
        self,
        x: torch.Tensor,
        experts: torch.Tensor,
        pad: torch.Tensor,
        return_weights: bool = False,
    ) -> CausalDispatcherOutput:
        """x (b, n, d), experts (b, e, d), both normalised; pad (b, n) True at padding."""
        h, terms = self.heads, self.expert_terms(experts)
        k, v = rearrange(self.to_kv(x), "b n (two h d) -> two b h n d", two=2, h=h)
        time = (~pad).cumsum(dim=1).to(x.dtype)  # (b, n): 1, 2, ... from the first item
        scores = einsum(terms["q"], k, "b h e d, b h n d -> b h e n") * k.shape[-1] ** -0.5
        scores = scores + terms["rate"][..., None] * rearrange(time, "b n -> b 1 1 n")
        scores = scores.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf"))
        parts = prefix_average_parts(scores, v, terms["own_score"], terms["own_value"])
        outs, dispatch = [], []  # each chunk of positions reads its experts' summaries
        for lo, part in zip(range(0, x.shape[1], CHUNK), parts):  # part (b, h, c, e, d)
            o, d = self._dispatch(x[:, lo : lo + CHUNK], terms, part.to(x.dtype))
            outs.append(o)
            dispatch.append(d)
        out, dispatch = torch.cat(outs, dim=1), torch.cat(dispatch, dim=2)
        aggregate = None
        if return_weights:  # each expert's weights over the items, as the last position sees them
            ref = torch.maximum(scores.amax(-1), terms["own_score"])[..., None]
            w = torch.exp(scores - ref)
            aggregate = w / (
                w.sum(-1, keepdim=True) + torch.exp(terms["own_score"][..., None] - ref)
            )
        return CausalDispatcherOutput(
            x=out, aggregate=aggregate, dispatch=dispatch if return_weights else None
        )

    def _dispatch(self, x, terms, summary):
        """Position t reads the experts' summaries at t: x (b, n, d), summary (b, h, n, e, d)."""
        h = self.heads
        route, gate = rearrange(self.to_route(x), "b n (two h d) -> two b h n d", two=2, h=h)
        sim = einsum(route, terms["key"], "b h n d, b h e d -> b h n e")
        sim = sim + einsum(gate, summary, "b h n d, b h n e d -> b h n e")
        dispatch = (sim * route.shape[-1] ** -0.5).softmax(dim=-1)  # (b, h, n, e)
        attn = F.dropout(dispatch, self.dropout if self.training else 0.0)
        out = einsum(attn, summary, "b h n e, b h n e d -> b h n d")
        return self.to_out(rearrange(out, "b h n d -> b n (h d)")), dispatch

    # ---- the recurrent form: one event at a time -------------------------------------------
    def start(self, experts: torch.Tensor) -> LayerState:
        """experts (b, e, d), normalised -> the state before any event (own entries only)."""
        terms = self.expert_terms(experts)
        own = terms["own_score"]
        return LayerState(terms=terms, top=own, den=torch.ones_like(own),
                          num=terms["own_value"].clone())  # fmt: skip

    def step(
        self, x: torch.Tensor, state: LayerState, time: torch.Tensor
    ) -> tuple[torch.Tensor, LayerState]:
        """x (b, d) the new event's normalised state, time (b,) its 1-based index in the stream.

        Returns the output (b, d) at this event and the updated state: O(e d) per head, however
        long the stream already is.
        """
        terms = state.terms
        k, v = rearrange(self.to_kv(x), "b (two h d) -> two b h d", two=2, h=self.heads)
        score = einsum(terms["q"], k, "b h e d, b h d -> b h e") * k.shape[-1] ** -0.5
        score = score + terms["rate"] * rearrange(time.to(score.dtype), "b -> b 1 1")
        top = torch.maximum(state.top, score)  # the running maximum keeps exp() in range
        old, new = torch.exp(state.top - top), torch.exp(score - top)
        den = state.den * old + new
        num = state.num * old[..., None] + new[..., None] * rearrange(v, "b h d -> b h 1 d")
        state = LayerState(terms=terms, top=top, den=den, num=num)
        summary = rearrange(num / den[..., None], "b h e d -> b h 1 e d")
        out, _ = self._dispatch(rearrange(x, "b d -> b 1 d"), terms, summary)
        return out[:, 0], state


class CausalDispatcherBlock(nn.Module):
    """One causal ELASTIC layer: causal dispatcher attention, then a position-wise feed-forward.

    The experts entering every layer are the window's initial experts (normalised per layer):
    fixed per window, which is what keeps the aggregation a cumulative sum.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = CausalDispatcherAttention(dim, heads, dropout)
        self.norm_x, self.norm_e, self.norm_ff = (nn.LayerNorm(dim) for _ in range(3))
        self.ff = FeedForward(dim, dropout=dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, experts, pad, return_weights: bool = False) -> CausalDispatcherOutput:
        """x (b, n, d), experts (b, e, d), pad (b, n) -> CausalDispatcherOutput."""
        out = self.attn(self.norm_x(x), self.norm_e(experts), pad, return_weights)
        x = x + self.drop(out.x)
        out.x = x + self.drop(self.ff(self.norm_ff(x)))
        return out

    def start(self, experts: torch.Tensor) -> LayerState:
        """experts (b, e, d) -> this layer's state before any event."""
        return self.attn.start(self.norm_e(experts))

    def step(self, x: torch.Tensor, state: LayerState, time: torch.Tensor):
        """x (b, d) one event per stream -> (b, d) and the new state."""
        a, state = self.attn.step(self.norm_x(x), state, time)
        x = x + a
        return x + self.ff(self.norm_ff(x)), state
