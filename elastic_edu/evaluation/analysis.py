"""Reading a trained model: expert assignments, agreement with planted interests, slot usage.

- `expert_assignments`: argmax over experts of the dispatch weights, per position (b, n).
- `nmi`: normalised mutual information between two labelings (arithmetic normalisation,
  as scikit-learn's default), with `shuffled_nmi` as the chance baseline.
- `slot_counts`: how often each memory slot is retrieved over a set of histories.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import reduce


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def nmi(a, b) -> float:
    """Normalised mutual information I(a; b) / mean(H(a), H(b)) of two equal-length labelings.

    1 means one labeling determines the other; near 0 means independent. Two constant
    labelings give 1.0 (identical partitions), one constant labeling gives 0.0.
    """
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"labelings must be non-empty and equally long: {a.shape} vs {b.shape}")
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    ha, hb = _entropy(joint.sum(1)), _entropy(joint.sum(0))
    if ha == 0.0 and hb == 0.0:
        return 1.0
    if ha == 0.0 or hb == 0.0:
        return 0.0
    mi = ha + hb - _entropy(joint.ravel())
    return float(max(mi, 0.0) / ((ha + hb) / 2))


def shuffled_nmi(a, b, repeats: int = 10, seed: int = 0) -> float:
    """Mean NMI after shuffling `b`: what chance agreement looks like for these label counts."""
    rng = np.random.default_rng(seed)
    b = np.asarray(b).ravel()
    return float(np.mean([nmi(a, rng.permutation(b)) for _ in range(repeats)]))


def _encoded(model, history) -> tuple[torch.Tensor, object]:
    """Encode one history the way the model scores it; returns (kept, EncoderOutput).

    kept: bool (n,) True at the window positions that hold the history's items (not padding,
    not a [MASK] read-out token).
    """
    items = model.prepare([history])
    out = model.encode(items, return_weights=True)
    window = items[:, -out.pad.shape[1] :]
    kept = ~out.pad[0]
    if "cloze" in model.objectives:  # a non-causal model reads at its [MASK]
        kept &= window[0] != model.mask_token
    return kept, out


@torch.no_grad()
def expert_assignments(model, histories: list[np.ndarray], layer: int = -1) -> list[np.ndarray]:
    """Each history item's expert: argmax over e of the dispatch weights, summed over heads.

    Returns one int array per history (its last items as the model encodes them, unpadded).
    """
    model.eval()
    return [_experts(model, h, layer)[0].cpu().numpy() for h in histories]


def _experts(model, history: np.ndarray, layer: int):
    """(each kept item's expert index (n,), the encoding): see `expert_assignments`."""
    kept, enc = _encoded(model, history)
    summed = reduce(enc.dispatch[layer], "b h n e -> b n e", "sum")
    return summed[0].argmax(-1)[kept], enc


@torch.no_grad()
def slot_assignments(model, histories: list[np.ndarray], layer: int = -1) -> list[np.ndarray]:
    """Each history item's memory slot: the slot of its expert (`expert_assignments`).

    Expert indices rank a user's retrieved slots, so they mean nothing across users; slot ids
    name the same memory row for every user (models with an interest memory only).
    """
    model.eval()
    out = []
    for h in histories:
        experts, enc = _experts(model, h, layer)
        out.append(enc.slots[0][experts].cpu().numpy())
    return out


def assignment_entropy(assignments: list[np.ndarray]) -> dict:
    """How spread each history's expert assignments are, averaged over histories.

    entropy: mean over histories of the entropy (nats) of the assignment histogram;
    effective_experts: mean of exp(entropy), the number of equally used experts it matches.
    """
    ents = [_entropy(np.bincount(a)) for a in assignments if len(a)]
    return {"entropy": float(np.mean(ents)),
            "effective_experts": float(np.mean(np.exp(ents)))}  # fmt: skip


def per_user_nmi(assignments: list[np.ndarray], labels: list[np.ndarray]) -> float:
    """Mean over users of NMI(expert assignment, planted interest) within each history.

    Retrieved experts differ from user to user, so expert indices mean nothing across users;
    within one history they should still separate its interests. labels[u] aligns with
    assignments[u] (the same last items).
    """
    scores = [nmi(a, lab) for a, lab in zip(assignments, labels) if len(a) > 1]
    return float(np.mean(scores))


def shuffled_per_user_nmi(assignments, labels, seed: int = 0) -> float:
    """`per_user_nmi` after shuffling each history's labels: its chance level."""
    rng = np.random.default_rng(seed)
    return per_user_nmi(assignments, [rng.permutation(lab) for lab in labels])


@torch.no_grad()
def slot_counts(model, histories: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """How many times each of the M memory slots is retrieved over `histories` (int64 (M,))."""
    model.eval()
    counts = torch.zeros(model.memory.num_slots, dtype=torch.long)
    for start in range(0, len(histories), batch_size):
        items = model.prepare(histories[start : start + batch_size])
        slots = model.encode(items).slots  # (b, e)
        counts += torch.bincount(slots.flatten().cpu(), minlength=len(counts))
    return counts.numpy()


def usage_stats(counts) -> dict:
    """Fraction of slots ever used, and usage entropy relative to uniform over all slots."""
    counts = np.asarray(counts, dtype=np.float64)
    used = float((counts > 0).mean())
    ent = _entropy(counts) if counts.sum() > 0 else 0.0
    return {"fraction_used": used, "entropy": ent,
            "relative_entropy": float(ent / np.log(len(counts)))}  # fmt: skip


def interest_stats(model, histories) -> dict:
    """Slot usage (memory models) and assignment entropy (dispatcher models) on `histories`."""
    out = {}
    if model.has_memory:
        out["slots"] = usage_stats(slot_counts(model, histories))
    if model.has_experts:
        out["assignments"] = assignment_entropy(expert_assignments(model, histories))
    return out
