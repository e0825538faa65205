"""scripts/reading_time.py: the measure on made-up notebooks, and the committed core path's limit.

The last test is the tutorial's acceptance check: a cold reader finishes the core path (the
README and every notebook that is not a deep dive) in at most CORE_LIMIT minutes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reading():
    spec = importlib.util.spec_from_file_location("reading_time", ROOT / "scripts" /
                                                  "reading_time.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def write_notebook(path: Path, markdown: list[str], code: list[str], figures: int = 0) -> Path:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    for i, src in enumerate(code):
        png = {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR"}}
        outputs = [png] if i < figures else []
        cells.append({"cell_type": "code", "metadata": {}, "source": src, "outputs": outputs,
                      "execution_count": None})  # fmt: skip
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))
    return path


def test_a_made_up_notebook_takes_the_expected_minutes(reading, tmp_path):
    """400 words (2 min at 200 a minute), 20 code lines (2 min at 10 a minute), 1 figure (1 min);
    a fenced code block and a link's target in prose are not words."""
    title = "# 03 · Made up: a title\n\n"
    prose = [
        title + " ".join(["word"] * 394),
        "```python\nnot counted\n```\n[see](https://x.org/a/b)",
    ]
    code = ["\n".join(f"x{i} = {i}" for i in range(12)), "\n\n".join(f"y{i} = 0" for i in range(8))]
    cost = reading.notebook_cost(write_notebook(tmp_path / "03_made_up.ipynb", prose, code, 1))
    assert (cost.words, cost.code_lines, cost.figures) == (400, 20, 1)
    assert cost.minutes == pytest.approx(5.0)
    assert not cost.deep_dive and cost.title == "Made up: a title"


def test_deep_dives_are_left_out_of_the_core_path(reading, tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text(" ".join(["word"] * 200))  # 1 minute
    write_notebook(tmp_path / "notebooks" / "00_core.ipynb", ["# 00 · Core\n\n" + "w " * 198], [])
    write_notebook(tmp_path / "notebooks" / "08_deep_dive_more.ipynb", ["w " * 2000], [])
    aside = ["# 09 · A deep dive\n\n" + "w " * 400]
    write_notebook(tmp_path / "notebooks" / "09_aside.ipynb", aside, [])
    items = reading.costs(tmp_path)
    assert [c.deep_dive for c in items] == [False, False, True, True]
    assert reading.core_minutes(items) == pytest.approx(2.0)
    table = reading.markdown(items)
    assert "| [`00_core`](notebooks/00_core.ipynb) | Core | 1 |" in table
    assert "**deep dive**" in table.splitlines()[3]
    assert "Core path, README included: 2 minutes" in table


def test_the_committed_core_path_fits_the_limit(reading):
    """The acceptance check of the tutorial: README plus the core notebooks, at most
    CORE_LIMIT (180) minutes for a cold reader."""
    items = reading.costs(ROOT)
    core = reading.core_minutes(items)
    assert core <= reading.CORE_LIMIT, (
        f"core path {core:.0f} min > {reading.CORE_LIMIT}:\n" + reading.report(items)
    )


def test_the_readme_table_is_the_measure(reading):
    """The README's tutorial table is what `scripts/reading_time.py --markdown` prints today:
    a notebook edited without re-running it (and pasting the table) fails here."""
    table = reading.markdown(reading.costs(ROOT))
    assert table in (ROOT / "README.md").read_text(), (
        "README's tutorial table drifted: paste `python scripts/reading_time.py --markdown`:\n"
        + table
    )
