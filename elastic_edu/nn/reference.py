"""Slow, obvious float64 references for the fast layers of `elastic_edu.nn`.

Each function loops over users, heads and queries in Python and writes the softmax by hand, so
that a reader can check it against the equations line by line; tests and notebooks compare the
einops layers with them. Use them on small inputs only.
"""

from __future__ import annotations

import math

import torch
from einops import einsum, rearrange, repeat
from torch import nn

from elastic_edu.nn.attention import CausalSelfAttention
from elastic_edu.nn.causal_dispatcher import MAX_RATE, CausalDispatcherAttention
from elastic_edu.nn.dispatcher import DispatcherAttention, Projections


def _linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """x @ W^T + bias in float64."""
    out = x.double() @ layer.weight.double().T
    return out if layer.bias is None else out + layer.bias.double()


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm in float64, written out: (x - mean) / sqrt(var + eps) * weight + bias."""
    x = x.double()
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


def _attend(query: torch.Tensor, keys: list[torch.Tensor], values: list[torch.Tensor]):
    """One query vector reads a list of key/value vectors: (weights list, output vector)."""
    if not keys:
        raise ValueError("a query has nothing to read")
    scale = 1.0 / math.sqrt(query.shape[0])
    scores = [float(query @ key) * scale for key in keys]
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    weights = [e / total for e in exps]
    out = torch.zeros_like(values[0])
    for w, v in zip(weights, values):
        out = out + w * v
    return weights, out


def _read(q, key, value, heads: int, readable: torch.Tensor):
    """Every query of q (b, i, d) reads the keys and values (b, j, d) it may, head by head:
    readable (b, i, j) True where it may. Returns merged heads (b, i, d) and weights
    (b, h, i, j), unreadable weights 0."""
    b_size, i_size, dim = q.shape
    j_size, dh = key.shape[1], dim // heads
    weights = torch.zeros(b_size, heads, i_size, j_size, dtype=torch.float64)
    merged = torch.zeros(b_size, i_size, dim, dtype=torch.float64)
    for b in range(b_size):
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            for i in range(i_size):
                js = [j for j in range(j_size) if readable[b, i, j]]
                w, out = _attend(
                    q[b, i, cols], [key[b, j, cols] for j in js], [value[b, j, cols] for j in js]
                )
                for j, wj in zip(js, w):
                    weights[b, h, i, j] = wj
                merged[b, i, cols] = out
    return merged, weights


def _cross_reference(
    proj: Projections, heads: int, queries: torch.Tensor, context: torch.Tensor, readable
) -> tuple[torch.Tensor, torch.Tensor]:
    """queries (b, i, d) read context (b, j, d) where readable (b, i, j) is True.

    Returns out (b, i, d) after to_out and weights (b, h, i, j), unreadable weights 0.
    """
    dim = queries.shape[-1]
    kv = _linear(proj.to_kv, context)  # laid out as (two h d)
    merged, weights = _read(_linear(proj.to_q, queries), kv[..., :dim], kv[..., dim:], heads,
                            readable)  # fmt: skip
    return _linear(proj.to_out, merged), weights


@torch.no_grad()
def aggregate_reference(
    attn: DispatcherAttention, x: torch.Tensor, experts: torch.Tensor, pad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop version of `DispatcherAttention.aggregate`: each expert reads the non-padding
    positions. x (b, n, d), experts (b, e, d), pad (b, n) -> out (b, e, d), weights (b, h, e, n).
    """
    e_size = experts.shape[1]
    readable = torch.stack([~pad] * e_size, dim=1)  # (b, e, n)
    return _cross_reference(attn.aggregate_proj, attn.heads, experts, x, readable)


