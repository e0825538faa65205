""" "ELASTIC" alone names only the model `--model elastic` trains, in every label a figure or
table shows (`elastic_edu.viz.display_name`), for every model a results file measured, and in the
prose of the README, docs/, results/ and the notebooks: a sentence never calls the non-causal form
("non-causal ELASTIC", "ELASTIC (non-causal)"); it is "ELASTIC-bidir (non-causal)"."""

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
# prose that names the non-causal form with "ELASTIC" alone (qualifiers in any case)
ALONE = r"ELASTIC(?![-\w])"
STALE_PROSE = re.compile(
    rf"(?i:non-?causal|bidirectional|bi-directional)[\s*_]+{ALONE}"  # "the non-causal ELASTIC"
    rf"|{ALONE}[\s*_]*\((?i:the |today's |now )?(?i:non-?causal|bidir|`elastic-bidir|`elastic-k)"
    rf"|{ALONE}\s+(?:is|means|=)\s+(?i:the )?(?:(?i:non-?causal)|`elastic-bidir`)"
)


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


def prose_documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    docs += sorted((ROOT / "results").rglob("README.md"))
    return docs + sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def prose(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return path.read_text()


def stale_names(text: str) -> list[str]:
    """Each place where "ELASTIC" alone names the non-causal form, with a little context."""
    flat = " ".join(text.split())
    return [flat[max(0, m.start() - 30) : m.end() + 30] for m in STALE_PROSE.finditer(flat)]


@pytest.mark.parametrize("path", prose_documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_prose_never_calls_the_non_causal_form_elastic_alone(path):
    found = stale_names(prose(path))
    assert not found, f"{path.relative_to(ROOT)}: write ELASTIC-bidir (non-causal):\n" + "\n".join(
        f"...{s}..." for s in found
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "Measured with the non-causal ELASTIC (today's `elastic-bidir`).",
        "The files' ELASTIC (non-causal, k = 32) is faster.",
        "Here ELASTIC is `elastic-bidir`, trained with cloze.",
        "a bidirectional **ELASTIC** reads the future",
    ],
)
def test_the_prose_check_catches_a_planted_stale_sentence(sentence):
    readme = (ROOT / "README.md").read_text()
    assert stale_names(readme + "\n\n" + sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "ELASTIC-bidir (non-causal) trails; ELASTIC (the causal form) leads.",
        "ELASTIC (k = 32) against the non-causal ELASTIC-bidir (k = 32).",
        "`--model elastic` is ELASTIC; the non-causal reading is `elastic-bidir`.",
    ],
)
def test_the_prose_check_passes_the_right_names(sentence):
    assert not stale_names(sentence)
