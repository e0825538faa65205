"""The inspector's views: its figures and HTML tables, drawn from the current `Inspection`.

`InspectorViews` is the drawing half of `InterestInspector` (elastic_edu.widgets.inspector): it
reads the widget's state (data, user, k, layer, head, inspection) and builds plotly figures and
HTML; it never changes state.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from elastic_edu import viz

WIDTH, LEFT = 900, 120  # px: fixed so the plots line up (a FigureWidget does not autosize well)
SWATCH = '<span style="display:inline-block;width:.9em;height:.9em;background:{};"></span>'


def _color(index: int) -> str:
    return viz.PALETTE[int(index) % len(viz.PALETTE)]


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widget_bundle(widget, text: str) -> dict:
    """What a notebook stores for `widget`: its view reference (live in JupyterLab) and a
    text/plain summary, which a reader without a kernel (GitHub, nbviewer, a saved copy whose
    widget state is not stored) sees instead."""
    bundle = dict(widget._repr_mimebundle_() or {})
    bundle["text/plain"] = text
    return bundle


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


class InspectorViews:
    """Figures and tables of the inspector (mixed into `InterestInspector`)."""

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
            marker_color=[_color(e) for e in range(ins.num_experts)],
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
            height=160 + 22 * ins.num_experts,
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
        return fig.update_layout(height=180 + 18 * ins.num_experts, width=WIDTH, margin={"l": LEFT})

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
