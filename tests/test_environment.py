"""environment.yml (conda) and pyproject.toml (pip) name the same packages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch": "torch", "python-kaleido": "kaleido"}  # conda name -> PyPI name


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    conda, in_pip_section = set(), False
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:") :].splitlines():
        stripped = line.strip()
        if stripped.startswith("- pip:"):
            in_pip_section = True
            continue
        if not stripped.startswith("- ") or stripped.startswith("- -e"):
            continue
        name = _name(stripped[2:])
        if name in ("python", "pip") and not in_pip_section:
            continue
        conda.add(CONDA_NAMES.get(name, name))
    assert conda == pip, f"only in environment.yml: {conda - pip}; only in pyproject: {pip - conda}"
    # torch comes from conda, never from the pip section
    assert not re.search(r"pip:[\s\S]*\btorch\b", (ROOT / "environment.yml").read_text())
