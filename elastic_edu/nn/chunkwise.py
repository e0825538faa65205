"""The causal dispatcher computed chunk by chunk: the numerics behind
`elastic_edu.nn.causal_dispatcher` (ours; docs/DESIGN.md, "Causal dispatcher attention",
decision 5).

Per head, expert e summarises the prefix s <= t with softmax weights of the score
a_es = c_es + lambda_e tau_s (content c_es = q_e . k_s / sqrt(d_h), tau_s the item count up to s),
its own entry (a_e0, v_e0) always included:

    A_e(t) = (exp(a_e0) v_e0 + sum_{s<=t} exp(a_es) v_s) / (exp(a_e0) + sum_{s<=t} exp(a_es))

The layer needs only two contractions of A_e(t), never the (n, e, d) tensor itself:

    the gate term      g_t . A_e(t)            (n, e)
    the output         sum_e D_te A_e(t)       (n, d),   D = dispatch weights (n, e)

As chunked linear attention does (GLA, Yang et al. ICML 2024; RetNet's chunkwise form; Mamba-2's
SSD), split the window into J chunks of C positions. Chunk j starts after tau_j items and has
the reference R_je = r_je + lambda_e tau_j, the running maximum of the scores a_es up to the end
of chunk j (own entry included), as the streaming step keeps it. Relative to it:

    key weights        u_se = exp(c_se - r_je + lambda_e (tau_s - tau_j))  in [0, 1]
    carried state      S_je = exp(a_e0 - R_je) v_e0 + sum_{s before chunk j} exp(a_es - R_je) v_s
                       and Z_je the same with 1 for v: one (d + 1)-vector per expert
    state update       S_{j+1} = exp(R_j - R_{j+1}) (S_j + sum_{s in chunk j} u_s v_s)

and for t in chunk j the factor exp(-R_je) cancels between numerator and denominator:

    den_te        = Z_je + sum_{s<=t in chunk} u_se                       a (C, e) cumsum
    g_t . A_e(t)  = (g_t . S_je + sum_{s<=t} u_se (g_t . v_s)) / den_te   (C,d)(d,e) + (C,C)(C,e)
    out_t         = sum_e P_te S_je + sum_{s<=t} (sum_e P_te u_se) v_s    (C,e)(e,d) + (C,C)(C,d)

with P = D / den, and the (C, C) matrices g v^T and P u^T masked to s <= t.

Cost per chunk O(C e d + C^2 (e + d)); memory O(n (e + d + C) + J e d): no (n, e, d) tensor.
The products within chunks run for all chunks at once as batched matrix products; only the
carry of the J small (e, d + 1) states is a scan, in two levels of about sqrt(J) steps.

Ranges in float32: every decay exp(R_j - R_{j+1}) <= 1 and every u <= 1; den_te >= the largest
term up to t, exp(max_{s<=t} a_es - R_je), which is small only when a score rises steeply later
in the same chunk; it stays normal unless that rise exceeds about 87 (float32's range), and the
read D / den has a backward that never divides by den twice (`Divide`). (The
reference was once the running maximum of the content scores alone: an item that scored high
long ago then held it far above every later term, and training diverged on the long-range
task.) At padding den is 1, the dispatch weights and the read 0: a padded position reads
nothing. C is at most 32 positions. The kernel runs in float32 even under autocast (float64
inputs stay float64).

A window can also be fed in slices, each starting from the `Carry` the previous one left
(state, reference, running maximum, items seen): inference on long windows holds one slice's
intermediates at a time, and the result is the same as the whole window at once.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum, rearrange, repeat
from torch.utils.checkpoint import checkpoint

MAX_RATE = 2.0  # the largest recency rate: an item weighs e^2 times the one before it
CHUNK = 32  # the longest chunk: a recency rise MAX_RATE * CHUNK = 64 within it stays below e^87
RECOMPUTE_FROM = 4 * CHUNK  # training on longer windows recomputes the chunk products in backward


@dataclass
class ExpertTerms:
    """What stays fixed for a window, per head: query q_e (b, h, e, d), own_score a_e0 (b, h, e),
    own_value v_e0 (b, h, e, d), key E_e W_c (b, h, e, d), rate lambda_e (b, h, e)."""

    query: torch.Tensor
    own_score: torch.Tensor
    own_value: torch.Tensor
    key: torch.Tensor
    rate: torch.Tensor


@dataclass
class Carry:
    """Where a window stands after some of its positions.

    state (b, h, e, d + 1): the weighted sums of the values, then of 1 (the normaliser), relative
    to exp(top + rate * start); top (b, h, e): the running maximum of the scores, less
    rate * start;
    start (b,): the item count the reference is taken at; tau (b,): the items seen.
    """

    state: torch.Tensor
    top: torch.Tensor
    start: torch.Tensor
    tau: torch.Tensor

    @staticmethod
    def begin(terms: ExpertTerms, batch: int) -> Carry:
        """Before any item: the experts' own entries only (reference a_e0, tau = 0)."""
        one = torch.ones_like(terms.own_value[..., :1])
        zero = torch.zeros(batch, dtype=torch.long, device=one.device)
        state = torch.cat([terms.own_value, one], dim=-1)
        return Carry(state=state, top=terms.own_score, start=zero, tau=zero)


