"""The committed notebooks and README are readable without a kernel, small, and self-contained.

- every plotly figure in notebooks/*.ipynb carries a static image beside its JSON;
- no notebook stores widget state or weighs more than 2 MB; a widget output keeps its view
  and a text/plain summary for a reader without a kernel;
- every image a notebook or the README shows is committed (the README shows at least two);
- every notebook's first code cell calls `setup_notebook`;
- nothing a reader gets (the package, the notebooks, the README) points outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTLY, STATIC = "application/vnd.plotly.v1+json", ("image/png", "image/svg+xml")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 2 * 2**20
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FIX = "re-run `make execute` (quick mode, PNGs on)"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.stem)
def committed(request):
    return request.param, nbformat.read(request.param, as_version=4)


def test_every_figure_has_a_static_image(committed):
    path, nb = committed
    figures = [
        (i, out)
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if PLOTLY in out.get("data", {})
    ]
    missing = [i for i, out in figures if not any(k in out["data"] for k in STATIC)]
    assert not missing, f"{path.name}: figures without a PNG/SVG in cells {missing}: {FIX}"


def test_no_widget_state_and_small(committed):
    path, nb = committed
    assert "widgets" not in nb.metadata, f"{path.name} stores widget state: {FIX}"
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                assert set(out["data"]) == {WIDGET_VIEW, "text/plain"}, (
                    f"{path.name}: a widget output keeps its view and a text/plain summary only"
                )
                assert not re.match(r"\w+\(", "".join(out["data"]["text/plain"])), (
                    f"{path.name}: a widget's text/plain is its repr, not a summary"
                )
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"


def test_first_code_cell_sets_the_notebook_up(committed):
    path, nb = committed
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert "setup_notebook(" in first.source, f"{path.name}: first code cell lacks setup_notebook"


def test_notebook_images_are_committed(committed):
    path, nb = committed
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for target in IMAGE.findall(cell.source):
                assert (path.parent / target).resolve().is_file(), f"{path.name}: {target}"


def test_readme_shows_committed_images():
    targets = IMAGE.findall((ROOT / "README.md").read_text())
    local = [t for t in targets if not t.startswith("http")]
    assert len(local) >= 2
    for target in local:
        assert (ROOT / target).is_file(), f"README shows {target}, which is not committed"
    assert "docs/images/inspector.png" in local


def test_nothing_points_outside_the_repository():
    pattern = re.compile(r"../shared")  # as `grep -r "../shared"`: also /abs/path/shared in outputs
    files = [ROOT / "README.md", *(ROOT / "notebooks").iterdir()]
    files += list((ROOT / "elastic_edu").rglob("*"))
    hits = [
        str(p.relative_to(ROOT))
        for p in files
        if p.is_file() and p.suffix != ".pyc" and pattern.search(p.read_text(errors="ignore"))
    ]
    assert not hits, f"these point to ../shared (use docs/DESIGN.md): {hits}"
