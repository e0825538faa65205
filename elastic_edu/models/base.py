"""What every recommender here shares: its facts, one path from histories to scores, the losses.

    histories (lists of item ids) --prepare--> items (b, c + n) left-padded: the window of the
        last N = `window` items, after the `context` older items only retrieval reads (c = 0
        for most models) --encode--> states (b, n, d)
        --final state . item embeddings--> scores (b, i)

The model owns the whole path (`score`), so evaluation, `recommend` and the widgets rank what
training optimises. Objectives (docs/DESIGN.md, "Training objectives"):

    all    every position t predicts the item after it (causal models only: a non-causal
           encoder would read the answer)
    cut    a history predicts the item that follows it: one target per forward pass
    cloze  a fraction of the items is replaced by [MASK] and predicted from both sides; at
           evaluation [MASK] is appended after the history and read there (non-causal models)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import nn

from elastic_edu.config import ModelConfig
from elastic_edu.histories import PAD, mask_id, pad_left

OBJECTIVES = ("all", "cut", "cloze")
FLOAT = 4  # bytes per number


class NonFiniteScores(FloatingPointError):
    """A model gave NaN or infinite scores to real items: its weights have diverged."""


def check_finite(scores: torch.Tensor, where: str = "") -> None:
    """Raise NonFiniteScores when any real item (not padding) has a NaN or +-inf score."""
    bad = ~torch.isfinite(scores[:, PAD + 1 :])
    if bad.any():
        users, items = int(bad.any(dim=1).sum()), int(bad.any(dim=0).sum())
        raise NonFiniteScores(
            f"the model gives NaN or infinite scores{where} to {users} of {len(scores)} users "
            f"and {items} of {scores.shape[1] - 1} items: its weights have diverged (lower the "
            "learning rate); no metric is computed from such scores"
        )


@dataclass
class EncoderOutput:
    """What a forward pass returns; the weights only when asked for (for plots and widgets).

    hidden: (b, n, d) states. pad: (b, n) True at padding.
    attention: per layer (b, h, n, n) causal attention weights (SASRec).
    aggregate: per layer (b, h, e, n) expert-reads-history weights (dispatcher models).
    dispatch: per layer (b, h, n, e) position-reads-experts weights (dispatcher models).
    slots, slot_scores: (b, e) retrieved memory slots and their scores (ELASTIC).
    balance: the memory's sub-key load-balancing loss for this batch (ELASTIC).
    """

    hidden: torch.Tensor
    pad: torch.Tensor
    attention: list[torch.Tensor] = field(default_factory=list)
    aggregate: list[torch.Tensor] = field(default_factory=list)
    dispatch: list[torch.Tensor] = field(default_factory=list)
    slots: torch.Tensor | None = None
    slot_scores: torch.Tensor | None = None
    balance: torch.Tensor | None = None


class Recommender(nn.Module):
    """The scoring interface shared by neural models and popularity.

    A subclass declares its facts as class attributes (below: what the registry, `fit`, the
    bench and the evaluation read, never a model's name) and implements `final_state` and
    `item_repr`; a model with an encoder also its cost, `flops` and `attention_numbers`.
    """

    name: ClassVar[str] = ""  # its registry name
    objectives: ClassVar[tuple[str, ...]] = ()  # what `fit` may train it with (none: counted)
    default_objective: ClassVar[str | None] = None
    causal: ClassVar[bool] = False  # the state at t depends on items up to t only
    streams: ClassVar[bool] = False  # offers start/step for event-by-event inference
    encodes: ClassVar[bool] = False  # a neural encoder of histories (`encode`): what the bench runs
    backends: ClassVar[tuple[str, ...]] = ()  # attention back-ends (ModelConfig.attention)
    has_experts: ClassVar[bool] = False  # k interest experts per window (ModelConfig.num_experts)
    has_memory: ClassVar[bool] = False  # experts retrieved from the interest memory (.memory)
    search_space: ClassVar[tuple] = ()  # what `tune` varies (elastic_edu.models.search_space)

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.num_items < 1:
            raise ValueError("config.num_items must be set to the catalogue size (>= 1)")
        self.config = config

    @property
    def device(self) -> torch.device:
        """Where the model's first parameter (or buffer) lives."""
        tensor = next(self.parameters(), None)
        tensor = tensor if tensor is not None else next(self.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @property
    def window(self) -> int:
        """N: how many of a history's latest positions the encoder reads (config.max_len)."""
        return self.config.max_len

    @property
    def context(self) -> int:
        """How many older items before the window only the retrieval query reads (0: none)."""
        return 0

    def prepare(self, histories: Sequence[Sequence[int] | np.ndarray]) -> torch.Tensor:
        """Histories (time-ordered item ids) -> items (b, c + n) left-padded, on the model's
        device: at most `context` older items, then at most `window` latest ones."""
        return pad_left(histories, keep=self.context + self.window).to(self.device)

    def final_state(self, items: torch.Tensor) -> torch.Tensor:
        """items (b, n) -> (b, d): the user's representation after the latest item."""
        raise NotImplementedError

    def item_repr(self) -> torch.Tensor:
        """(i, d): one vector per item id, row 0 (padding) included."""
        raise NotImplementedError

    def score(self, histories) -> torch.Tensor:
        """Histories (a list of id sequences, or items (b, n) from `prepare`) -> scores (b, i).

        The next-item score of item i is final state . item vector; padding id 0 scores -inf.
        """
        items = histories if torch.is_tensor(histories) else self.prepare(histories)
        return self.scores_from(self.final_state(items))

    def scores_from(self, user: torch.Tensor) -> torch.Tensor:
        """user (b, d) final states -> scores (b, i): user . item vectors, padding -inf."""
        scores = einsum(user, self.item_repr(), "b d, i d -> b i").float()
        scores[:, PAD] = float("-inf")
        return scores

    def memory_parameters(self) -> list[nn.Parameter]:
        """Parameters that want the memory learning rate (TrainConfig.memory_lr_scale): the
        interest memory's value rows, for a model that has one."""
        return self.memory.memory_parameters() if self.has_memory else []

    def flops(self, batch: int, n: int, context: int = 0) -> int:
        """Matrix-product FLOPs of ``encode`` on items (batch, context + n): n positions in the
        window, `context` older items before it (`elastic_edu.nn.flops` has the formulas)."""
        raise ValueError(f"{type(self).__name__}: no formula for model {self.name!r}")

    def activation_bytes(self, batch: int, targets: int) -> int:
        """Rough bytes of one training batch's activations outside the interest memory: 16
        numbers per position, feature and layer, 3 per target and catalogue item (the logits),
        and what the model's attention keeps (`attention_numbers`)."""
        c = self.config
        numbers = 16 * batch * self.window * c.dim * c.layers
        numbers += 3 * batch * targets * (c.num_items + 2)
        return FLOAT * (numbers + self.attention_numbers(batch))

    def attention_numbers(self, batch: int) -> int:
        """Numbers one training batch's attention keeps beyond the 16 per position and feature
        that `activation_bytes` counts (0: nothing more)."""
        return 0


class SequentialRecommender(Recommender):
    """Neural sequential recommender: item (+ position) embeddings, encoder, tied output.

    Positions are counted from the end of the history (0 = most recent item), so left padding
    and left truncation never change which embedding an item receives. A model without
    `positions` (the causal dispatcher models) gets its order from the layers instead, so a
    state carried event by event stays valid as the history grows.
    """

    encodes = True
    positions: ClassVar[bool] = True
    final_norm: ClassVar[bool] = True  # a LayerNorm on the encoder's output (self.norm)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        cloze = "cloze" in self.objectives
        self.item_emb = nn.Embedding(config.num_items + 1 + cloze, config.dim, padding_idx=PAD)
        if self.positions:
            self.pos_emb = nn.Embedding(self.window, config.dim)
        self.drop = nn.Dropout(config.dropout)
        if self.final_norm:
            self.norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        if self.positions:
            nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()

    @property
    def mask_token(self) -> int:
        """The [MASK] id (cloze models only)."""
        if "cloze" not in self.objectives:
            raise ValueError(f"{type(self).__name__} is not trained with the cloze objective")
        return mask_id(self.config.num_items)

    def embed(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (b, n), n <= window -> inputs (b, n, d) and pad mask (b, n)."""
        if items.shape[1] > self.window:  # `prepare` and the samplers keep the window
            raise ValueError(f"items of {items.shape[1]} positions: the window holds {self.window}")
        pad = items == PAD
        if pad.all(dim=1).any():
            raise ValueError("a history in the batch is empty (all padding)")
        x = self.item_emb(items) * self.config.dim**0.5
        if self.positions:
            n = items.shape[1]
            x = x + self.pos_emb(torch.arange(n - 1, -1, -1, device=items.device))
        x = self.drop(x) * rearrange(~pad, "b n -> b n 1")
        return x, pad

    def encode(self, items: torch.Tensor, return_weights: bool = False) -> EncoderOutput:
        """items (b, n) left-padded ids -> EncoderOutput with hidden (b, n, d)."""
        raise NotImplementedError

    def final_state(self, items: torch.Tensor) -> torch.Tensor:
        return self.encode(items).hidden[:, -1]

    def compiled_encode(self, mode: str = "default"):
        """`encode` under torch.compile (the bench's ``+compile`` labels): the whole function,
        unless a model knows a better part to compile."""
        return torch.compile(self.encode, mode=mode)

    def item_repr(self) -> torch.Tensor:
        """(i, d): the item embeddings, padding row included, [MASK] excluded."""
        return self.item_emb.weight[: self.config.num_items + 1]

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, objective: str) -> torch.Tensor:
        """Full-softmax cross-entropy over all items.

        ``all`` and ``cloze``: targets (b, n), 0 where a position has nothing to predict.
        ``cut``: targets (b,), the item after each history.
        """
        if objective not in self.objectives:
            raise ValueError(self.objective_error(objective))
        items = self.item_repr()
        out = self.encode(inputs)
        if objective == "cut":
            user, targets = out.hidden[:, -1], targets  # (t = b, d)
        else:  # only the positions that have a target: padding never reaches the output layer
            hidden = out.hidden[:, -targets.shape[1] :]
            real = targets != PAD
            user, targets = hidden[real], targets[real]  # (t, d), (t,)
        logits = einsum(user, items, "t d, i d -> t i").float()
        logits[:, PAD] = float("-inf")
        loss = F.cross_entropy(logits, targets, ignore_index=PAD)
        weight = self.config.memory.balance if self.has_memory else 0.0
        if weight and out.balance is not None:  # spread the users over the memory's slots
            loss = loss + weight * out.balance
        return loss

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, objective: str) -> torch.Tensor:
        """The training loss (what DistributedDataParallel wraps): see `loss`."""
        return self.loss(inputs, targets, objective)

    def objective_error(self, objective: str) -> str:
        """Why this model refuses `objective`, in words a learner can act on."""
        if objective == "all" and not self.causal:
            return (
                f"{type(self).__name__} is not causal: its experts read the whole history, so "
                "the state at position t already saw the items after t. Training every position "
                "would leak the future. Use objective='cloze' (masked items) or 'cut' "
                "(history -> next item), or a causal model such as 'elastic-causal'."
            )
        return f"objective={objective!r}: {type(self).__name__} supports {self.objectives}"


class CausalRecommender(SequentialRecommender):
    """A sequential model whose state at t reads the items up to t only: it trains on every
    position of a window (objective ``all``, its default) or on random cuts."""

    objectives = ("all", "cut")
    default_objective = "all"
    causal = True
