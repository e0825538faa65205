"""Causal dispatcher attention: ELASTIC's linear dispatcher attention made causal (ours).

The paper's dispatcher (arXiv 2408.09380; `elastic_edu.nn.dispatcher`) lets k experts read the
whole history, so position t sees items after t. Here each expert's summary is a running,
prefix-normalised softmax average, so position t reads only what happened up to t
(docs/DESIGN.md, "Causal dispatcher attention"). Per head (d_h features), with the window's
experts E_1..E_k (fixed for the window) and history states x_1..x_n:

    aggregate query     q_e = E_e W_q               own entry  k_e0 = E_e W_k, v_e0 = E_e W_v
    score of item s     a_es = q_e . (x_s W_k) / sqrt(d_h) + lambda_e tau_s   (tau_s: items to s)
    recency rate        lambda_e = MAX_RATE * sigmoid(E_e w + b)
    summary at t        A_e(t) = (exp(a_e0) v_e0 + sum_{s<=t} exp(a_es) x_s W_v)
                                 / (exp(a_e0) + sum_{s<=t} exp(a_es))
    dispatch at t       D_te = softmax_e( ((x_t W_r) . (E_e W_c) + (x_t W_g) . A_e(t)) / sqrt(d_h) )
    output at t         (sum_e D_te A_e(t)) W_o

In code: W_q `to_q`, W_k and W_v `to_kv`, W_r and W_g `to_route` (route, then gate), W_c
`to_expert_key`, w and b `to_rate`, W_o `to_out`.

Why each piece:
- The route/key term is where a position *wants* to go: x_t W_r against a fixed address E_e W_c
  of each expert, whatever the expert has read. The gate term (x_t W_g) . A_e(t) is what the
  expert *holds* now: a position is drawn to an expert whose summary resembles it. Projecting x_t
  with W_g rather than A with a d x d matrix keeps the cost O(n k d).
- The expert queries depend on the window's experts only, never on positions, so the sums over
  s <= t are running sums, and a state carried event by event (`LayerState`) gives the same
  summaries as the whole window.
- lambda_e in [0, MAX_RATE] is a recency rate: item s weighs exp(lambda_e) times the one before
  it, so an expert with a large rate summarises the last few items and one with rate 0 the whole
  prefix. Softmax ignores any offset of tau, so a history needs no position embedding.
- The expert's own entry is always in the sum: the softmax is never empty, and a history of one
  item is already a mixture of prior and evidence.

`elastic_edu.nn.chunkwise` computes all positions at once without forming A_e(t) for every
(t, e); `step` is the recurrent form; `elastic_edu.nn.reference` holds a float64 loop and the
readable (n, e, d) version (`prefix_softmax_average`) that the tests compare them with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from elastic_edu.nn.attention import FeedForward
from elastic_edu.nn.chunkwise import MAX_RATE, Carry, ExpertTerms, causal_dispatch

SLICE = 1024  # positions per slice of a long window at inference

__all__ = [
    "MAX_RATE",
    "CausalDispatcherAttention",
    "CausalDispatcherBlock",
    "CausalDispatcherOutput",
    "ExpertTerms",
    "LayerState",
]


@dataclass
class CausalDispatcherOutput:
    """x: (b, n, d) new states; experts: (b, e, d) the window's experts, handed on unchanged
    (the block sets them: fixed for the window); aggregate: (b, h, e, n) each expert's weight on
    each item in the whole-window prefix (t = n), dispatch: (b, h, n, e), both only when asked;
    carry: where the window stands after x's last position (`elastic_edu.nn.chunkwise.Carry`)."""

    x: torch.Tensor
    experts: torch.Tensor | None = None
    aggregate: torch.Tensor | None = None
    dispatch: torch.Tensor | None = None
    carry: Carry | None = None


@dataclass
class LayerState:
    """One layer's running summaries for a batch of streams (the recurrent form).

    terms: what stays fixed for the window (`CausalDispatcherAttention.expert_terms`).
    top (b, h, e): running maximum score; den (b, h, e): sum of exp(score - top);
    num (b, h, e, d): sum of exp(score - top) * value. Size e x (d_h + 2) per head.
    """

    terms: ExpertTerms
    top: torch.Tensor
    den: torch.Tensor
    num: torch.Tensor


