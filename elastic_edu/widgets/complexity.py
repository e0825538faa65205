"""ComplexityExplorer: measure SASRec and ELASTIC at a history length N, live and small.

**paper** (arXiv 2408.09380): self-attention costs O(N^2) time and memory, ELASTIC's linear
dispatcher attention is linear in N; **ours** (docs/DESIGN.md): O(N k) per layer for our layer
equations with k experts. A slider picks N; each move runs one inference forward pass
(`encode` under ``inference_mode``) of two small models in this process and adds the point to a
log-log plot. **our decisions**: both are measured with `elastic_edu.bench.profile`, as the bench
measures: latency is the median of `repeats` runs after one warm-up (`time_runs`, fewer runs
when they are slow, so nothing blocks for long); memory is the peak of the bytes held by tensors
the forward pass allocates (`peak_memory`), which counts what the attention maps cost, without
the process-wide high-water mark that a long-lived notebook kernel has already raised. The full
study, in fresh processes, is `python -m elastic_edu bench`.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from elastic_edu import viz
from elastic_edu.bench import profile
from elastic_edu.bench.config import measured_config
from elastic_edu.models import build_model
from elastic_edu.widgets.views import widget_bundle

MODELS = ("SASRec", "ELASTIC")


def small_models(
    max_len: int, dim: int = 32, heads: int = 2, layers: int = 2, num_experts: int = 16
) -> dict[str, torch.nn.Module]:
    """SASRec with naive attention (materialises N x N, as the original) and ELASTIC, eval mode,
    built as the bench builds the models it measures (`elastic_edu.bench.config.measured_config`).
    """
    sizes = dict(dim=dim, heads=heads, layers=layers)
    configs = {
        "SASRec": measured_config("sasrec", 1000, max_len, **sizes, attention="naive"),
        "ELASTIC": measured_config("elastic", 1000, max_len, **sizes, num_experts=num_experts),
    }
    return {name: build_model(c).eval() for name, c in configs.items()}


def measure_point(
    model, n: int, batch: int = 1, repeats: int = 3, budget_s: float = 2.0, seed: int = 0
) -> dict:
    """Inference latency (ms, median) and peak tensor memory (MB) of `model.encode` at length n.

    Repeats stop early once all of them would take more than `budget_s` seconds (at least one
    timed run).
    """
    gen = torch.Generator().manual_seed(seed + n)
    items = torch.randint(1, model.config.num_items + 1, (batch, n), generator=gen)
    items = items.to(model.device)
    encode = lambda: model.encode(items)
    with torch.inference_mode():
        timing = profile.time_runs(encode, repeats, warmup=1, device=items.device,
                                   budget_s=budget_s, min_runs=1)  # fmt: skip
        peak = profile.peak_memory(encode, items.device)
    return {"n": n, "latency_ms": timing.median_ms, "peak_mb": peak / 2**20,
            "runs": len(timing.runs_ms)}  # fmt: skip


class ComplexityExplorer:
    """A slider for N; each change measures SASRec and ELASTIC at N and adds the points.

    `measure(n)` does the same from code and moves the slider to n, so the slider, the readout
    and the last point always agree. `points[name]` holds the measured dicts, sorted by n (a
    second measurement at the same n replaces the first). `fig` is the FigureWidget (left:
    latency, right: peak memory, both log-log, each legend entry with its slope over the
    measured points); each trace's ``meta`` is ``{"model": name, "metric": key}``. `widget`
    is the VBox.
    """

    def __init__(
        self,
        dim: int = 32,
        heads: int = 2,
        layers: int = 2,
        num_experts: int = 16,
        lengths=(64, 128, 256, 512, 1024, 2048),
        batch: int = 1,
        repeats: int = 3,
    ):
        self.lengths, self.batch, self.repeats = sorted(lengths), batch, repeats
        self.models = small_models(self.lengths[-1], dim, heads, layers, num_experts)
        self.points: dict[str, list[dict]] = {name: [] for name in self.models}
        self.last_update_ms = 0.0
        self._moving_slider = False  # set while measure() moves the slider itself
        fig = make_subplots(rows=1, cols=2, subplot_titles=("latency", "peak tensor memory"))
        for col, metric in enumerate(("latency_ms", "peak_mb"), start=1):
            for i, name in enumerate(self.models):
                fig.add_trace(go.Scatter(
                    x=[], y=[], name=name, legendgroup=name, showlegend=col == 1,
                    mode="lines+markers", line={"color": viz.PALETTE[i]},
                    meta={"model": name, "metric": metric},
                    hovertemplate=f"{name}<br>N=%{{x}}<br>%{{y:.3g}}<extra></extra>",
                ), row=1, col=col)  # fmt: skip
            fig.update_xaxes(title_text="history length N (items)", row=1, col=col,
                             **viz.length_ticks(self.lengths))  # fmt: skip
        fig.update_yaxes(type="log", title_text="ms per forward pass", row=1, col=1)
        fig.update_yaxes(type="log", title_text="MB", row=1, col=2)
        fig.update_layout(
            template=viz.TEMPLATE,
            height=430,
            width=900,
            legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
            title=f"Inference cost against N (batch {batch}, d={dim}, {layers} layers, "
            f"k={num_experts}; SASRec with naive attention)<br><sup>legend: log-log slope over "
            "the measured N (1 linear, 2 quadratic)</sup>",
            margin={"t": 90},
        )
        self.fig = go.FigureWidget(fig)
        self.slider = widgets.SelectionSlider(
            options=self.lengths, value=self.lengths[0], description="N",
            continuous_update=False,
        )  # fmt: skip
        self.status = widgets.Label("move the slider to measure").add_class(
            "elastic-complexity-status"
        )
        self.slider.observe(self._slider_moved, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.slider, self.status]), self.fig])
        self.widget.add_class("elastic-complexity")

    def _legend(self, name: str) -> str:
        """The legend entry of a model: its log-log slopes of latency and memory so far."""
        pts = self.points[name]
        ns = [p["n"] for p in pts]
        slopes = [viz.loglog_slope(ns, [p[m] for p in pts]) for m in ("latency_ms", "peak_mb")]
        if None in slopes:
            return name
        return f"{name} (slope: latency {slopes[0]:.2f}, memory {slopes[1]:.2f})"

    def _slider_moved(self, change) -> None:
        if not self._moving_slider:
            self.measure(change["new"])

    def measure(self, n: int) -> dict[str, dict]:
        """Measure both models at history length `n`, add the points, move the slider to `n`."""
        if not 1 <= n <= self.lengths[-1]:
            raise ValueError(f"n={n} must lie in 1..{self.lengths[-1]} (the models' max_len)")
        self._moving_slider = True  # the slider follows; its observer must not measure again
        try:
            if n not in self.slider.options:  # a length between the slider's stops: add it
                self.slider.options = sorted({*self.slider.options, n})
            self.slider.value = n
        finally:
            self._moving_slider = False
        start = time.perf_counter()
        self.status.value = f"measuring N={n}..."
        result = {}
        for name, model in self.models.items():
            point = measure_point(model, n, self.batch, self.repeats)
            pts = [p for p in self.points[name] if p["n"] != n] + [point]
            self.points[name] = sorted(pts, key=lambda p: p["n"])
            result[name] = point
        with self.fig.batch_update():
            for trace in self.fig.data:
                name, metric = trace.meta["model"], trace.meta["metric"]
                pts = self.points[name]
                trace.x = [p["n"] for p in pts]
                trace.y = [p[metric] for p in pts]
                trace.name = self._legend(name) if metric == "latency_ms" else name
            for col, metric in enumerate(("latency_ms", "peak_mb"), start=1):
                values = [p[metric] for pts in self.points.values() for p in pts]
                self.fig.update_yaxes(**viz.log_ticks(values), row=1, col=col)
        self.last_update_ms = 1e3 * (time.perf_counter() - start)
        self.status.value = f"N={n}: " + "; ".join(
            f"{name} {p['latency_ms']:.1f} ms, {p['peak_mb']:.2f} MB" for name, p in result.items()
        ) + f" (measured in {self.last_update_ms:.0f} ms)"  # fmt: skip
        return result

    def summary(self) -> str:
        """The measured points in words: the text/plain fallback of the widget's output."""

        def point(p):
            return f"N={p['n']} {p['latency_ms']:.1f} ms {p['peak_mb']:.2f} MB"

        rows = [
            f"{name}: " + ", ".join(map(point, pts)) for name, pts in self.points.items() if pts
        ]
        return "Complexity explorer (live in JupyterLab). " + ("; ".join(rows) or "no point yet")

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self.widget, self.summary())