def log_decay(top_from, start_from, top_to, start_to, rate) -> torch.Tensor:
    """log exp(R_from - R_to) for references R = top + rate * start, formed from the differences
    of the parts, never from the large R themselves (at R = 32768 float32 keeps 3 decimals).
    top (b, h, ..., e); start (b, ...); rate (b, h, e) -> (b, h, ..., e)."""
    gap = (start_from - start_to).to(rate.dtype)
    return (top_from - top_to) + einsum(gap, rate, "b ..., b h e -> b h ... e")


def chunk_size(n: int, longest: int = CHUNK) -> int:
    """Positions per chunk for a window of n: as even as possible, at most `longest`, so that a
    window of 50 runs as 2 chunks of 25 rather than 2 of 32 with 14 positions of padding."""
    return math.ceil(n / math.ceil(n / longest))


def causal_dispatch(
    keys: torch.Tensor,
    values: torch.Tensor,
    route: torch.Tensor,
    gate: torch.Tensor,
    pad: torch.Tensor,
    terms: ExpertTerms,
    carry: Carry | None = None,
    dropout: float = 0.0,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, Carry]:
    """The causal dispatcher's read of the experts for every position, chunk by chunk.

    keys, values, route, gate (b, h, n, d): the history's projections; pad (b, n) True at
    padding; terms: the window's experts; carry: where earlier positions left the window (None:
    nothing before). dropout: on the dispatch weights (0 at evaluation).
    Returns out (b, h, n, d) = sum_e D_te A_e(t), the dispatch weights D (b, h, n, e) before
    dropout (0 at padding), and the carry after the last position. Runs in float32 even under
    autocast.
    """
    dtype = torch.float64 if keys.dtype == torch.float64 else torch.float32
    size = chunk or chunk_size(keys.shape[2])
    if size > CHUNK:
        raise ValueError(f"chunk={size}: at most {CHUNK} positions keep exp() in float32's range")
    with _without_autocast(keys.device):
        cast = lambda t: t.to(dtype)  # noqa: E731
        terms = ExpertTerms(*map(cast, (terms.query, terms.own_score, terms.own_value,
                                        terms.key, terms.rate)))  # fmt: skip
        if carry is None:
            carry = Carry.begin(terms, pad.shape[0])
        args = (*map(cast, (keys, values, route, gate)), pad, terms, carry, dropout, size)
        long = keys.shape[2] >= RECOMPUTE_FROM and torch.is_grad_enabled()
        if long:  # keep only the inputs for backward; the chunk products are recomputed there
            out, dispatch, after = checkpoint(_dispatch, *args, use_reentrant=False)
        else:
            out, dispatch, after = _dispatch(*args)
    return out.to(gate.dtype), dispatch, after


