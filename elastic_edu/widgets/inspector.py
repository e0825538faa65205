"""InterestInspector: poke at a trained ELASTIC model's interests, one user at a time.

Controls: user, experts retrieved at inference (k), layer, head. Views: the user's history
(titles and genres, or planted interests on synthetic data), the retrieved memory slots with
their scores and nearest items, what each expert reads (aggregate weights, experts x history),
each item's expert (argmax of the dispatch weights), and the top recommendations with the
held-out item marked. Figures are plotly FigureWidgets updated in place; a user or k change
re-encodes one history (`inspect_history`), a layer or head change only redraws.
"""

from __future__ import annotations

import time

import ipywidgets as widgets
import plotly.graph_objects as go

from elastic_edu.data.sequences import LOOSplit, SequenceData, leave_one_out
from elastic_edu.widgets.interests import Inspection, inspect_history
from elastic_edu.widgets.views import InspectorViews, copy_figure, widget_bundle


class InterestInspector(InspectorViews):
    """Widget for a trained ELASTIC `model` and its `data` (users of `split.test`).

    user: row u of ``data.sequences`` (default: the first evaluated user). The history is the
    test history (all items but the last), the held-out item the last. k: experts retrieved at
    inference (default: the trained ``model.memory.num_experts``), up to `max_k`.
    `exclude_history`: recommendations skip items the user already has (as `recommend`).
    Attributes: `widget` (the VBox), `heatmap_fig`, `strip_fig`, `slots_fig` (FigureWidgets),
    `inspection` (the current `Inspection`), `last_update_ms` (time of the last update).
    """

    def __init__(
        self,
        model,
        data: SequenceData,
        split: LOOSplit | None = None,
        *,
        user: int | None = None,
        k: int | None = None,
        max_k: int = 64,
        top: int = 10,
        exclude_history: bool = True,
    ):
        if not model.has_memory:
            raise TypeError(f"{type(model).__name__} has no interest memory: pass an ELASTIC model")
        self.model, self.data = model, data
        self.split = split if split is not None else leave_one_out(data)
        self.top, self.exclude_history = top, exclude_history
        self._row = {int(u): j for j, u in enumerate(self.split.test.users)}
        if not self._row:
            raise ValueError("no evaluated users: every user has fewer than 3 items")
        self.last_update_ms, self.update_times_ms = 0.0, []
        heads, layers = model.config.heads, model.config.layers
        max_k = min(max(max_k, model.memory.num_experts), model.memory.num_slots)
        user = next(iter(self._row)) if user is None else user
        k = model.memory.num_experts if k is None else k
        self._check_user(user)
        self._check_k(k, max_k)

        lengths = self.data.lengths()
        self.user_select = widgets.Dropdown(
            options=[(f"user {data.user_ids[u]} ({lengths[u]} items)", u) for u in self._row],
            value=user,
            description="user",
        )
        self.k_slider = widgets.IntSlider(
            value=k, min=1, max=max_k, description="experts k", continuous_update=False
        )
        self.layer_select = widgets.Dropdown(
            options=[(f"layer {i}", i) for i in range(layers)], value=0, description="layer"
        )
        self.head_select = widgets.Dropdown(
            options=[("mean of heads", None)] + [(f"head {i}", i) for i in range(heads)],
            value=0,
            description="head",
        )
        self.status = widgets.Label().add_class("elastic-inspector-status")
        self.history_html = widgets.HTML().add_class("elastic-inspector-history")
        self.recs_html = widgets.HTML().add_class("elastic-inspector-recs")

        self.inspection = self._inspect()
        self.slots_fig = go.FigureWidget(self._slots_figure())
        self.heatmap_fig = go.FigureWidget(self._heatmap_figure())
        self.strip_fig = go.FigureWidget(self._strip_figure())
        self._render_html()
        self._set_status(0.0)

        for control, handler in (
            (self.user_select, self._recompute),
            (self.k_slider, self._recompute),
            (self.layer_select, self._redraw),
            (self.head_select, self._redraw),
        ):
            control.observe(handler, names="value")
        layout = widgets.Layout(flex="1 1 0", min_width="0")
        self.widget = widgets.VBox([
            widgets.HTML(f"<b>Interest inspector</b>: ELASTIC trained with "
                         f"k={model.memory.num_experts} "
                         f"experts out of M={model.memory.num_slots} memory slots, on {data.name}"),
            widgets.HBox([self.user_select, self.k_slider]),
            widgets.HBox([self.layer_select, self.head_select]),
            self.status,
            widgets.HBox([widgets.Box([self.history_html], layout=layout),
                          widgets.Box([self.recs_html], layout=layout)]),
            self.slots_fig,
            self.heatmap_fig,
            self.strip_fig,
        ]).add_class("elastic-inspector")  # fmt: skip

    # ----- public controls -------------------------------------------------------------------
    @property
    def user(self) -> int:
        return self.user_select.value

    @property
    def k(self) -> int:
        return self.k_slider.value

    @property
    def layer(self) -> int:
        return self.layer_select.value

    @property
    def head(self) -> int | None:
        return self.head_select.value

    def set_user(self, u: int) -> None:
        """Show user row `u` of ``data.sequences`` (must have a held-out test item)."""
        self._check_user(u)
        self.user_select.value = int(u)

    def set_k(self, k: int) -> None:
        """Retrieve `k` experts at inference (1..max_k); the model itself is not changed."""
        self._check_k(k, self.k_slider.max)
        self.k_slider.value = int(k)

    def set_layer(self, layer: int) -> None:
        if not 0 <= layer < self.model.config.layers:
            raise ValueError(f"layer={layer}: the model has {self.model.config.layers} layers")
        self.layer_select.value = int(layer)

    def set_head(self, head: int | None) -> None:
        """Show one attention head, or None for the mean over heads."""
        if head is not None and not 0 <= head < self.model.config.heads:
            raise ValueError(f"head={head}: the model has {self.model.config.heads} heads")
        self.head_select.value = None if head is None else int(head)

    def summary(self) -> str:
        """The current view in words: the text/plain fallback of the widget's output."""
        ins, uid = self.inspection, self.data.user_ids[self.user]
        rank = "" if ins.target_rank is None else f"; held-out item at rank {ins.target_rank}"
        return (f"Interest inspector (live in JupyterLab), user {uid}: {len(ins.items)} history "
                f"items, k={self.k} experts from memory slots {ins.slots.tolist()}; top "
                f"{len(ins.top)} recommended item ids {ins.top.tolist()}{rank}")  # fmt: skip

    def _repr_mimebundle_(self, **kwargs) -> dict:
        return widget_bundle(self.widget, self.summary())

    # ----- checks --------------------------------------------------------------------------
    def _check_user(self, u: int) -> None:
        if int(u) not in self._row:
            raise ValueError(
                f"user row {u} has no held-out item (fewer than 3 items, or not in the data); "
                f"choose one of the {len(self._row)} evaluated users"
            )

    def _check_k(self, k: int, max_k: int) -> None:
        if not 1 <= k <= max_k:
            raise ValueError(f"k={k} must lie in 1..{max_k}")

    # ----- updates ---------------------------------------------------------------------------
    def _inspect(self) -> Inspection:
        j = self._row[self.user]
        return inspect_history(
            self.model,
            self.split.test.histories[j],
            self.k,
            target=int(self.split.test.targets[j]),
            top=self.top,
            exclude_history=self.exclude_history,
        )

    def _recompute(self, change=None) -> None:
        start = time.perf_counter()
        self.inspection = self._inspect()
        self._draw(start)

    def _redraw(self, change=None) -> None:
        self._draw(time.perf_counter())

    def _draw(self, start: float) -> None:
        copy_figure(self.slots_fig, self._slots_figure())
        copy_figure(self.heatmap_fig, self._heatmap_figure())
        copy_figure(self.strip_fig, self._strip_figure())
        self._render_html()
        self._set_status(1e3 * (time.perf_counter() - start))

    def _set_status(self, ms: float) -> None:
        self.last_update_ms = ms
        if ms:
            self.update_times_ms.append(ms)
        n, uid = len(self.inspection.items), self.data.user_ids[self.user]
        timing = f"; updated in {ms:.0f} ms" if ms else ""
        self.status.value = f"user {uid}: {n} history items encoded, k={self.k} experts{timing}"
