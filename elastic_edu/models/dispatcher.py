"""ELASTIC (Deng et al., arXiv 2408.09380) as the paper describes it, and its LDA-only ablation:
the bidirectional dispatcher encoder with either experts source.

    embed the history (and a [MASK] after it) -> k experts from the source, the query reading
    the embedded window -> L dispatcher blocks (experts read the history, positions read the
    experts) -> LayerNorm -> state at the [MASK] . item embeddings

    ELASTIC   (elastic-bidir)  experts retrieved from the product-key interest memory
    LDAOnly   (lda-bidir)      k plain learned experts shared by every user (no memory)

The experts read the whole history, so the state at position t depends on items after t: these
encoders are not causal. They train with the ``cloze`` objective (masked items predicted from
both sides, BERT4Rec-style) or ``cut`` (a history predicts the next item), and always read their
prediction at a [MASK] token appended after the history (docs/DESIGN.md, "Training objectives").
The causal forms are in `elastic_edu.models.causal_dispatcher`.
"""

from __future__ import annotations

import torch

from elastic_edu.config import ModelConfig
from elastic_edu.models.base import EncoderOutput
from elastic_edu.models.experts import DispatcherModel
from elastic_edu.models.registry import register
from elastic_edu.models.search_space import EXPERTS, HEADS, MEMORY, SHARED
from elastic_edu.nn.dispatcher import DispatcherBlock
from elastic_edu.nn.flops import dispatcher_flops, feedforward_flops


class DispatcherEncoder(DispatcherModel):
    """The bidirectional body: experts that read the whole window, a [MASK] to predict at."""

    objectives = ("cloze", "cut")
    default_objective = "cloze"

    def __init__(self, config: ModelConfig):
        super().__init__(config, lambda: DispatcherBlock(config.dim, config.heads, config.dropout))

    def readout(self, items: torch.Tensor) -> torch.Tensor:
        """items (b, n) -> (b, n') the last window - 1 items and a [MASK] to predict at."""
        items = items[:, -(self.window - 1) :] if self.window > 1 else items[:, :0]
        mask = torch.full_like(items[:, :1], self.mask_token)
        return torch.cat([items, mask], dim=1)

    def prepare(self, histories) -> torch.Tensor:
        return self.readout(super().prepare(histories))

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, objective: str) -> torch.Tensor:
        if objective == "cut":  # the history before the cut, then the [MASK] that predicts
            inputs = self.readout(inputs)
        return super().loss(inputs, targets, objective)

    def encode(
        self, items: torch.Tensor, return_weights: bool = False, num_experts: int | None = None
    ) -> EncoderOutput:
        """items (b, n) left-padded ids -> EncoderOutput; per-layer weights when asked.

        num_experts: for ELASTIC, retrieve this many experts instead of the trained k.
        """

        def retrieve(x, pad):  # the query reads the window
            return self.initial_experts(x, pad, num_experts)

        return self.read_window(items, retrieve, return_weights)

    def flops(self, batch: int, n: int, context: int = 0) -> int:
        """L (dispatcher attention + feed-forward), and a retrieval pooling the n positions."""
        c = self.config
        layer = dispatcher_flops(batch, n, c.num_experts, c.dim)
        layers = c.layers * (layer + feedforward_flops(batch, n, c.dim))
        return layers + self.retrieval_flops(batch, pooled=n)

    def attention_numbers(self, batch: int) -> int:
        """The two score tensors of every layer, (b, h, e, n) and (b, h, n, e), twice each."""
        c = self.config
        return 4 * batch * c.heads * c.num_experts * self.window * c.layers


@register
class ELASTIC(DispatcherEncoder):
    """The paper's reading: k experts retrieved from a product-key memory read the whole history."""

    name = "elastic-bidir"
    has_memory = True
    search_space = (*SHARED, HEADS, EXPERTS, *MEMORY)  # its query reads the window: no context


@register
class LDAOnly(DispatcherEncoder):
    """Ablation: k learned experts, the same for every user, read the whole history."""

    name = "lda-bidir"
    search_space = (*SHARED, HEADS, EXPERTS)
