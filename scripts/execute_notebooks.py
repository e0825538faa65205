"""Execute notebooks as they are committed: quick mode, a PNG beside every plotly figure.

    python scripts/execute_notebooks.py                      # every notebooks/NN_*.ipynb
    python scripts/execute_notebooks.py notebooks/04_*.ipynb # some of them

Each notebook first takes its cells from its jupytext source (notebooks/NN_name.py, the file a
person edits), then runs in a fresh kernel, one notebook at a time, with ELASTIC_EDU_QUICK=1,
ELASTIC_EDU_FIGURE_PNG=1 and one OpenMP thread. Widget state is not stored (a plotly
FigureWidget's state is a 5 MB bundle); widget outputs keep their view reference and a
text/plain summary. Prints each notebook's run time and size, and fails when one exceeds MAX_MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_MB = 2.0
TIMEOUT_S = 900  # per cell


def take_source(path: Path) -> nbformat.NotebookNode:
    """The notebook at `path` with the cells of its paired .py source (outputs are re-made)."""
    source = path.with_suffix(".py")
    nb = nbformat.read(path, as_version=4) if path.exists() else nbformat.v4.new_notebook()
    if source.exists():
        text = jupytext.read(source, fmt="py:percent")
        nb.cells = text.cells
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}  # fmt: skip
    return nb


def strip_widget_state(nb: nbformat.NotebookNode) -> None:
    """Drop saved widget state; widget outputs keep their view reference and their text/plain
    summary (the library's widgets write one: what a reader without a kernel sees)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            bundle = out.get("data", {})
            if WIDGET_VIEW in bundle:
                out["data"] = {k: bundle[k] for k in (WIDGET_VIEW, "text/plain") if k in bundle}


def execute(path: Path) -> tuple[float, float]:
    """Run one notebook in place; returns (seconds, megabytes)."""
    nb = take_source(path)
    env = {"ELASTIC_EDU_QUICK": "1", "ELASTIC_EDU_FIGURE_PNG": "1", "OMP_NUM_THREADS": "1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOKS)}},
                                store_widget_state=False)  # fmt: skip
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    strip_widget_state(nb)
    nbformat.write(nb, path)
    return seconds, path.stat().st_size / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    too_big = []
    for path in paths:
        path = path.with_suffix(".ipynb").resolve()
        seconds, mb = execute(path)
        print(f"{path.name}: {seconds:.0f} s, {mb:.2f} MB", flush=True)
        if mb > MAX_MB:
            too_big.append(path.name)
    if too_big:
        print(f"over {MAX_MB} MB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
