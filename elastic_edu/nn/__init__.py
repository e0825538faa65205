"""Einops layers: `attend` (the one softmax-attention step), causal self-attention, linear
dispatcher attention, causal dispatcher attention (its chunkwise numerics in `chunkwise`),
product-key memory, and what each layer costs (`flops`).

Slow float64 loop references for tests and notebooks live in `elastic_edu.nn.reference`.
"""

from elastic_edu.nn.attention import CausalSelfAttention, FeedForward, TransformerBlock, attend
from elastic_edu.nn.dispatcher import DispatcherAttention, DispatcherBlock, DispatcherOutput
from elastic_edu.nn.product_keys import ProductKeyMemory, Retrieval, product_key_topk

__all__ = [
    "CausalSelfAttention",
    "DispatcherAttention",
    "DispatcherBlock",
    "DispatcherOutput",
    "FeedForward",
    "ProductKeyMemory",
    "Retrieval",
    "TransformerBlock",
    "attend",
    "product_key_topk",
]
