"""Causal ELASTIC and causal LDA-only: the causal dispatcher encoder with either experts source,
models that train on every position (ours).

    k experts from the source, the query reading only the user's older items (the
    `memory.context` items before the window) -> L causal dispatcher blocks -> LayerNorm
    -> state at t

    ELASTICCausal  (elastic-causal)  experts retrieved from the product-key interest memory
    LDACausal      (lda-causal)      k plain learned experts (no memory, no older items)

Each expert summarises every prefix of the history with a running softmax average
(`elastic_edu.nn.causal_dispatcher`), so the state at position t depends on items up to t only:
the models train on every next item of a window (objective ``all``), as SASRec does, and carry
their state event by event (`start`, `step`, `score_state`): each new event costs the same,
however long the history already is.

Why the retrieval reads the items *before* the window (docs/DESIGN.md, "Retrieval without the
future"): the experts must be fixed for the whole window, so their query may not read any item
of it. A history no longer than the window has no older items; its query is then the memory's
learned default (the query norm's bias), the same slots for every such user, and ELASTIC-causal
behaves as LDA-only with k experts drawn from the memory. `elastic_edu.evaluation` breaks the
accuracy down by history length to show what that costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from elastic_edu.config import ModelConfig
from elastic_edu.histories import PAD, is_int_id, item_ids, pad_left
from elastic_edu.models.base import CausalRecommender, EncoderOutput
from elastic_edu.models.experts import DispatcherModel
from elastic_edu.models.registry import register
from elastic_edu.models.search_space import CONTEXT, EXPERTS, HEADS, MEMORY, SHARED
from elastic_edu.nn.causal_dispatcher import CausalDispatcherBlock, LayerState
from elastic_edu.nn.flops import causal_dispatcher_flops, feedforward_flops


@dataclass
class StreamState:
    """Where a batch of streams stands after the events seen so far.

    experts (b, e, d) fixed for the stream; layers: one `LayerState` per block; time (b,) events
    seen; last (b, d) the final state after the latest event (None before any event);
    slots (b, e) the retrieved memory slots (ELASTIC-causal).
    """

    experts: torch.Tensor
    layers: list[LayerState]
    time: torch.Tensor
    last: torch.Tensor | None = None
    slots: torch.Tensor | None = None


class CausalDispatcherEncoder(DispatcherModel, CausalRecommender):
    """The causal body: experts fixed per window, L causal dispatcher blocks, no position table."""

    streams = True
    positions = False  # order comes from the experts' recency rates

    def __init__(self, config: ModelConfig):
        super().__init__(
            config, lambda: CausalDispatcherBlock(config.dim, config.heads, config.dropout)
        )

    @property
    def context(self) -> int:
        """The older items before the window that form the retrieval query (memory only)."""
        return self.config.memory.context if self.has_memory else 0

    def split(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """items (b, c + n) -> the window (b, n), its last `window` columns, and the older
        items before it (b, c)."""
        cut = max(items.shape[1] - self.window, 0)
        return items[:, cut:], items[:, :cut]

    def older_states(self, older: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """older (b, c) item ids -> what the retrieval query reads: their embeddings (b, c, d),
        zero at padding, and the padding (b, c); no older item reads as one padding item (the
        query is then the memory's learned default)."""
        if older.shape[1] == 0:
            older = torch.zeros(older.shape[0], 1, dtype=torch.long, device=older.device)
        pad = older == PAD
        return self.item_emb(older) * rearrange(~pad, "b c -> b c 1"), pad

    def compiled_encode(self, mode: str = "default"):
        """`encode` with each block's slice step under torch.compile (fixed shapes): a long
        window at inference is many slices of the same shape, so one compilation per block
        serves them all, where compiling `encode` whole would unroll every slice. Compiling
        costs about a minute per block on a 2-core CPU; it pays over hundreds of long passes
        (docs/RESULTS.md)."""
        for block in self.blocks:
            block.compile_slices(mode)
        return self.encode

    def encode(
        self, items: torch.Tensor, return_weights: bool = False, num_experts: int | None = None
    ) -> EncoderOutput:
        """items (b, c + n) left-padded ids (older items first) -> states of the window."""
        window, older = self.split(items)

        def retrieve(x, pad):  # the query reads the older items only: nothing of the window,
            return self.initial_experts(*self.older_states(older), num_experts)  # no future

        return self.read_window(window, retrieve, return_weights)

    def flops(self, batch: int, n: int, context: int = 0) -> int:
        """L (causal dispatcher attention + feed-forward), and a retrieval pooling the older
        items (one padding item when there are none)."""
        c = self.config
        layer = causal_dispatcher_flops(batch, n, c.num_experts, c.dim, c.heads)
        layers = c.layers * (layer + feedforward_flops(batch, n, c.dim))
        return layers + self.retrieval_flops(batch, pooled=max(context, 1))

    def attention_numbers(self, batch: int) -> int:
        """The chunk products of every layer: about 4 numbers per position, expert and feature."""
        c = self.config
        return 4 * batch * c.num_experts * self.window * c.dim * c.layers

    # ---- streaming: one event at a time ------------------------------------------------------
    def start(self, context=None, batch: int = 1) -> StreamState:
        """The state of `batch` new streams, before any event.

        context: older item ids per stream (a list of sequences, or (b, c) ids left-padded with
        0) that pick the experts (ELASTIC-causal); None or empty histories: the default experts.
        Ids are checked as `step` checks them.
        """
        if context is None:
            context = torch.zeros(batch, 0, dtype=torch.long, device=self.device)
        elif torch.is_tensor(context):
            self._ids("start", context[context != PAD], "context")
        else:
            seqs = [self._ids("start", c, f"context[{j}]").tolist() or [PAD]
                    for j, c in enumerate(context)]  # fmt: skip
            context = pad_left(seqs, max(len(c) for c in seqs + [[PAD]])).to(self.device)
        r = self.initial_experts(*self.older_states(context))
        layers = [block.start(r.experts) for block in self.blocks]
        time = torch.zeros(context.shape[0], dtype=torch.long, device=self.device)
        return StreamState(experts=r.experts, layers=layers, time=time, slots=r.slots)

    def step(self, state: StreamState, items) -> StreamState:
        """One new event per stream: items (b,) ids -> the new state (the old one is kept).

        Raises ValueError unless `items` holds one integer id in 1..I per stream (as
        `elastic_edu.models.recommend` checks a history).
        """
        items = self._ids("step", [items] if is_int_id(items) else items, "items")
        if items.shape[0] != state.time.shape[0]:
            raise ValueError(f"step: need one item per stream ({state.time.shape[0]} streams), "
                             f"got {items.tolist()}")  # fmt: skip
        items = items.to(self.device)
        time = state.time + 1
        x = self.item_emb(items) * self.config.dim**0.5  # (b, d), no dropout: inference
        layers = []
        for block, layer in zip(self.blocks, state.layers):
            x, layer = block.step(x, layer, time)
            layers.append(layer)
        return StreamState(experts=state.experts, layers=layers, time=time,
                           last=self.norm(x), slots=state.slots)  # fmt: skip

    def _ids(self, method: str, values, what: str) -> torch.Tensor:
        """`elastic_edu.histories.item_ids`, its error prefixed with the method's name."""
        try:
            return item_ids(values, self.config.num_items, what)
        except ValueError as err:
            raise ValueError(f"{method}: {err}") from None

    def score_state(self, state: StreamState) -> torch.Tensor:
        """Next-item scores (b, i) after the events a state has seen; padding scores -inf."""
        if state.last is None:
            raise ValueError("score_state: the streams have seen no event yet")
        return self.scores_from(state.last)


@register
class LDACausal(CausalDispatcherEncoder):
    """Causal dispatcher over k learned experts: every position predicts, O(1) per new event."""

    name = "lda-causal"
    search_space = (*SHARED, HEADS, EXPERTS)


@register
class ELASTICCausal(CausalDispatcherEncoder):
    """Causal ELASTIC: experts retrieved with the older history, then causal dispatcher blocks."""

    name = "elastic-causal"
    has_memory = True
    search_space = (*SHARED, HEADS, EXPERTS, *MEMORY, CONTEXT)