def split_heads(t: torch.Tensor, heads: int, parts: int = 1) -> torch.Tensor:
    """(b, n, parts * h * d) -> (parts, b, h, n, d) contiguous (one copy, so that every later
    product runs on plain strides); parts = 1 drops the leading axis."""
    out = rearrange(t, "b n (p h d) -> p b h n d", p=parts, h=heads).contiguous()
    return out[0] if parts == 1 else out


class CausalDispatcherAttention(nn.Module):
    """Experts summarise every prefix; each position reads the experts' summaries at its time."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads, self.dropout = heads, dropout
        self.to_q = nn.Linear(dim, dim, bias=False)  # W_q: experts -> aggregate queries
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)  # W_k, W_v: history (and experts)
        self.to_route = nn.Linear(dim, 2 * dim, bias=False)  # W_r, W_g: history -> route, gate
        self.to_expert_key = nn.Linear(dim, dim, bias=False)  # W_c: experts -> dispatch keys
        self.to_rate = nn.Linear(dim, heads)  # w, b: experts -> recency rates in [0, MAX_RATE]
        self.to_out = nn.Linear(dim, dim)  # W_o
        nn.init.zeros_(self.to_rate.weight)
        nn.init.constant_(self.to_rate.bias, -3.66)  # 2 * sigmoid(-3.66) = 0.05 per item

    def expert_terms(self, experts: torch.Tensor) -> ExpertTerms:
        """experts (b, e, d), normalised -> what stays fixed for the window, per head."""
        h = self.heads
        query = rearrange(self.to_q(experts), "b e (h d) -> b h e d", h=h)
        k0, v0 = rearrange(self.to_kv(experts), "b e (two h d) -> two b h e d", two=2, h=h)
        key = rearrange(self.to_expert_key(experts), "b e (h d) -> b h e d", h=h)
        rate = rearrange(MAX_RATE * torch.sigmoid(self.to_rate(experts)), "b e h -> b h e")
        own = einsum(query, k0, "b h e d, b h e d -> b h e") * query.shape[-1] ** -0.5
        return ExpertTerms(query=query, own_score=own, own_value=v0, key=key, rate=rate)

    def forward(self, x, experts, pad, return_weights: bool = False, carry: Carry | None = None):
        """x (b, n, d), experts (b, e, d), both normalised; pad (b, n) True at padding.

        carry: where the window's earlier positions left it, when x is a later slice of it (the
        output's `carry` is the one to pass with the next slice); None: x starts the window.
        """
        terms = self.expert_terms(experts)
        out, dispatch, carry = self._positions(x, pad, terms, carry)
        if not return_weights:
            return CausalDispatcherOutput(x=out, carry=carry)
        return CausalDispatcherOutput(x=out, aggregate=self.aggregate_weights(x, pad, terms),
                                      dispatch=dispatch, carry=carry)  # fmt: skip

    def _positions(self, x, pad, terms: ExpertTerms, carry: Carry | None = None):
        """Projections, the chunkwise read, the output projection: (b, n, d) and the carry."""
        k, v = split_heads(self.to_kv(x), self.heads, parts=2)  # (b, h, n, d) each
        route, gate = split_heads(self.to_route(x), self.heads, parts=2)
        dropout = self.dropout if self.training else 0.0
        out, dispatch, carry = causal_dispatch(k, v, route, gate, pad, terms, carry, dropout)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)")), dispatch, carry

    def aggregate_weights(self, x: torch.Tensor, pad: torch.Tensor, terms: ExpertTerms):
        """(b, h, e, n): each expert's weight on each item as the last position sees it (the own
        entry takes the rest)."""
        k = split_heads(self.to_kv(x), self.heads, parts=2)[0]
        time = (~pad).cumsum(dim=1).to(k.dtype)
        scores = einsum(terms.query, k, "b h e d, b h n d -> b h e n") * k.shape[-1] ** -0.5
        scores = scores + einsum(terms.rate, time, "b h e, b n -> b h e n")
        scores = scores.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf"))
        top = torch.maximum(scores.amax(dim=-1), terms.own_score)
        w = torch.exp(scores - rearrange(top, "b h e -> b h e 1"))
        own = rearrange(torch.exp(terms.own_score - top), "b h e -> b h e 1")
        return w / (w.sum(dim=-1, keepdim=True) + own)

    def read(self, x: torch.Tensor, terms: ExpertTerms, summary: torch.Tensor):
        """Position t reads the experts' summaries at t, written out with A itself:
        x (b, n, d) normalised, summary A (b, h, n, e, d) -> out (b, n, d), dispatch (b, h, n, e).
        What `step` does for one event (n = 1); the readable form of the chunked read."""
        route, gate = rearrange(self.to_route(x), "b n (two h d) -> two b h n d", two=2,
                                h=self.heads)  # fmt: skip
        sim = einsum(route, terms.key, "b h n d, b h e d -> b h n e")
        sim = sim + einsum(gate, summary, "b h n d, b h n e d -> b h n e")
        dispatch = (sim * route.shape[-1] ** -0.5).softmax(dim=-1)  # (b, h, n, e)
        attn = F.dropout(dispatch, self.dropout if self.training else 0.0)
        out = einsum(attn, summary, "b h n e, b h n e d -> b h n d")
        return self.to_out(rearrange(out, "b h n d -> b n (h d)")), dispatch

    # ---- the recurrent form: one event at a time -------------------------------------------
    def start(self, experts: torch.Tensor) -> LayerState:
        """experts (b, e, d), normalised -> the state before any event (own entries only)."""
        terms = self.expert_terms(experts)
        own = terms.own_score
        return LayerState(terms=terms, top=own, den=torch.ones_like(own),
                          num=terms.own_value.clone())  # fmt: skip

    def step(
        self, x: torch.Tensor, state: LayerState, time: torch.Tensor
    ) -> tuple[torch.Tensor, LayerState]:
        """x (b, d) the new event's normalised state, time (b,) its 1-based index in the stream.

        Returns the output (b, d) at this event and the updated state: O(e d) per head, however
        long the stream already is.
        """
        terms = state.terms
        k, v = rearrange(self.to_kv(x), "b (two h d) -> two b h d", two=2, h=self.heads)
        score = einsum(terms.query, k, "b h e d, b h d -> b h e") * k.shape[-1] ** -0.5
        score = score + terms.rate * rearrange(time.to(score.dtype), "b -> b 1 1")
        top = torch.maximum(state.top, score)  # the running maximum keeps exp() in range
        old, new = torch.exp(state.top - top), torch.exp(score - top)
        den = state.den * old + new
        num = einsum(state.num, old, "b h e d, b h e -> b h e d") + einsum(
            new, v, "b h e, b h d -> b h e d")  # fmt: skip
        state = LayerState(terms=terms, top=top, den=den, num=num)
        summary = rearrange(num / rearrange(den, "b h e -> b h e 1"), "b h e d -> b h 1 e d")
        out, _ = self.read(rearrange(x, "b d -> b 1 d"), terms, summary)
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
        """x (b, n, d), experts (b, e, d), pad (b, n) -> CausalDispatcherOutput, the experts
        handed on as they came (the next layer reads the same).

        Without autograd a window longer than SLICE goes through in slices, each starting from
        the carry the previous one left: the same result, one slice's intermediates at a time.
        """
        normed = self.norm_e(experts)
        if torch.is_grad_enabled() or return_weights or x.shape[1] <= SLICE:
            out = self._block(x, normed, pad, return_weights)
        else:
            out = CausalDispatcherOutput(x=torch.empty_like(x))
            for lo in range(0, x.shape[1], SLICE):
                part = slice(lo, lo + SLICE)
                sliced = self._block(x[:, part], normed, pad[:, part], carry=out.carry)
                out.x[:, part], out.carry = sliced.x, sliced.carry
        out.experts = experts
        return out

    def compile_slices(self, mode: str = "default") -> None:
        """Run the slice step (attention, then feed-forward) under torch.compile from now on."""
        self._block = torch.compile(self._block, mode=mode, dynamic=False)

    def _block(self, x, experts, pad, return_weights=False, carry=None) -> CausalDispatcherOutput:
        out = self.attn(self.norm_x(x), experts, pad, return_weights, carry)
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
