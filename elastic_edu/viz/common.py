"""What every figure shares (`elastic_edu.viz`, the widgets): the template and palette, arrays
from tensors, the layout, and names, ticks and slopes.

- `display_name`: the key of a results file or a training history as a reader should see it
  ("elastic-k32" -> "ELASTIC (k = 32)", "valid_NDCG@10" -> "validation NDCG@10").
- `log_ticks`, `length_ticks`: log-axis ticks whose labels are whole numbers ("0.5", "20", "5k"),
  never the bare mantissas ("5") of plotly's default minor labels.
- `loglog_slope` (`elastic_edu.bench.report`'s, the one least-squares fit), `with_slope`: the
  fitted exponent of a power law, for legend entries.
"""

from __future__ import annotations

import math
import re

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from elastic_edu.bench.report import (  # noqa: F401 - shown here too: the one fit, label names
    LEGACY_BENCH,
    bench_label_model,
    loglog_slope,
)

TEMPLATE = "plotly_white"
PALETTE = qualitative.Plotly + qualitative.D3
FLOP_KEY, FAILED_KEY = "FLOPs, scaled at the smallest N", "out of memory / time"
METRICS = {"latency_ms": ("latency", "ms"), "peak_mb": ("peak memory", "MB")}
SLOPE_FROM = 2048  # slopes over the long end, as `elastic_edu.bench.report.summarise` fits them


def _np(x) -> np.ndarray:
    """Array from a list, numpy array or torch tensor (without importing torch)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _layout(fig: go.Figure, title: str, x: str, y: str, **kw) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=title, xaxis_title=x, yaxis_title=y, **kw)
    return fig


# keys of results files and training histories -> what a reader sees. "ELASTIC" alone names only
# the model `--model elastic` trains (elastic-causal); the other form always says it is non-causal
# (tests/test_names.py holds every label of every results file to this).
NAMES = {
    "sasrec-naive": "SASRec, naive attention",
    "sasrec-sdpa": "SASRec, fused attention (SDPA)",
    "sasrec": "SASRec",
    "sasrec:all": "SASRec, all positions",
    "sasrec:cut": "SASRec, random cuts",
    "elastic": "ELASTIC",
    "elastic-causal": "ELASTIC",
    "elastic-bidir": "ELASTIC-bidir (non-causal)",
    "lda-causal": "LDA-only",
    "lda-bidir": "LDA-only-bidir (non-causal)",
    "gru4rec": "GRU4Rec",
    "elastic_no_curriculum": "ELASTIC-bidir (non-causal), no curriculum",
    "lda": "LDA-only",
    "popularity": "Popularity",
    "loss": "training loss",
    "latency_ms": "latency (ms)",
    "peak_mb": "peak memory (MB)",
    "test": "test, all items ranked",
    "test_masked": "test, history masked",
}
OBJECTIVES = {"all": "all positions", "cut": "random cuts", "cloze": "cloze"}


def _qualified(name: str, detail: str) -> str:
    """A name with a detail in brackets: ("ELASTIC (causal)", "k = 8") -> "ELASTIC (causal,
    k = 8)", ("GRU4Rec", "cloze") -> "GRU4Rec (cloze)"."""
    return f"{name[:-1]}, {detail})" if name.endswith(")") else f"{name} ({detail})"


def display_name(key: str) -> str:
    """A human name for a results key: ``elastic-causal-k32`` -> "ELASTIC (k = 32)",
    ``elastic-bidir:cloze`` -> "ELASTIC-bidir (non-causal, cloze)", ``valid_NDCG@10`` ->
    "validation NDCG@10"; unknown keys come back unchanged."""
    if key in NAMES:
        return NAMES[key]
    labelled = re.fullmatch(r"(.+)-k(\d+)(\+\w+)?", key)  # bench labels: <model>-k<K>[+tag]
    if labelled and labelled[1] in NAMES:
        name, k, tag = LEGACY_BENCH.get(labelled[1], labelled[1]), labelled[2], labelled[3] or ""
        return _qualified(NAMES[name], f"k = {k}") + (" " + tag[1:] if tag else "")
    model, _, objective = key.partition(":")  # compare labels: <model>:<objective>
    if objective in OBJECTIVES and model in NAMES:
        return _qualified(NAMES[model], OBJECTIVES[objective])
    for prefix, name in (("valid_", "validation "), ("test_", "test ")):
        if key.startswith(prefix):
            return name + key[len(prefix) :]
    return key


def _short(v: float) -> str:
    """A tick label: 0.05, 0.5, 5, 50, 500, 5k, 50k, 5M, 5G (never a bare mantissa)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= scale:
            return f"{v / scale:g}{suffix}"
    return f"{v:g}"


def log_ticks(values, max_ticks: int = 9) -> dict:
    """Tick values and full labels for a log axis spanning `values` (positive numbers).

    1-2-5 steps per decade when they fit in `max_ticks`, else 1-3 steps, else decades only; every
    label is the whole number ("0.5", "20", "5k"), so none reads as a bare mantissa.
    Returns axis properties for ``fig.update_xaxes(**...)`` / ``update_yaxes``.
    """
    v = np.asarray([x for x in np.ravel(values) if x is not None and x > 0], dtype=float)
    if v.size == 0:
        return {"type": "log"}
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    for steps in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in steps]
        ticks = [x for x in ticks if v.min() / 1.5 <= x <= v.max() * 1.5]
        if len(ticks) <= max_ticks:
            break
    if len(ticks) > max_ticks:  # many decades: every other one
        ticks = ticks[:: math.ceil(len(ticks) / max_ticks)]
    return {"type": "log", "tickvals": ticks, "ticktext": [_short(x) for x in ticks]}


def length_ticks(lengths) -> dict:
    """Log-axis ticks at the measured lengths themselves (128, 256, ..., 16384)."""
    ns = sorted({int(n) for n in lengths if n})
    if len(ns) > 10:
        ns = ns[:: math.ceil(len(ns) / 10)]
    return {"type": "log", "tickvals": ns, "ticktext": [f"{n:,}" for n in ns]}


def with_slope(name: str, slope: float | None) -> str:
    """A legend entry with its log-log slope: "ELASTIC (slope 0.91)"."""
    return name if slope is None else f"{name} (slope {slope:.2f})"
