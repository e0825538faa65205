"""Plotly figures for the notebooks, widgets and README: plain arrays and dicts in, `go.Figure` out.

Functions never take a model and never call ``fig.show()``; tensors are accepted and converted
with ``.detach().cpu()``. Every figure uses `TEMPLATE`, a title and axis labels with units, and
human names (`display_name`) for the keys of results files in its titles and legends. Log-log
figures carry each line's fitted slope in its legend entry and spell out every tick label
(`log_ticks`: 0.5 reads "0.5", not "5").

- `complexity_figure`: the bench JSON (`elastic_edu.bench`) as log-log latency or memory against
  history length N, with each model's FLOP curve dashed beside its measured points.
- `loglog_figure`: any named (x, y) series on log-log axes, slopes in the legend.
- data: `length_histogram`, `popularity_curve`; training: `training_curves`, `bar_table`;
  inside a model: `attention_heatmap`, `expert_heatmap`, `assignment_strip` (with a colour
  legend), `slot_usage`; synthetic studies: `long_context_figure` (test HR@1 per model).
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from elastic_edu.plotstyle import (
    display_name,
    length_ticks,
    log_ticks,
    loglog_slope,
    with_slope,
)

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


def complexity_figure(
    bench: dict,
    metric: str = "latency_ms",
    mode: str = "inference",
    flops: bool = True,
    slope_from: int | None = SLOPE_FROM,
) -> go.Figure:
    """Log-log `metric` ("latency_ms" or "peak_mb") against N for every model of one `mode`.

    Solid lines: measured ok points, each legend entry with its log-log slope over
    N >= `slope_from` (all points when fewer than two reach it). Dashed (same colour, same
    axis): the model's FLOPs scaled so that they equal its measurement at its smallest measured
    N, so the slopes compare directly. Crosses: points that ran out of memory or time, drawn
    where the FLOP curve projects them from the model's largest measured N (never measured).
    Traces are named for readers (`display_name`); ``legendgroup`` keeps the file's label.
    """
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}: choose one of {sorted(METRICS)}")
    name, unit = METRICS[metric]
    points = [p for p in bench["points"] if p["mode"] == mode]
    labels = list(dict.fromkeys(p["model"] for p in points))
    fig = go.Figure()
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        pts = sorted((p for p in points if p["model"] == label), key=lambda p: p["n"])
        ok = [p for p in pts if p["status"] == "ok" and (p.get(metric) or 0) > 0]
        shown = display_name(label)
        slope = loglog_slope([p["n"] for p in ok], [p[metric] for p in ok], slope_from)
        fig.add_trace(go.Scatter(
            x=[p["n"] for p in ok], y=[p[metric] for p in ok], name=with_slope(shown, slope),
            legendgroup=label,
            mode="lines+markers", line={"color": color},
            hovertemplate=f"{shown}<br>N=%{{x}}<br>%{{y:.3g}} {unit}<extra></extra>",
        ))  # fmt: skip
        counted = [p for p in pts if p.get("flops")]
        scale = ok[0][metric] / ok[0]["flops"] if ok and ok[0].get("flops") else None
        if flops and scale and counted:
            fig.add_trace(go.Scatter(
                x=[p["n"] for p in counted], y=[p["flops"] * scale for p in counted],
                name=f"{shown} FLOPs", legendgroup=label, showlegend=False, mode="lines",
                line={"color": color, "dash": "dash", "width": 1},
                customdata=[p["flops"] for p in counted],
                hovertemplate=f"{shown}<br>N=%{{x}}<br>%{{customdata:.3g}} FLOP<extra></extra>",
            ))  # fmt: skip
        failed = [p for p in pts if p["status"] != "ok"]
        if failed:
            last = ok[-1] if ok else None
            fig.add_trace(go.Scatter(
                x=[p["n"] for p in failed], y=[_project(last, p, metric) for p in failed],
                name=f"{shown} failed", legendgroup=label, showlegend=False, mode="markers",
                marker={"color": color, "symbol": "x-open", "size": 11},
                text=[p["status"] for p in failed],
                hovertemplate=f"{shown}<br>N=%{{x}}: %{{text}} (FLOP-projected)<extra></extra>",
            ))  # fmt: skip
    if flops:  # legend keys for the dashed curves and the crosses
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=FLOP_KEY,
                                 line={"color": "grey", "dash": "dash"}))  # fmt: skip
    if any(p["status"] != "ok" for p in points):
        cross = {"color": "grey", "symbol": "x-open", "size": 11}
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=FAILED_KEY, marker=cross))
    s = bench.get("settings", {})
    where = bench.get("device_name") or bench.get("device", "")
    step = "inference" if mode == "inference" else "training step"
    title = (f"{name.capitalize()} against history length, {step} "
             f"({where}, batch {s.get('batch', '?')}, {s.get('dtype', '')})")  # fmt: skip
    if slope_from:
        title += (
            f"<br><sup>legend: log-log slope over N ≥ {slope_from:,} (1 linear, 2 quadratic)</sup>"
        )
    _layout(fig, title, "history length N (items)", f"{name} ({unit})")
    ys = [y for tr in fig.data for y in (tr.y or ()) if y is not None]
    fig.update_xaxes(**length_ticks(p["n"] for p in points))
    fig.update_yaxes(**log_ticks(ys))
    return fig


def loglog_figure(
    series: dict[str, tuple],
    title: str,
    x_title: str,
    y_title: str,
    *,
    dashed: set[str] | frozenset = frozenset(),
    markers: set[str] | frozenset = frozenset(),
    colors: dict[str, int] | None = None,
    slope_from: float | None = None,
) -> go.Figure:
    """Named (x, y) series on log-log axes, each legend entry with its fitted slope.

    dashed: names drawn as dashed lines (a formula beside a measurement); markers: names drawn
    as open markers only (measured points); colors: name -> palette index (default: the series'
    position), to pair a formula with its measurement. Slopes over x >= `slope_from` (default:
    all points).
    """
    fig = go.Figure()
    for i, (label, (x, y)) in enumerate(series.items()):
        x, y = _np(x).astype(float), _np(y).astype(float)
        color = PALETTE[(colors or {}).get(label, i) % len(PALETTE)]
        style = {"mode": "lines+markers", "line": {"color": color}}
        if label in dashed:
            style = {"mode": "lines", "line": {"color": color, "dash": "dash"}}
        if label in markers:
            style = {"mode": "markers",
                     "marker": {"size": 10, "symbol": "circle-open", "color": color}}  # fmt: skip
        fig.add_trace(go.Scatter(x=x, y=y, name=with_slope(label, loglog_slope(x, y, slope_from)),
                                 legendgroup=label, **style))  # fmt: skip
    _layout(fig, title, x_title, y_title)
    xs = [v for tr in fig.data for v in tr.x]
    fig.update_xaxes(**log_ticks(xs))
    fig.update_yaxes(**log_ticks([v for tr in fig.data for v in tr.y]))
    return fig


def _project(last: dict | None, p: dict, metric: str) -> float:
    """Where a failed point is drawn: the last measured value times the FLOP ratio."""
    if last is None:
        return 1.0
    if p.get("flops") and last.get("flops"):
        return last[metric] * p["flops"] / last["flops"]
    return last[metric]


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

    histories: label -> rows such as `elastic_edu.train.fit` writes ({"epoch", "loss", ...});
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


def long_context_figure(studies: list[dict], metric: str = "HR@1") -> go.Figure:
    """Bars of `metric` for each model of each long-range study, with chance as a dashed line.

    studies: the ``long_context`` parts of `scripts/synthetic_studies.py` result files; each
    has ``distance`` and one entry per trained model (``elastic``, ``sasrec``, ...) holding
    ``max_len``, ``HR@1``, ``chance_HR@1`` and ``test`` (HR@10 and the rest). One group of bars
    per study (its distance), one bar per model, labelled with the N it read.
    """
    if not studies:
        raise ValueError("no long-context studies to plot")
    fig, chance = go.Figure(), set()
    groups = [f"distance {s['distance']}" for s in studies]
    models = list(
        dict.fromkeys(
            m for s in studies for m, v in s.items() if isinstance(v, dict) and "HR@1" in v
        )
    )
    for i, model in enumerate(models):
        ys, texts = [], []
        for s in studies:
            run = s.get(model)
            value = None if run is None else run.get(metric, run["test"].get(metric))
            ys.append(value)
            texts.append("" if run is None else f"N={run['max_len']}")
            if run is not None:
                chance.add(run["chance_HR@1"])
        fig.add_trace(go.Bar(
            x=groups, y=ys, name=display_name(model), text=texts, textposition="outside",
            marker_color=PALETTE[i % len(PALETTE)],
        ))  # fmt: skip
    if metric == "HR@1" and len(chance) == 1:
        fig.add_hline(y=chance.pop(), line_dash="dash", line_color="gray", annotation_text="chance")
    return _layout(
        fig, f"Long-range recall: test {metric}", "task (distance from the key to its answer)",
        f"test {metric}", barmode="group",
        yaxis_range=[0, 1.1],
    )  # fmt: skip
