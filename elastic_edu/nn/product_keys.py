"""Interest memory retrieval with product keys (Lample et al., NeurIPS 2019, "Large Memory
Layers with Product Keys"), as ELASTIC (arXiv 2408.09380) uses it to pick k interest experts
per user from M = m*m memory slots. The details are our decision (docs/DESIGN.md).

A slot s = i*m + j has the key [K1_i ; K2_j] (two halves of d_k/2), so its score splits:

    score(q, s) = q1 . K1_i + q2 . K2_j

The best k slots are built from the best c of each half (c >= k): score m sub-keys per half,
keep the top c of each, add the c*c pairs, keep the top k. If a pair (i, j) is in the global
top k then i is in the top k of the first half (any k better i' would pair with j into k better
slots), and likewise j; so the result equals the exact top k of all M scores at the cost
O(m d_k + c^2) per user instead of O(M d_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import einsum, rearrange
from torch import nn


@dataclass
class Retrieval:
    """What the memory returns for a batch of users.

    experts: (b, e, d) retrieved value rows, gated by their scores (or a model's learned
    experts, with no slots). slots: (b, e) int64 slot ids in [0, m*m), best first.
    scores: (b, e) their key scores.
    balance: scalar sub-key load-balancing loss of this batch (`subkey_balance`).
    """

    experts: torch.Tensor
    slots: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    balance: torch.Tensor | None = None


def check_product_key_args(subkeys: int, key_dim: int, num_experts: int, candidates: int) -> int:
    """Validate a product-key search; returns the number of candidates kept, min(c, m)."""
    if subkeys < 1 or num_experts < 1 or candidates < 1:
        raise ValueError(
            f"subkeys={subkeys}, num_experts={num_experts}, candidates={candidates} must be at "
            "least 1"
        )
    if key_dim < 2 or key_dim % 2:
        raise ValueError(f"key_dim={key_dim} must be even and positive (two halves)")
    if num_experts > subkeys**2:
        raise ValueError(
            f"num_experts={num_experts} is larger than the memory's M = subkeys**2 = "
            f"{subkeys**2} slots"
        )
    c = min(candidates, subkeys)  # more candidates than sub-keys adds nothing
    if c < num_experts and c < subkeys:
        raise ValueError(
            f"candidates={candidates} is smaller than num_experts={num_experts}: the search "
            "would miss slots of the exact top k (use candidates >= experts)"
        )
    return c


def subkey_scores(
    q: torch.Tensor, keys1: torch.Tensor, keys2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """q (b, d_k), keys1 and keys2 (m, d_k/2) -> the scores of each half's sub-keys (b, m) x 2."""
    m, half = keys1.shape
    if keys2.shape != keys1.shape:
        raise ValueError(f"keys1 {tuple(keys1.shape)} and keys2 {tuple(keys2.shape)} differ")
    if q.shape[-1] != 2 * half:
        raise ValueError(f"query width {q.shape[-1]} is not 2 x the sub-key width {half}")
    q1, q2 = rearrange(q, "b (two d) -> two b d", two=2)
    return einsum(q1, keys1, "b d, m d -> b m"), einsum(q2, keys2, "b d, m d -> b m")


