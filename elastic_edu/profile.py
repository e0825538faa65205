"""Measuring cost: analytic memory estimates (checked before training).

`estimate_memory` adds up what one training run holds: parameters with their gradients and
AdamW's two moments, and the largest activations of one batch (the score tensors of every layer
and the logits over the catalogue). `check_memory` compares that with the memory available
(RAM, or the GPU's free memory) and names the setting to lower.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.device import choose_device

FLOAT = 4  # bytes


def estimate_memory(mc: ModelConfig, tc: TrainConfig) -> dict[str, float]:
    """Bytes one training run needs, by part: parameters (x4 with grads and AdamW), memory table,
    activations of one batch. Rough (within a small factor), but computed before allocating."""
    from elastic_edu.models import get_spec

    spec = get_spec(mc.model)
    b, n, d, i = tc.batch_size, mc.max_len, mc.dim, mc.num_items + 2
    e, h, layers = mc.num_experts, mc.heads, mc.layers
    dense = i * d + n * d + layers * 12 * d * d
    table = mc.memory.subkeys**2 * d if "memory" in spec.uses else 0
    targets = n if tc.objective in ("all", "cloze") else 1
    acts = b * n * d * layers * 16 + 3 * b * targets * i
    if mc.model == "sasrec" and mc.attention == "naive":
        acts += 3 * b * h * n * n * layers
    elif spec.name.endswith("-causal"):
        acts += 4 * b * e * n * d * layers
    elif "num_experts" in spec.uses:
        acts += 4 * b * h * e * n * layers
    return {"parameters": 4 * dense * FLOAT, "memory table": 4 * table * FLOAT,
            "activations": acts * FLOAT}  # fmt: skip


def available_memory(device: torch.device) -> float | None:
    """Free bytes on `device`: the GPU's free memory, or MemAvailable for the CPU."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    with suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    return None


def check_memory(mc: ModelConfig, tc: TrainConfig, fraction: float = 0.9) -> dict[str, float]:
    """Raise ValueError before training when the estimate exceeds `fraction` of free memory."""
    parts = estimate_memory(mc, tc)
    free = available_memory(choose_device(tc.device))
    need = sum(parts.values())
    if free is not None and need > fraction * free:
        biggest = max(parts, key=parts.get)
        advice = {"parameters": "--max-len, --dim or the catalogue (--kcore)",
                  "memory table": "--subkeys (M = subkeys**2 rows)",
                  "activations": "--batch-size, --max-len or --num-experts"}[biggest]  # fmt: skip
        detail = ", ".join(f"{k} {v / 2**30:.1f} GiB" for k, v in parts.items())
        raise ValueError(
            f"this run needs about {need / 2**30:.1f} GiB ({detail}) but {free / 2**30:.1f} GiB "
            f"is free: lower {advice}"
        )
    return parts