@torch.no_grad()
def dispatch_reference(
    attn: DispatcherAttention, x: torch.Tensor, experts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop version of `DispatcherAttention.dispatch`: each position reads every expert.
    x (b, n, d), experts (b, e, d) -> out (b, n, d), weights (b, h, n, e).
    """
    b_size, n_size = x.shape[:2]
    readable = torch.ones(b_size, n_size, experts.shape[1], dtype=torch.bool)
    return _cross_reference(attn.dispatch_proj, attn.heads, x, experts, readable)


@torch.no_grad()
def dispatcher_reference(
    attn: DispatcherAttention, x: torch.Tensor, experts: torch.Tensor, pad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop version of `DispatcherAttention.forward` in eval mode: new x (b, n, d), new experts."""
    h = _layer_norm(attn.norm_x, x)
    agg, _ = aggregate_reference(attn, h, _layer_norm(attn.norm_e1, experts), pad)
    experts = experts.double() + agg
    dis, _ = dispatch_reference(attn, h, _layer_norm(attn.norm_e2, experts))
    return x.double() + dis, experts


@torch.no_grad()
def causal_attention_reference(
    attn: CausalSelfAttention, x: torch.Tensor, pad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop version of `CausalSelfAttention`: position t reads the non-padding positions <= t
    (a padded position reads itself).
    x (b, n, d), pad (b, n) -> out (b, n, d), weights (b, h, n, n).
    """
    n, dim = x.shape[1], x.shape[2]
    qkv = _linear(attn.to_qkv, x)  # laid out as (three h d)
    q, k, v = qkv[..., :dim], qkv[..., dim : 2 * dim], qkv[..., 2 * dim :]
    earlier = torch.ones(n, n, dtype=torch.bool).tril()
    readable = (earlier & rearrange(~pad, "b j -> b 1 j")) | torch.eye(n, dtype=torch.bool)
    merged, weights = _read(q, k, v, attn.heads, readable)
    return _linear(attn.to_out, merged), weights


def full_keys(keys1: torch.Tensor, keys2: torch.Tensor) -> torch.Tensor:
    """All M = m*m product keys (M, d_k): row i*m + j is [keys1[i] ; keys2[j]]."""
    m = keys1.shape[0]
    left = repeat(keys1, "i d -> (i j) d", j=m)
    right = repeat(keys2, "j d -> (i j) d", i=m)
    return torch.cat([left, right], dim=-1)


@torch.no_grad()
def product_key_bruteforce(
    q: torch.Tensor, keys1: torch.Tensor, keys2: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k by scoring every one of the M = m*m slots: q (b, d_k) -> scores (b, k), slots (b, k).

    O(M d_k) per user: what the product-key search avoids.
    """
    scores = q.double() @ full_keys(keys1, keys2).double().T  # (b, M)
    return scores.topk(k, dim=-1)  # (b, k) values, (b, k) slot ids


@torch.no_grad()
def causal_dispatcher_reference(
    attn: CausalDispatcherAttention, x: torch.Tensor, experts: torch.Tensor, pad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop version of `CausalDispatcherAttention` (inputs already normalised), in float64.

    For every position t and expert e, the expert reads its own entry and the items s <= t with
    softmax weights of q_e . k_s / sqrt(d_h) + rate_e * time_s; position t then reads the experts'
    summaries at t. x (b, n, d), experts (b, e, d), pad (b, n) -> out (b, n, d), dispatch
    weights (b, h, n, e).
    """
    b_size, n_size, dim = x.shape
    e_size, heads = experts.shape[1], attn.heads
    dh = dim // heads
    q = _linear(attn.to_q, experts)
    kv_x, kv_e = _linear(attn.to_kv, x), _linear(attn.to_kv, experts)
    route = _linear(attn.to_route, x)
    key_e = _linear(attn.to_expert_key, experts)
    rate = MAX_RATE * torch.sigmoid(_linear(attn.to_rate, experts))  # (b, e, h)
    merged = torch.zeros(b_size, n_size, dim, dtype=torch.float64)
    dispatch = torch.zeros(b_size, heads, n_size, e_size, dtype=torch.float64)
    for b in range(b_size):
        times = [0] * n_size
        count = 0
        for t in range(n_size):
            count += 0 if pad[b, t] else 1
            times[t] = count
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            vcols = slice(dim + h * dh, dim + (h + 1) * dh)
            for t in range(n_size):
                summaries = []
                for e in range(e_size):
                    # the expert's own entry, then every item up to t
                    scores = [float(q[b, e, cols] @ kv_e[b, e, cols]) / math.sqrt(dh)]
                    values = [kv_e[b, e, vcols]]
                    for s in range(t + 1):
                        if pad[b, s]:
                            continue
                        score = float(q[b, e, cols] @ kv_x[b, s, cols]) / math.sqrt(dh)
                        scores.append(score + float(rate[b, e, h]) * times[s])
                        values.append(kv_x[b, s, vcols])
                    top = max(scores)
                    exps = [math.exp(sc - top) for sc in scores]
                    total = sum(exps)
                    summaries.append(sum(w / total * v for w, v in zip(exps, values)))
                # position t reads the experts: a fixed key and a content term
                sims = []
                for e in range(e_size):
                    sim = float(route[b, t, cols] @ key_e[b, e, cols])
                    sim += float(route[b, t, dim + h * dh : dim + (h + 1) * dh] @ summaries[e])
                    sims.append(sim / math.sqrt(dh))
                top = max(sims)
                exps = [math.exp(s - top) for s in sims]
                total = sum(exps)
                out = torch.zeros(dh, dtype=torch.float64)
                for e in range(e_size):
                    dispatch[b, h, t, e] = exps[e] / total
                    out = out + exps[e] / total * summaries[e]
                merged[b, t, cols] = out
    return _linear(attn.to_out, merged), dispatch


def prefix_softmax_average(
    scores: torch.Tensor,
    values: torch.Tensor,
    own_score: torch.Tensor,
    own_value: torch.Tensor,
) -> torch.Tensor:
    """Every prefix's softmax average, materialised: A (b, h, n, e, d).

    scores (b, h, e, n), -inf at padding; values (b, h, n, d); own_score (b, h, e) and
    own_value (b, h, e, d), each expert's own entry, part of every prefix:
    A[:, :, t, e] = sum over {own} and {s <= t} of softmax(score) * value, as running sums
    of exp(score - top) with one reference `top` per expert. The readable form that the chunked
    layer avoids (n e d numbers per head); use float64 and moderate score spreads.
    """
    top = torch.maximum(scores.amax(dim=-1), own_score)  # (b, h, e)
    w = rearrange(torch.exp(scores - rearrange(top, "b h e -> b h e 1")), "b h e n -> b h n e")
    w_own = torch.exp(own_score - top)  # (b, h, e)
    num = einsum(w, values, "b h n e, b h n d -> b h n e d").cumsum(dim=2)
    num = num + rearrange(einsum(w_own, own_value, "b h e, b h e d -> b h e d"),
                          "b h e d -> b h 1 e d")  # fmt: skip
    den = w.cumsum(dim=2) + rearrange(w_own, "b h e -> b h 1 e")
    return num / rearrange(den, "b h n e -> b h n e 1")


def causal_dispatcher_materialised(
    attn: CausalDispatcherAttention, x: torch.Tensor, experts: torch.Tensor, pad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`CausalDispatcherAttention` computed the plain way: every summary A_e(t) formed with
    `prefix_softmax_average`, then each position reads them (`attn.read`). Vectorised, so it
    runs at lengths the loop reference cannot; costs n e d numbers per head.
    x (b, n, d), experts (b, e, d) normalised, pad (b, n) -> out (b, n, d), dispatch (b, h, n, e).
    """
    terms = attn.expert_terms(experts)
    k, v = rearrange(attn.to_kv(x), "b n (two h d) -> two b h n d", two=2, h=attn.heads)
    time = (~pad).cumsum(dim=1).to(x.dtype)
    scores = einsum(terms.query, k, "b h e d, b h n d -> b h e n") * k.shape[-1] ** -0.5
    scores = scores + einsum(terms.rate, time, "b h e, b n -> b h e n")
    scores = scores.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf"))
    summary = prefix_softmax_average(scores, v, terms.own_score, terms.own_value)
    return attn.read(x, terms, summary)
