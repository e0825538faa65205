"""docs/RESULTS.md is exactly what `scripts/results_tables.py` prints from results/ (no drift)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tables():
    spec = importlib.util.spec_from_file_location("results_tables", ROOT / "scripts" /
                                                  "results_tables.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_page_is_generated_from_the_results_files():
    module = tables()
    assert (ROOT / "docs" / "RESULTS.md").read_text() == module.document(), (
        "docs/RESULTS.md drifted from results/: run python scripts/results_tables.py"
    )


def test_the_check_notices_a_hand_edit(tmp_path, monkeypatch):
    module = tables()
    page = tmp_path / "RESULTS.md"
    page.write_text(module.document().replace("| 8192 |", "| 8192 (edited) |", 1))
    monkeypatch.setattr(module, "DOC", page)
    assert module.main(["--check"]) == 1
    page.write_text(module.document())
    assert module.main(["--check"]) == 0
