"""Data and training figures: history lengths, popularity, training curves, metric tables."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from elastic_edu.viz.common import (
    PALETTE,
    TEMPLATE,
    _layout,
    _np,
    display_name,
    log_ticks,
    loglog_slope,
    with_slope,
)


def length_histogram(lengths, nbins: int = 50, title: str = "History lengths") -> go.Figure:
    """Histogram of per-user sequence lengths (items), median and max in the title."""
    x = _np(lengths)
    fig = go.Figure(go.Histogram(x=x, nbinsx=nbins, name="users"))
    title = f"{title}: median {np.median(x):.0f}, mean {x.mean():.0f}, max {x.max():.0f}"
    return _layout(fig, title, "history length (items)", "users", bargap=0.05)


def popularity_curve(counts, title: str = "Item popularity") -> go.Figure:
    """Interactions per item against popularity rank, log-log; the head's share in the title,
    the fitted log-log slope of the curve (a Zipf exponent, over all ranks) in the legend."""
    c = np.sort(_np(counts).astype(float))[::-1]
    c = c[c > 0]
    top = max(1, math.ceil(0.1 * len(c)))
    share = c[:top].sum() / max(c.sum(), 1.0)
    ranks = np.arange(1, len(c) + 1)
    name = with_slope("items", loglog_slope(ranks, c))
    fig = go.Figure(go.Scatter(x=ranks, y=c, mode="lines", name=name, showlegend=True))
    _layout(fig, f"{title}: the top 10% of items hold {share:.0%} of interactions",
            "popularity rank", "interactions")  # fmt: skip
    fig.update_xaxes(**log_ticks([1, len(c)]))
    fig.update_yaxes(**log_ticks(c))
    return fig


def training_curves(
    histories: dict[str, list[dict]], metric: str = "valid_NDCG@10", loss: str | None = "loss"
) -> go.Figure:
    """Per-epoch `metric` (left) and training `loss` (right) for each labelled history.

    histories: label -> rows such as `elastic_edu.training.fit` writes ({"epoch", "loss", ...});
    rows without the metric (epochs without validation) are skipped.
    """
    cols = 2 if loss else 1
    names = [display_name(metric), display_name(loss) if loss else None][:cols]
    fig = make_subplots(rows=1, cols=cols, subplot_titles=names)
    for i, (label, rows) in enumerate(histories.items()):
        color = PALETTE[i % len(PALETTE)]
        for col, key in enumerate([metric, loss][:cols], start=1):
            have = [(r.get("epoch", j), r[key]) for j, r in enumerate(rows) if key in r]
            fig.add_trace(go.Scatter(
                x=[e for e, _ in have], y=[v for _, v in have], name=display_name(label),
                legendgroup=label, showlegend=col == 1, mode="lines+markers",
                line={"color": color},
            ), row=1, col=col)  # fmt: skip
            fig.update_xaxes(title_text="epoch", row=1, col=col)
    epochs = [r.get("epoch", j) for rows in histories.values() for j, r in enumerate(rows)]
    fig.update_xaxes(tick0=1, dtick=max(1, math.ceil(max(epochs, default=1) / 10)))  # whole epochs
    fig.update_yaxes(title_text=names[0], row=1, col=1)
    if loss:
        fig.update_yaxes(title_text=f"{names[1]} (cross-entropy, nats)", row=1, col=2)
    return fig.update_layout(template=TEMPLATE, title="Training curves")


def bar_table(
    rows: dict[str, dict[str, float]],
    metrics: list[str] | None = None,
    errors: dict[str, dict[str, float]] | None = None,
    title: str = "Test metrics",
) -> go.Figure:
    """Grouped bars: one group per metric, one bar per label (optional error bars)."""
    metrics = metrics or list(next(iter(rows.values())))
    fig = go.Figure()
    for i, (label, values) in enumerate(rows.items()):
        err = [errors[label].get(m) for m in metrics] if errors and label in errors else None
        fig.add_trace(go.Bar(
            x=metrics, y=[values.get(m) for m in metrics], name=display_name(label),
            legendgroup=label, marker_color=PALETTE[i % len(PALETTE)],
            error_y={"type": "data", "array": err} if err else None,
        ))  # fmt: skip
    return _layout(fig, title, "metric", "value", barmode="group")
