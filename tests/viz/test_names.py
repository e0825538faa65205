""" "ELASTIC" alone names only the model `--model elastic` trains, in every label a figure or
table shows (`elastic_edu.viz.display_name`) and for every model a results file measured."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from elastic_edu.models import get_spec, model_names
from elastic_edu.viz import bench_label_model, display_name

ROOT = Path(__file__).resolve().parents[2]
BARE = re.compile(r"ELASTIC(?![-\w])")  # "ELASTIC", "ELASTIC (k = 32)"; not "ELASTIC-bidir"
RECOMMENDED = get_spec("elastic").name


def says_elastic_alone(text: str) -> bool:
    return bool(BARE.match(text))


@pytest.mark.parametrize("name", model_names())
def test_registry_names_and_aliases(name):
    shown = display_name(name)
    assert says_elastic_alone(shown) == (get_spec(name).name == RECOMMENDED), (name, shown)
    for suffix in (":all", ":cut", ":cloze", "-k32"):
        if name.startswith("sasrec"):
            continue
        label = name + suffix
        model = bench_label_model(label) if suffix.startswith("-k") else get_spec(name).name
        shown = display_name(label)
        assert says_elastic_alone(shown) == (model == RECOMMENDED), (label, shown)


def test_labels_of_files_from_before_the_registry_name_the_non_causal_form():
    """Commit 7dc3014's bench wrote ``elastic-k32`` for what is now elastic-bidir."""
    assert bench_label_model("elastic-k32") == "elastic-bidir"
    assert display_name("elastic-k32") == "ELASTIC-bidir (non-causal, k = 32)"
    assert display_name("elastic-causal-k32") == "ELASTIC (k = 32)"
    assert bench_label_model("elastic-causal-k8+compile") == "elastic-causal"


def bench_files():
    return sorted(p for p in (ROOT / "results").rglob("bench-*.json"))


@pytest.mark.parametrize("path", bench_files(), ids=lambda p: p.name)
def test_every_bench_label_shows_the_model_it_measured(path):
    points = json.loads(path.read_text())["points"]
    for label in {p["model"] for p in points}:
        model, shown = bench_label_model(label), display_name(label)
        assert says_elastic_alone(shown) == (model == RECOMMENDED), (path.name, label, shown)


def test_the_check_catches_a_stale_label(monkeypatch):
    """A planted mistake: the non-causal form shown as plain ELASTIC fails the rule."""
    import elastic_edu.viz.common as plotstyle

    monkeypatch.setitem(plotstyle.NAMES, "elastic-bidir", "ELASTIC")
    shown = display_name("elastic-bidir-k32")
    assert says_elastic_alone(shown) != (bench_label_model("elastic-bidir-k32") == RECOMMENDED)
