"""Inside a model: attention and expert heatmaps, assignment strips, memory slot usage."""

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
)


def attention_heatmap(weights, title: str = "Attention weights", labels=None) -> go.Figure:
    """(n, n) weights: row = query position, column = key position it reads."""
    w = _np(weights)
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"weights must be (n, n), got {w.shape}")
    fig = go.Figure(go.Heatmap(
        z=w, colorscale="Blues", colorbar={"title": "weight"},
        hovertemplate="query %{y} reads key %{x}: %{z:.3f}<extra></extra>",
    ))  # fmt: skip
    _layout(fig, title, "key position (item read)", "query position")
    fig.update_yaxes(autorange="reversed")
    if labels is not None:
        fig.update_traces(text=[[str(lab) for lab in labels]] * len(w))
    return fig


def expert_heatmap(
    aggregate, item_labels=None, title: str = "What each expert reads (aggregate weights)"
) -> go.Figure:
    """(e, n) aggregate weights of one user (heads averaged): row = expert, column = position."""
    a = _np(aggregate)
    if a.ndim != 2:
        raise ValueError(f"aggregate must be (e, n), got {a.shape}")
    text = None if item_labels is None else [[str(x) for x in item_labels]] * a.shape[0]
    fig = go.Figure(go.Heatmap(
        z=a, y=[f"expert {e}" for e in range(a.shape[0])], colorscale="Viridis",
        colorbar={"title": "weight"}, text=text,
        hovertemplate="%{y} reads position %{x}" + (": %{text}" if text else "")
        + "<br>weight %{z:.3f}<extra></extra>",
    ))  # fmt: skip
    return _layout(fig, title, "history position (oldest left)", "expert")


def _discrete_scale(k: int) -> list:
    """A stepwise colorscale with `k` flat bands for integer values 0..k-1."""
    k = max(k, 1)
    out = []
    for i in range(k):
        c = PALETTE[i % len(PALETTE)]
        out += [[i / k, c], [(i + 1) / k, c]]
    return out


def assignment_strip(
    assign, labels=None, planted=None, planted_labels=None, title: str = "Expert assignment"
) -> go.Figure:
    """(n,) expert per position (argmax of dispatch weights); optionally planted labels below.

    labels: names of the experts; planted (n,): ground-truth interest per position. The first
    traces are the strips (one heatmap per row, in row order); a legend below the figure names
    the colour of every expert (and planted interest) that occurs, one legend group per row.
    """
    rows = [("expert", _np(assign).astype(int), labels)]
    if planted is not None:
        rows.append(("planted interest", _np(planted).astype(int), planted_labels))
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    keys = []
    for r, (name, values, names) in enumerate(rows, start=1):
        k = int(values.max()) + 1 if values.size else 1
        text = [[str(names[v]) if names is not None else str(v) for v in values]]
        fig.add_trace(go.Heatmap(
            z=[values], y=[name], zmin=-0.5, zmax=k - 0.5, colorscale=_discrete_scale(k),
            showscale=False, text=text, name=name,
            hovertemplate=f"position %{{x}}: {name} %{{text}}<extra></extra>",
        ), row=r, col=1)  # fmt: skip
        for v in sorted(set(values.tolist())):
            label = str(names[v]) if names is not None else f"{name} {v}"
            keys.append(go.Scatter(
                x=[None], y=[None], mode="markers", name=label, legendgroup=name,
                showlegend=True,
                marker={"symbol": "square", "size": 12, "color": PALETTE[v % len(PALETTE)]},
            ))  # fmt: skip
    for key in keys:  # legend keys after every strip, so data[r] is row r's strip
        fig.add_trace(key, row=1, col=1)
    fig.update_xaxes(title_text="history position (oldest left)", row=len(rows), col=1)
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    legend_rows = math.ceil(len(keys) / 5)  # a horizontal legend under the axis title
    return fig.update_layout(
        template=TEMPLATE, title=title, height=190 + 70 * len(rows) + 24 * legend_rows,
        legend={"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0.01, "x": 0,
                "traceorder": "normal"},
        margin={"b": 70 + 24 * legend_rows},
    )  # fmt: skip


def slot_usage(counts, title: str = "Memory slot usage") -> go.Figure:
    """Retrievals per memory slot, sorted; fraction of slots used and entropy in the title.

    Entropy is of the retrieval distribution in nats; log M is its maximum (uniform use).
    """
    c = _np(counts).astype(float).ravel()
    m = len(c)
    p = c / c.sum() if c.sum() > 0 else np.zeros_like(c)
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    used = float((c > 0).mean()) if m else 0.0
    fig = go.Figure(go.Scatter(x=np.arange(1, m + 1), y=np.sort(c)[::-1], mode="lines",
                               name="slots", fill="tozeroy"))  # fmt: skip
    title = (f"{title}: {used:.1%} of {m} slots used, entropy {entropy:.2f} of "
             f"log M = {math.log(max(m, 1)):.2f} nats")  # fmt: skip
    return _layout(fig, title, "slot rank (most used first)", "retrievals")


def contingency_heatmap(
    table, title: str = "Expert assignment against planted interest", row: str = "expert",
    column: str = "interest",
) -> go.Figure:  # fmt: skip
    """(rows, columns) counts, e.g. positions assigned to expert r whose planted interest is c."""
    t = _np(table)
    if t.ndim != 2:
        raise ValueError(f"table must be 2-D, got {t.shape}")
    fig = go.Figure(go.Heatmap(
        z=t, x=[f"{column} {c}" for c in range(t.shape[1])],
        y=[f"{row} {r}" for r in range(t.shape[0])], colorscale="Blues",
        colorbar={"title": "count"}, hovertemplate="%{y}, %{x}: %{z}<extra></extra>",
    ))  # fmt: skip
    return _layout(fig, title, f"planted {column}", f"assigned {row}")
