"""What the interest inspector shows, computed from a trained ELASTIC model for one history.

ELASTIC (Deng et al., arXiv 2408.09380) retrieves k interest experts per user from a product-key
memory and lets them read the history with linear dispatcher attention. A model is trained with
one k (``config.num_experts``), but nothing in the layers depends on k: retrieval can keep more or
fewer slots at inference (`ELASTIC.encode(..., num_experts=k)`, wrapped here as
`encode_with_experts`), without touching the model:

    q = norm(W . masked_mean(X))                 the retrieval query, as in training
    scores, slots = top-k of q1 . K1_i + q2 . K2_j  (product-key search, c = max(c, k))
    E = V[slots] * k * softmax(scores)            gates average 1, as in training
    L dispatcher blocks over (X, E)               aggregate (b, h, e, n), dispatch (b, h, n, e)

With k = config.num_experts it is exactly `ELASTIC.encode(items, return_weights=True)`. A slot
reads as "an interest" through the items nearest to its value row (dot product
with the item embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import einsum

from elastic_edu.evaluation.metrics import ranks_from_scores
from elastic_edu.histories import PAD
from elastic_edu.nn.product_keys import ProductKeyMemory, Retrieval


def retrieve(memory: ProductKeyMemory, x: torch.Tensor, pad: torch.Tensor,
             num_experts: int) -> Retrieval:  # fmt: skip
    """`memory`'s retrieval of k = `num_experts` slots instead of the trained k; x (b, n, d),
    pad (b, n). The search keeps c = max(memory.candidates, k) candidates per half, so it stays
    exact."""
    return memory(x, pad, num_experts)


def encode_with_experts(model, items: torch.Tensor, num_experts: int | None = None):
    """ELASTIC's encoder with k = `num_experts` retrieved experts (None: the trained k); weights
    returned: an EncoderOutput.

    items (b, n) left-padded ids. The model is not modified (no config or module state changes);
    call it in eval mode under ``torch.no_grad()`` for inspection.
    """
    if not model.has_memory:
        raise TypeError(f"{type(model).__name__} has no interest memory: pass an ELASTIC model")
    return model.encode(items, return_weights=True, num_experts=num_experts)


def nearest_items(model, slots: torch.Tensor, count: int = 5) -> np.ndarray:
    """slots (e,) -> (e, count) item ids whose embeddings have the largest dot product with
    each slot's value row (padding never). What makes a slot read as an interest."""
    values = model.memory.values.weight[slots]  # (e, d)
    sim = einsum(values, model.item_repr(), "e d, i d -> e i")
    sim[:, PAD] = float("-inf")
    return sim.topk(count, dim=-1).indices.cpu().numpy()  # (e, count)


def window_items(model, window: torch.Tensor) -> torch.Tensor:
    """bool (n,): the positions of an encoded window (n,) that hold history items.

    Padding and a non-causal model's [MASK] read-out token are left out of the figures.
    """
    keep = window != PAD
    if "cloze" in model.objectives:
        keep &= window != model.mask_token
    return keep


@dataclass
class Inspection:
    """Everything the inspector draws for one history and one k (numpy, batch dropped).

    items (n,) the history's ids the model encodes (its window); slots, slot_scores (e,);
    nearest (e, count) item ids per slot; aggregate: per layer (h, e, n); dispatch: per layer
    (h, n, e); top (t,) recommended ids, best first, and their scores top_scores (t,);
    target: the held-out item or None, target_rank its 1-based rank (ties against the model).
    """

    items: np.ndarray
    slots: np.ndarray
    slot_scores: np.ndarray
    nearest: np.ndarray
    aggregate: list[np.ndarray]
    dispatch: list[np.ndarray]
    top: np.ndarray
    top_scores: np.ndarray
    target: int | None = None
    target_rank: int | None = None

    @property
    def num_experts(self) -> int:
        return len(self.slots)

    def assignment(self, layer: int, head: int | None) -> np.ndarray:
        """(n,) expert of each position: argmax over e of the dispatch weights (head mean: None)."""
        d = self.dispatch[layer]
        d = d.mean(axis=0) if head is None else d[head]
        return d.argmax(axis=-1)

    def reads(self, layer: int, head: int | None) -> np.ndarray:
        """(e, n) aggregate weights of one layer and head (head mean: None)."""
        a = self.aggregate[layer]
        return a.mean(axis=0) if head is None else a[head]


@torch.no_grad()
def inspect_history(
    model,
    history,
    num_experts: int | None = None,
    *,
    target: int | None = None,
    top: int = 10,
    nearest: int = 5,
    exclude_history: bool = True,
) -> Inspection:
    """Encode one history with k = `num_experts` experts (None: the trained k) and collect what
    the inspector shows.

    The scores are those of `elastic_edu.models.recommend`: the final state . item embeddings;
    with `exclude_history` the items already in the history are not recommended nor ranked.
    """
    was_training = model.training
    model.eval()
    try:
        prepared = model.prepare([history])  # (1, c + n): what the model reads
        out = encode_with_experts(model, prepared, num_experts)
        window = prepared[0, -out.hidden.shape[1] :]
        keep = window_items(model, window)  # the history's items, not padding nor [MASK]
        scores = model.scores_from(out.hidden[:, -1])  # the path of model.score
        exclude = torch.zeros_like(scores, dtype=torch.bool)
        if exclude_history:
            exclude[0, torch.as_tensor(np.asarray(history), device=scores.device)] = True
        masked = scores.masked_fill(exclude, float("-inf"))
        best = masked[0].topk(min(top, int(torch.isfinite(masked).sum())))
        rank = None
        if target is not None:
            t = torch.tensor([target], device=scores.device)
            rank = int(ranks_from_scores(scores, t, exclude)[0])
        return Inspection(
            items=window[keep].cpu().numpy(),
            slots=out.slots[0].cpu().numpy(),
            slot_scores=out.slot_scores[0].float().cpu().numpy(),
            nearest=nearest_items(model, out.slots[0], nearest),
            aggregate=[a[0][..., keep].float().cpu().numpy() for a in out.aggregate],
            dispatch=[d[0][:, keep].float().cpu().numpy() for d in out.dispatch],
            top=best.indices.cpu().numpy(),
            top_scores=best.values.cpu().numpy(),
            target=None if target is None else int(target),
            target_rank=rank,
        )
    finally:
        model.train(was_training)
