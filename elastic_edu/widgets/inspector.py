"""InterestInspector: poke at a trained ELASTIC model's interests, one user at a time.

Controls: user, experts retrieved at inference (k), layer, head. Views: the user's history
(titles and genres, or planted interests on synthetic data), the retrieved memory slots with
their scores and nearest items, what each expert reads (aggregate weights, experts x history),
each item's expert (argmax of the dispatch weights), and the top recommendations with the
held-out item marked. Figures are plotly FigureWidgets updated in place; a user or k change
re-encodes one history (`inspect_history`), a layer or head change only redraws.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from elastic_edu import viz
from elastic_edu.data.sequences import LOOSplit, SequenceData, leave_one_out
from elastic_edu.widgets.interests import Inspection, inspect_history

WIDTH, LEFT = 900, 120  # px: fixed so the plots line up (a FigureWidget does not autosize well)
SWATCH = '<span style="display:inline-block;width:.9em;height:.9em;background:{};"></span>'


def _color(index: int) -> str:
    return viz.PALETTE[int(index) % len(viz.PALETTE)]


def copy_figure(target: go.FigureWidget, source: go.Figure) -> None:
    """Update `target` in place to show `source`'s traces, title, height, margins and legend.

    With as many traces on both sides (the usual case) this is one message to the browser;
    otherwise (an assignment strip whose colour legend lists other experts) the traces are
    replaced.
    """
    if len(target.data) != len(source.data):
        target.data = ()
        target.add_traces(list(source.data))
    with target.batch_update():
        for old, new in zip(target.data, source.data):
            props = new.to_plotly_json()
            props.pop("type", None)
            old.update(props, overwrite=True)
        target.layout.title = source.layout.title
        target.layout.height = source.layout.height
        target.layout.margin = source.layout.margin
        target.layout.legend = source.layout.legend


class InterestInspector:
    """Widget for a trained ELASTIC `model` and its `data` (users of `split.test`).

    user: row u of ``data.sequences`` (default: the first evaluated user). The history is the
    test history (all items but the last), the held-out item the last. k: experts retrieved at
    inference (default: the trained ``model.memory.experts``), up to `max_k`.
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
        if not hasattr(model, "memory"):
            raise TypeError(f"{type(model).__name__} has no interest memory: pass an ELASTIC model")
        self.model, self.data = model, data
        self.split = split if split is not None else leave_one_out(data)
        self.trained_k = model.memory.num_experts
        self.top, self.exclude_history = top, exclude_history
        self._row = {int(u): j for j, u in enumerate(self.split.test.users)}
        if not self._row:
            raise ValueError("no evaluated users: every user has fewer than 3 items")
        self.last_update_ms, self.update_times_ms = 0.0, []
        heads, layers = model.config.heads, model.config.layers
        max_k = min(max(max_k, self.trained_k), model.memory.num_slots)
        user = next(iter(self._row)) if user is None else user
        k = self.trained_k if k is None else k
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
            widgets.HTML(f"<b>Interest inspector</b>: ELASTIC trained with k={self.trained_k} "
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

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

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

    # ----- figures and tables ----------------------------------------------------------------
    def _name(self, item: int, width: int = 40) -> str:
        title = self.data.item_titles[item] or f"item {self.data.item_ids[item]}"
        return title if len(title) <= width else title[: width - 1] + "…"

    def _planted(self) -> np.ndarray | None:
        """Planted interest of each encoded history event (synthetic data), else None."""
        if self.data.labels is None:
            return None
        labels = self.data.labels[self.user][:-1]  # the test history: all events but the last
        return labels[len(labels) - len(self.inspection.items) :]

    def _slot_names(self) -> list[str]:
        return [f"#{e} slot {s}" for e, s in enumerate(self.inspection.slots)]

    def _where(self) -> str:
        head = "mean of heads" if self.head is None else f"head {self.head}"
        return f"user {self.data.user_ids[self.user]}, k={self.k}, layer {self.layer}, {head}"

    def _slots_figure(self) -> go.Figure:
        ins = self.inspection
        near = [[self._name(i, 28) for i in row] for row in ins.nearest]
        fig = go.Figure(go.Bar(
            x=ins.slot_scores, y=self._slot_names(), orientation="h",
            marker_color=[_color(e) for e in range(ins.experts)],
            text=[" · ".join(row[:3]) for row in near], textposition="inside",
            insidetextanchor="start", customdata=["<br>".join(row) for row in near],
            hovertemplate="%{y}: score %{x:.3f}<br>nearest items:<br>%{customdata}<extra></extra>",
        ))  # fmt: skip
        fig.update_yaxes(autorange="reversed")
        return fig.update_layout(
            template=viz.TEMPLATE,
            title=f"Retrieved memory slots and their nearest items ({self._where()})",
            xaxis_title="retrieval score q . key",
            yaxis_title="expert (memory slot)",
            height=160 + 22 * ins.experts,
            width=WIDTH,
            margin={"l": LEFT},
            uniformtext={"minsize": 10, "mode": "show"},
        )

    def _heatmap_figure(self) -> go.Figure:
        ins = self.inspection
        fig = viz.expert_heatmap(
            ins.reads(self.layer, self.head),
            item_labels=[self._name(i) for i in ins.items],
            title=f"What each expert reads ({self._where()})",
        )
        fig.update_traces(y=self._slot_names())
        fig.update_yaxes(autorange="reversed")
        return fig.update_layout(height=180 + 18 * ins.experts, width=WIDTH, margin={"l": LEFT})

    def _strip_figure(self) -> go.Figure:
        ins = self.inspection
        planted = self._planted()
        interests = None
        if planted is not None:
            interests = [f"interest {c}" for c in range(int(planted.max()) + 1)] + ["none"]
        fig = viz.assignment_strip(
            ins.assignment(self.layer, self.head),
            labels=self._slot_names(),
            planted=planted,
            planted_labels=interests,
            title=f"Expert assignment of each history item ({self._where()})",
        )
        # the heatmap's colorbar takes the right margin; the legend's bottom margin is kept
        return fig.update_layout(width=WIDTH, margin={"l": LEFT, "r": 93})

    def _render_html(self) -> None:
        ins, data = self.inspection, self.data
        assign = ins.assignment(self.layer, self.head)
        planted = self._planted()
        total = len(data.sequences[self.user]) - 1
        rows = []
        for pos, (item, e) in enumerate(zip(ins.items, assign)):
            if planted is not None:
                c = planted[pos]
                tag = f"{SWATCH.format(_color(c))} interest {c}" if c >= 0 else "none"
            else:
                tag = html.escape(", ".join(data.item_genres[item]))
            rows.append(
                f"<tr><td>{pos}</td><td>{SWATCH.format(_color(e))} {e}</td>"
                f"<td>{html.escape(self._name(item))}</td><td>{tag}</td></tr>"
            )
        kind = "planted interest" if planted is not None else "genres"
        self.history_html.value = (
            f"<b>History</b> (the last {len(ins.items)} of {total} items, oldest first; "
            f"expert of layer {self.layer})"
            '<div style="max-height:320px;overflow-y:auto"><table>'
            f"<tr><th>pos</th><th>expert</th><th>item</th><th>{kind}</th></tr>"
            + "".join(rows)
            + "</table></div>"
        )
        recs = []
        for r, (item, score) in enumerate(zip(ins.top, ins.top_scores), start=1):
            hit = item == ins.target
            mark = ' style="background:#ffe08a;font-weight:bold"' if hit else ""
            recs.append(
                f"<tr{mark}><td>{r}</td><td>{html.escape(self._name(item))}"
                f"{' (held out!)' if hit else ''}</td><td>{score:.2f}</td></tr>"
            )
        excluded = "history items excluded" if self.exclude_history else "history items kept"
        self.recs_html.value = (
            f"<b>Top {len(ins.top)} recommendations</b> ({excluded})<table>"
            "<tr><th>rank</th><th>item</th><th>score</th></tr>" + "".join(recs) + "</table>"
            f"Held-out item: <b>{html.escape(self._name(ins.target))}</b>, "
            f"rank {ins.target_rank} of {data.num_items}"
        )
