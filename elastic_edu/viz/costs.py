"""Cost figures: the bench's log-log curves, any log-log series, the long-context study."""

from __future__ import annotations

import plotly.graph_objects as go

from elastic_edu.viz.common import (
    FAILED_KEY,
    FLOP_KEY,
    METRICS,
    PALETTE,
    SLOPE_FROM,
    _layout,
    _np,
    display_name,
    length_ticks,
    log_ticks,
    loglog_slope,
    with_slope,
)


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


def study_runs(study: dict) -> dict[str, dict]:
    """A long-range study's runs keyed by the registry model they trained: the study's
    ``elastic`` entry is its ``elastic_model`` (files from before that key, commit 7dc3014, ran
    the non-causal elastic-bidir), ``elastic_no_curriculum`` becomes ``<model>:no-curriculum``."""
    elastic = study.get("elastic_model", "elastic-bidir")
    rename = {"elastic": elastic, "elastic_no_curriculum": f"{elastic}:no-curriculum"}
    return {rename.get(m, m): v for m, v in study.items() if isinstance(v, dict) and "HR@1" in v}


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
    runs = [study_runs(s) for s in studies]
    models = list(dict.fromkeys(m for r in runs for m in r))
    for i, model in enumerate(models):
        ys, texts = [], []
        for r in runs:
            run = r.get(model)
            value = None if run is None else run.get(metric, run["test"].get(metric))
            ys.append(value)
            texts.append("" if run is None else f"N={run['max_len']}")
            if run is not None:
                chance.add(run["chance_HR@1"])
        base, _, tag = model.partition(":")
        name = display_name(base) + (", no curriculum" if tag == "no-curriculum" else "")
        fig.add_trace(go.Bar(
            x=groups, y=ys, name=name, text=texts, textposition="outside",
            marker_color=PALETTE[i % len(PALETTE)],
        ))  # fmt: skip
    if metric == "HR@1" and len(chance) == 1:
        fig.add_hline(y=chance.pop(), line_dash="dash", line_color="gray", annotation_text="chance")
    return _layout(
        fig, f"Long-range recall: test {metric}", "task (distance from the key to its answer)",
        f"test {metric}", barmode="group",
        yaxis_range=[0, 1.1],
    )  # fmt: skip
