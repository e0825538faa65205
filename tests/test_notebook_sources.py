"""Every notebook is a jupytext pair, and the two halves agree (the CI drift check).

notebooks/NN_name.py (py:percent) is the source a person edits and ruff lints; notebooks/
NN_name.ipynb is the same cells, executed, with outputs. JupyterLab with jupytext saves both
(jupytext.toml pairs them). After editing one half elsewhere, `make sync` updates the other, and
`make execute` re-runs the notebooks as committed.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
EXECUTED = sorted(NOTEBOOKS.glob("*.ipynb"))
FIX = "run `make sync` (jupytext --sync notebooks/*.ipynb), then `make execute`"


def cells(nb) -> list[tuple[str, str]]:
    """(cell type, source) of every cell; trailing whitespace is not a difference."""
    return [(c.cell_type, c.source.rstrip()) for c in nb.cells]


def describe(a: list, b: list) -> str:
    """The first differing cell of two cell lists, as a unified diff."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            diff = difflib.unified_diff(
                f"[{x[0]}]\n{x[1]}".splitlines(), f"[{y[0]}]\n{y[1]}".splitlines(),
                ".ipynb", ".py", lineterm="", n=1,
            )  # fmt: skip
            return f"cell {i} differs:\n" + "\n".join(list(diff)[:40])
    return f"{len(a)} cells in the .ipynb, {len(b)} in the .py"


def test_pairing_is_configured():
    config = (ROOT / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in config


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert SOURCES, "no notebook sources found"
    assert [p.stem for p in SOURCES] == [p.stem for p in EXECUTED], FIX
    assert not (ROOT / "scripts" / "notebooks").exists(), "notebooks have no generators any more"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_source(source):
    executed = source.with_suffix(".ipynb")
    text = jupytext.read(source, fmt="py:percent")
    nb = nbformat.read(executed, as_version=4)
    a, b = cells(nb), cells(text)
    assert a == b, f"{executed.name} and {source.name} disagree ({FIX}): {describe(a, b)}"