def best_pairs(s1: torch.Tensor, s2: torch.Tensor, k: int, c: int):
    """Sub-key scores s1, s2 (b, m) -> the k best slots: scores (b, k) descending, slots (b, k).

    Keeps the best c of each half (c is clamped to m), adds the c*c pairs, keeps the best k;
    slot = i*m + j.
    """
    m = s1.shape[-1]
    c = check_product_key_args(m, 2, k, c)
    top1, idx1 = s1.topk(c, dim=-1)  # (b, c)
    top2, idx2 = s2.topk(c, dim=-1)  # (b, c)
    # all c*c pair scores, then the best k pairs
    pairs = rearrange(top1, "b c -> b c 1") + rearrange(top2, "b c -> b 1 c")
    scores, best = rearrange(pairs, "b c1 c2 -> b (c1 c2)").topk(k, dim=-1)  # (b, k)
    i = idx1.gather(1, best // c)  # (b, k) sub-key of the first half
    j = idx2.gather(1, best % c)  # (b, k) sub-key of the second half
    return scores, i * m + j


def product_key_topk(
    q: torch.Tensor, keys1: torch.Tensor, keys2: torch.Tensor, k: int, c: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k slots of a product-key memory without scoring all M = m*m slots.

    q (b, d_k), keys1 and keys2 (m, d_k/2), k slots, c candidates per half (clamped to m).
    Returns scores (b, k) in descending order and slots (b, k) with slot = i*m + j.
    """
    check_product_key_args(keys1.shape[0], q.shape[-1], k, c)
    return best_pairs(*subkey_scores(q, keys1, keys2), k, c)


def subkey_balance(s1: torch.Tensor, s2: torch.Tensor, c: int) -> torch.Tensor:
    """Load-balancing loss over sub-keys (Switch Transformer's, Fedus et al. 2022, per half).

    For each half: f_i = fraction of users that keep sub-key i among their best c, p_i = mean
    softmax probability of sub-key i; loss = (m / c) * sum_i f_i p_i, which is 1 when usage is
    uniform and grows as users crowd onto the same sub-keys. Returns the mean over the halves.
    The gradient flows through p (f counts are constants), spreading queries over the keys.
    """
    losses = []
    for s in (s1, s2):
        m = s.shape[-1]
        c_kept = min(c, m)
        chosen = torch.zeros_like(s).scatter_(1, s.topk(c_kept, dim=-1).indices, 1.0)  # (b, m)
        f = chosen.mean(dim=0).detach()
        p = s.softmax(dim=-1).mean(dim=0)
        losses.append(m / c_kept * (f * p).sum())
    return torch.stack(losses).mean()


class ProductKeyMemory(nn.Module):
    """Interest memory: retrieves k gated value rows out of M = m*m for each user's history.

    query: q = LayerNorm(W . masked_mean(x)) in R^{d_k}. The mean runs over non-padding
        positions only and the norm acts on each user's pooled vector, so padding never enters
        (no batch statistics either: a user's experts do not depend on the rest of the batch).
        A normalised query keeps the scores on one scale, which helps against slot collapse.
        W has no bias: at initialisation a bias outweighs the small pooled vector and every user
        would retrieve the same slots.
    gating: experts = V[slots] * k * softmax(scores over the k slots). The gates average 1, so
        the experts keep the scale of the value rows; being differentiable in the scores, they
        carry gradients to the sub-keys and the query network (the top-k choice itself does not).
        Downstream layer norms are scale-invariant, so a gate acts through the residual stream:
        it sets how much a retrieved row weighs against what the expert reads from the history.
    values: nn.Embedding(M, dim), dense gradients: only the retrieved rows get non-zero ones.
    """

    def __init__(self, dim: int, key_dim: int, subkeys: int, num_experts: int, candidates: int):
        super().__init__()
        self.candidates = check_product_key_args(subkeys, key_dim, num_experts, candidates)
        self.subkeys, self.num_experts, self.key_dim = subkeys, num_experts, key_dim
        self.to_query = nn.Linear(dim, key_dim, bias=False)
        self.query_norm = nn.LayerNorm(key_dim)
        half = key_dim // 2
        self.keys1 = nn.Parameter(torch.randn(subkeys, half) * half**-0.5)
        self.keys2 = nn.Parameter(torch.randn(subkeys, half) * half**-0.5)
        # one initialisation pass over the (possibly million-row) table
        table = torch.empty(subkeys**2, dim).normal_(std=dim**-0.5)
        self.values = nn.Embedding.from_pretrained(table, freeze=False)

    @property
    def num_slots(self) -> int:
        return self.subkeys**2

    def query(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x (b, n, d), pad (b, n) -> normalised retrieval query (b, d_k)."""
        keep = (~pad).to(x.dtype)
        pooled = einsum(x, keep, "b n d, b n -> b d") / keep.sum(dim=1, keepdim=True).clamp(min=1)
        return self.query_norm(self.to_query(pooled))

    def forward(
        self, x: torch.Tensor, pad: torch.Tensor, num_experts: int | None = None
    ) -> Retrieval:
        """x (b, n, d), pad (b, n) True at padding -> Retrieval of e = k experts.

        num_experts: retrieve this many slots instead of the configured k (inference-time
        inspection); the search then keeps max(c, k) candidates per half, so it stays exact.
        """
        k = self.num_experts if num_experts is None else int(num_experts)
        if not 1 <= k <= self.num_slots:
            raise ValueError(f"num_experts={k} must lie in 1..{self.num_slots} (memory slots)")
        q = self.query(x, pad)
        c = max(self.candidates, min(k, self.subkeys))
        s1, s2 = subkey_scores(q, self.keys1, self.keys2)  # (b, m) each
        scores, slots = best_pairs(s1, s2, k, c)  # (b, e) each
        gates = scores.softmax(dim=-1) * k  # the gates average 1 for any k
        experts = self.values(slots) * rearrange(gates, "b e -> b e 1")
        return Retrieval(experts=experts, slots=slots, scores=scores,
                         balance=subkey_balance(s1, s2, c))  # fmt: skip

    def memory_parameters(self) -> list[nn.Parameter]:
        """The value table, for an optimizer group with a higher learning rate."""
        return [self.values.weight]

    def retrieval_numbers(self, batch: int) -> int:
        """Numbers one batch's retrieval keeps for backward, roughly: the query's steps (6 d_k),
        both halves' sub-key scores (4 m), the c x c candidate pairs (2 c^2)."""
        return batch * (6 * self.key_dim + 4 * self.subkeys + 2 * self.candidates**2)
