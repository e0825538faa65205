"""Shared by the notebook generators: collect cells, write the notebook, format, run, strip.

Each ``make_NN.py`` builds its cells with ``md(...)`` and ``code(...)`` and ends with
``nb.main()``, which gives every generator the same command line:

    python scripts/notebooks/make_NN.py            # write the cells (no outputs), ruff-format
    python scripts/notebooks/make_NN.py --execute  # + run in CI quick mode, strip widget state
    python scripts/notebooks/make_NN.py --strip    # only strip widget state of the saved file

A plotly FigureWidget saved with its widget state stores a 5 MB bundle in the notebook; the
stripped notebook keeps only each widget output's view reference (the widgets come back when the
notebook runs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class Builder:
    """Cells of one notebook, in order; `main()` writes it to notebooks/`name`."""

    def __init__(self, name: str):
        self.path = NOTEBOOKS / name
        self.cells: list = []

    def md(self, text: str) -> None:
        self.cells.append(nbformat.v4.new_markdown_cell(dedent(text).strip()))

    def code(self, text: str) -> None:
        self.cells.append(nbformat.v4.new_code_cell(dedent(text).strip()))

    def write(self) -> None:
        nb = nbformat.v4.new_notebook(cells=self.cells)
        nb.metadata = {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        }
        nbformat.write(nb, self.path)
        # the repository's lint checks notebooks too: format code cells as `ruff format` would
        cmd = [sys.executable, "-m", "ruff", "format", "--quiet", str(self.path)]
        if subprocess.run(cmd, check=False).returncode:
            print(f"ruff format failed on {self.path}: run it by hand")

    def execute(self) -> None:
        env = {**os.environ, "ELASTIC_EDU_QUICK": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--inplace", str(self.path)]  # fmt: skip
        subprocess.run(cmd, check=True, env=env)

    def strip_widget_state(self) -> int:
        """Drop saved widget state; widget outputs keep only their view reference."""
        nb = nbformat.read(self.path, as_version=4)
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                bundle = out.get("data", {})
                if WIDGET_VIEW in bundle:
                    out["data"] = {WIDGET_VIEW: bundle[WIDGET_VIEW]}
        nbformat.write(nb, self.path)
        return self.path.stat().st_size

    def main(self, argv: list[str] | None = None) -> int:
        parser = argparse.ArgumentParser(description=f"write {self.path.name}")
        parser.add_argument("--execute", action="store_true", help="run in quick mode, strip")
        parser.add_argument("--strip", action="store_true", help="only strip widget state")
        args = parser.parse_args(argv)
        if not args.strip:
            self.write()
        if args.execute:
            self.execute()
        if args.execute or args.strip:
            self.strip_widget_state()
        print(f"wrote {self.path} ({self.path.stat().st_size / 1024:.0f} KiB)")
        return 0
