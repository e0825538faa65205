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
  legend), `contingency_heatmap`, `slot_usage`; synthetic studies: `long_context_figure` (test
  HR@1 per model).
"""

from __future__ import annotations

from elastic_edu.viz.common import (
    FAILED_KEY,
    FLOP_KEY,
    PALETTE,
    TEMPLATE,
    bench_label_model,
    display_name,
    length_ticks,
    log_ticks,
    loglog_slope,
    with_slope,
)
from elastic_edu.viz.costs import (
    complexity_figure,
    loglog_figure,
    long_context_figure,
    study_runs,
)
from elastic_edu.viz.training import bar_table, length_histogram, popularity_curve, training_curves
from elastic_edu.viz.weights import (
    assignment_strip,
    attention_heatmap,
    contingency_heatmap,
    expert_heatmap,
    slot_usage,
)

__all__ = [
    "FAILED_KEY",
    "FLOP_KEY",
    "PALETTE",
    "TEMPLATE",
    "assignment_strip",
    "contingency_heatmap",
    "attention_heatmap",
    "bar_table",
    "bench_label_model",
    "complexity_figure",
    "display_name",
    "expert_heatmap",
    "length_histogram",
    "length_ticks",
    "log_ticks",
    "long_context_figure",
    "study_runs",
    "loglog_figure",
    "loglog_slope",
    "popularity_curve",
    "slot_usage",
    "training_curves",
    "with_slope",
]
