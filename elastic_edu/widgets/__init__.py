"""Widgets for poking at a trained model from a JupyterLab notebook (ipywidgets + plotly).

- `InterestInspector(model, data)`: one user's history, retrieved memory slots (with their
  nearest items), aggregate weights, expert assignments and recommendations, with controls for
  the user, the number k of experts retrieved at inference, the layer and the head.
- `ComplexityExplorer()`: a slider for the history length N that measures SASRec's and
  ELASTIC's inference latency and memory at N and adds the points to a log-log plot.

Both are plain Python objects holding an ipywidgets `widget` and plotly FigureWidgets that are
updated in place; their `set_*`/`measure` methods drive them from code (tests, notebooks).
The computations behind the inspector (`inspect_history`, `encode_with_experts`) take a model
and a history and return arrays; they never change the model.
"""

from elastic_edu.widgets.complexity import ComplexityExplorer, measure_point
from elastic_edu.widgets.inspector import InterestInspector
from elastic_edu.widgets.interests import (
    Inspection,
    encode_with_experts,
    inspect_history,
    nearest_items,
    retrieve,
)

__all__ = [
    "ComplexityExplorer",
    "Inspection",
    "InterestInspector",
    "encode_with_experts",
    "inspect_history",
    "measure_point",
    "nearest_items",
    "retrieve",
]
