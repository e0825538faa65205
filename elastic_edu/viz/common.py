"""What every figure shares: the template, the palette, arrays from tensors, the layout."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

TEMPLATE = "plotly_white"
PALETTE = qualitative.Plotly + qualitative.D3
FLOP_KEY, FAILED_KEY = "FLOPs, scaled at the smallest N", "out of memory / time"
METRICS = {"latency_ms": ("latency", "ms"), "peak_mb": ("peak memory", "MB")}
SLOPE_FROM = 2048  # slopes over the long end, as `elastic_edu.bench_report.summarise` fits them


def _np(x) -> np.ndarray:
    """Array from a list, numpy array or torch tensor (without importing torch)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _layout(fig: go.Figure, title: str, x: str, y: str, **kw) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=x, yaxis_title=y, **kw)
    return fig
