"""No notebook's prose quotes a ratio or metric that its outputs (or named results) do not hold.

The checker is `tests/notebook_quotes.py` (its docstring states the rule); the first tests run it
on made-up notebooks, one of them deliberately broken, then on every committed notebook; the last
hold the README and docs/DESIGN.md to docs/RESULTS.md and the results files they name, with a
planted stale paragraph that must fail.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from notebook_quotes import ALLOWED, check_documents, check_markdown, check_notebook, quotes

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook(*cells) -> nbformat.NotebookNode:
    """Cells from strings: 'md: text' is markdown, 'out: text' a code cell printing text."""
    built = []
    for cell in cells:
        kind, text = cell.split(": ", 1)
        if kind == "md":
            built.append(new_markdown_cell(text))
        else:
            code = new_code_cell("print(...)")
            code.outputs = [new_output("stream", name="stdout", text=text)]
            built.append(code)
    return new_notebook(cells=built)


def test_quotes_take_ratios_percentages_and_metrics_but_not_code_or_sizes():
    text = "ELASTIC is 2.7x faster, uses 93% of it, NDCG@10 0.0560 at N = 2048 `0.1234` $0.55$"
    assert [q.text for q, _ in quotes(text)] == ["2.7x", "93%", "0.0560"]
    assert [q.decimals for q, _ in quotes(text)] == [1, 0, 4]


def test_supported_quotes_pass():
    nb = notebook(
        "out: speed-up 79.53x, memory share 0.0134, NDCG@10 0.05601",
        "md: ELASTIC is 79.5x faster and needs 1.3% of the memory (NDCG@10 0.0560).",
    )
    assert check_notebook(nb) == []


def test_a_broken_notebook_fails():
    nb = notebook(
        "md: Quick mode reaches NDCG@10 0.0560 already.",  # quoted before anything computes it
        "out: test NDCG@10 0.0274, training-step speed-up 6.9x",
        "md: The training step is 16.9x faster and NDCG@10 is 0.0274.",  # 16.9x: nowhere above
    )
    bad = check_notebook(nb)
    assert [(b.cell, b.quote) for b in bad] == [(0, "0.0560"), (2, "16.9x")]
    assert "16.9x" in str(bad[1]) and "markdown cell 2" in str(bad[1])


def test_results_files_named_in_the_cell_and_paper_constants_count(tmp_path):
    (tmp_path / "bench-x.json").write_text(json.dumps({"points": [{"latency_ms": 41.93}]}))
    nb = notebook(
        "md: From `results/bench-x.json`: 41.9x. The paper: 90% less memory and 2.7x faster.",
        "md: Without naming the file, 41.9x is unsupported.",
    )
    bad = check_notebook(nb, results=tmp_path)
    assert [(b.cell, b.quote) for b in bad] == [(1, "41.9x")]
    assert {"90%", "2.7x"} <= set(ALLOWED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_quote_only_what_they_show(path):
    bad = check_notebook(nbformat.read(path, as_version=4))
    assert not bad, f"{path.name}: quoted but not shown:\n" + "\n".join(map(str, bad))


def test_committed_readme_and_design_quote_only_what_results_hold():
    """The README and docs/DESIGN.md, paragraph by paragraph, against docs/RESULTS.md and the
    results files each paragraph names."""
    bad = check_documents()
    assert not any(bad.values()), "quoted but not in docs/RESULTS.md or a named results file:\n" + (
        "\n".join(f"{name}: {b}" for name, items in bad.items() for b in items)
    )


def test_a_stale_sentence_in_a_document_fails(tmp_path):
    """A planted sentence whose number nothing holds fails, naming its paragraph and quote."""
    support = "| ELASTIC (k = 8) | inference | 8192 | 4.2x | 51% |"
    text = "# Results\n\nAt N = 8192 ELASTIC is 4.2x faster.\n\nELASTIC is 7.2× faster than SDPA.\n"
    bad = check_markdown(text, support, results=tmp_path)
    assert [(b.where, b.cell, b.quote) for b in bad] == [("paragraph", 2, "7.2×")]
    assert str(bad[0]) == "paragraph 2: '7.2×' in '...ELASTIC is 7.2× faster than SDPA....'"


def test_the_committed_readme_with_a_stale_paragraph_fails(tmp_path):
    """The same check on a copy of the repository's documents, one stale paragraph added."""
    for name in ("README.md", "docs/DESIGN.md", "docs/RESULTS.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((ROOT / name).read_text())
    stale = "The old bench said it: ELASTIC is 71.3× faster than SDPA at N = 8192."
    readme = tmp_path / "README.md"
    readme.write_text(readme.read_text() + "\n" + stale + "\n")
    bad = check_documents(tmp_path)
    assert not bad["docs/DESIGN.md"]
    assert [b.quote for b in bad["README.md"]] == ["71.3×"]
    assert "ELASTIC is 71.3× faster than SDPA" in str(bad["README.md"][0])