def _without_autocast(device: torch.device):
    """Autocast off on devices that have it (the meta device, which counts FLOPs, has none)."""
    if device.type in ("cpu", "cuda", "mps", "xpu"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _dispatch(keys, values, route, gate, pad, terms: ExpertTerms, carry: Carry, dropout, size):
    n, d = keys.shape[2], keys.shape[3]
    lead = (-n) % size  # left padding up to whole chunks: weight 0, outputs dropped
    if lead:
        keys, values, route, gate = (F.pad(t, (0, 0, lead, 0)) for t in (keys, values, route, gate))
        pad = F.pad(pad, (lead, 0), value=True)
    time = rearrange(carry.tau, "b -> b 1") + (~pad).cumsum(dim=1)  # (b, n): tau_s
    blocked = torch.zeros(pad.shape, dtype=keys.dtype, device=keys.device).masked_fill_(
        pad, float("-inf"))  # fmt: skip

    # content scores c_se (-inf at padding) and the route . key term, for every position
    content = einsum(keys, terms.query, "b h n d, b h e d -> b h n e").mul_(d**-0.5)
    content = content.add_(rearrange(blocked, "b n -> b 1 n 1"))
    sim = einsum(route, terms.key, "b h n d, b h e d -> b h n e")
    chunks = lambda t: rearrange(t, "b h (j c) x -> b h j c x", c=size)  # noqa: E731
    content, sim, gate, values = map(chunks, (content, sim, gate, values))
    start = torch.cat([rearrange(carry.tau, "b -> b 1"), time[:, size - 1 : -1 : size]], dim=1)
    offset = rearrange(time, "b (j c) -> b j c", c=size) - rearrange(start, "b j -> b j 1")

    # references R_je = r_je + lambda_e tau_j: the running maximum of the scores a_es themselves
    # (recency included), as the streaming step keeps it; r_je is that maximum less lambda_e tau_j
    rate = rearrange(terms.rate, "b h e -> b h 1 1 e")
    scores = content.addcmul_(rate, rearrange(offset.to(keys.dtype), "b j c -> b 1 j c 1"))
    with torch.no_grad():  # scores: c_es + lambda_e (tau_s - tau_j), a_es relative to chunk j
        r = running_reference(scores, start, carry, terms.rate)  # (b, h, j, e)
    u = scores.sub_(rearrange(r, "b h j e -> b h j 1 e")).exp_()  # (b, h, j, c, e)

    # the states entering each chunk, (b, h, j, e, d + 1): the last column is the normaliser Z
    ones = values.new_ones(values.shape[:-1] + (1,))
    chunk_sums = einsum(u, torch.cat([values, ones], dim=-1), "b h j c e, b h j c f -> b h j e f")
    into = log_decay(carry.top, carry.start, r[:, :, 0], start[:, 0], terms.rate)  # (b, h, e)
    first = carry.state * rearrange(torch.exp(into), "b h e -> b h e 1")
    states = carry_states(first, chunk_sums, r, start, terms.rate)
    carried, norm = states[..., :d], states[..., d]
    after = Carry(state=states[:, :, -1] + chunk_sums[:, :, -1], top=r[:, :, -1],
                  start=start[:, -1], tau=time[:, -1])  # fmt: skip

    # within each chunk: den, the gate term g_t . A_e(t), the dispatch weights, the read; at
    # padding den is 1 (it can underflow to 0 there, where no item of the chunk is yet counted)
    # and the dispatch weights and the read are 0
    den = u.cumsum(dim=3).add_(rearrange(norm, "b h j e -> b h j 1 e"))  # (b, h, j, c, e)
    padded = rearrange(pad, "b (j c) -> b 1 j c 1", c=size)
    den = den.masked_fill_(padded, 1.0)
    gv = einsum(gate, values, "b h j c d, b h j s d -> b h j c s").tril_()  # s <= t
    gated = einsum(gate, carried, "b h j c d, b h j e d -> b h j c e")
    gated = (gated + einsum(gv, u, "b h j c s, b h j s e -> b h j c e")) / den
    dispatch = gated.add_(sim).mul_(d**-0.5).softmax(dim=-1).masked_fill(padded, 0.0)
    read = Divide.apply(F.dropout(dispatch, dropout) if dropout else dispatch, den)  # 0 at pad
    mixed = einsum(read, u, "b h j c e, b h j s e -> b h j c s").tril_()
    out = einsum(read, carried, "b h j c e, b h j e d -> b h j c d")
    out = out.add_(einsum(mixed, values, "b h j c s, b h j s d -> b h j c d"))
    out = rearrange(out, "b h j c d -> b h (j c) d")[:, :, lead:]
    return out, rearrange(dispatch, "b h j c e -> b h (j c) e")[:, :, lead:], after


class Divide(torch.autograd.Function):
    """x / y, whose backward forms y's gradient as (g x / y) / y, never g x / y^2: y (a
    normaliser den) may be as small as e^-87 in float32 and x / y as large as 1 / y, where
    autograd's division would overflow by squaring y."""

    @staticmethod
    def forward(ctx, x, y):
        out = x / y
        ctx.save_for_backward(y, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        y, out = ctx.saved_tensors
        return grad / y, -(grad * out) / y


def running_reference(scores, start, carry: Carry, rate) -> torch.Tensor:
    """r_je with R_je = r_je + lambda_e tau_j the largest score a_es = c_es + lambda_e tau_s of
    the carry and of every position up to the end of chunk j (padding: -inf).

    scores (b, h, j, c, e) the scores relative to their chunk's start, c_es + lambda_e (tau_s -
    tau_j); start (b, j) tau_j; carry.top relative to carry.start; rate (b, h, e) -> (b, h, j, e).
    The maximum is taken relative to carry.start (at most the window's length of items away), so
    float32 rounds it to a few thousandths at worst: any reference is exact as long as every term
    uses the same one, and every u is then at most about 1. Compared with the
    running maximum of the content scores alone, an item that scored high long ago (its weight
    decayed since) no longer holds the reference far above every term of a later chunk, whose
    normaliser could then underflow (the long-range task hit this: a key 300 events back).
    """
    since = (start - rearrange(carry.start, "b -> b 1")).to(scores.dtype)  # (b, j)
    shift = einsum(since, rate, "b j, b h e -> b h j e")  # lambda_e (tau_j - tau_carry)
    peak = torch.maximum(scores.amax(dim=3) + shift, rearrange(carry.top, "b h e -> b h 1 e"))
    return torch.cummax(peak, dim=2).values - shift


def carry_states(first, chunk_sums, top, start, rate) -> torch.Tensor:
    """The state entering every chunk: s_0 = first, s_{j+1} = exp(R_j - R_{j+1}) (s_j + B_j).

    first (b, h, e, f); chunk_sums B (b, h, j, e, f); the references R_j = top_j + rate * start_j
    as top (b, h, j, e) and start (b, j), both non-decreasing in j; rate (b, h, e).
    Returns (b, h, j, e, f). The J steps run in two levels of about sqrt(J): the chunks form
    groups of G = ceil(sqrt(J)); what each group hands to the next is one weighted sum over its
    chunks (every weight exp(R_i - R_j) <= 1); a short recurrence over the groups gives the state
    entering each group; then the recurrence within all groups at once, G steps.
    """
    j_size = chunk_sums.shape[2]
    g = math.isqrt(j_size - 1) + 1 if j_size > 1 else 1
    groups = math.ceil(j_size / g)
    extra = groups * g - j_size  # trailing chunks that add nothing: B = 0, R repeated
    if extra:
        chunk_sums = F.pad(chunk_sums, (0, 0, 0, 0, 0, extra))
        top = torch.cat([top, repeat(top[:, :, -1], "b h e -> b h x e", x=extra)], dim=2)
        start = torch.cat([start, repeat(start[:, -1], "b -> b x", x=extra)], dim=1)
    sums = rearrange(chunk_sums, "b h (g i) e f -> b h g i e f", i=g)
    top = rearrange(top, "b h (g i) e -> b h g i e", i=g)
    start = rearrange(start, "b (g i) -> b g i", i=g)
    decayed = lambda x, log: x * rearrange(torch.exp(log), "... e -> ... e 1")  # noqa: E731

    # what each group hands on: its chunks' sums at the reference of the next group's start
    nxt = (rearrange(top[:, :, 1:, 0], "b h g e -> b h g 1 e"), start[:, 1:, :1])
    weights = torch.exp(log_decay(top[:, :, :-1], start[:, :-1], *nxt, rate))  # (b, h, g, i, e)
    handed = einsum(weights, sums[:, :, :-1], "b h g i e, b h g i e f -> b h g e f")
    # the state entering each group
    entering = [first]
    for k in range(groups - 1):
        log = log_decay(top[:, :, k, 0], start[:, k, 0], top[:, :, k + 1, 0], start[:, k + 1, 0],
                        rate)  # fmt: skip
        entering.append(decayed(entering[-1], log) + handed[:, :, k])
    # within every group at once, from the state that entered it
    state = torch.stack(entering, dim=2)  # (b, h, g, e, f)
    states = [state]
    for i in range(g - 1):
        log = log_decay(top[:, :, :, i], start[:, :, i], top[:, :, :, i + 1], start[:, :, i + 1],
                        rate)  # fmt: skip
        state = decayed(state + sums[:, :, :, i], log)
        states.append(state)
    states = torch.stack(states, dim=3)  # (b, h, g, i, e, f)
    return rearrange(states, "b h g i e f -> b h (g i) e f")[:, :, :j_size]
