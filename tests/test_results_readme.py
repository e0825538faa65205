"""results/README.md (and results/history/README.md) name every file under results/.

A name in backticks may be a pattern: `{a,b}` for either, `<model>` for any name, `...` for
anything, a leading `-` for the end of a name (`-seed2.json`), a trailing `/` for a folder.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def pattern(token: str) -> re.Pattern:
    """A backticked name of the README as a regular expression over paths under results/."""
    out, i = "", 0
    while i < len(token):
        if token.startswith("...", i):
            out, i = out + ".*", i + 3
        elif token[i] == "{":
            j = token.index("}", i)
            out, i = out + "(" + "|".join(map(re.escape, token[i + 1 : j].split(","))) + ")", j + 1
        elif token[i] == "<":
            j = token.index(">", i)
            out, i = out + r"[\w.-]+", j + 1
        else:
            out, i = out + re.escape(token[i]), i + 1
    if token.endswith("/"):
        out += ".*"
    if token.startswith("-"):
        out = ".*" + out
    return re.compile(out)


def named(readmes: list[Path]) -> list[re.Pattern]:
    tokens = {t for p in readmes for t in re.findall(r"`([^`\s]+)`", p.read_text())}
    return [pattern(t) for t in tokens if re.search(r"(\.json|\.txt|\.log|\.db|/)$", t)]


def unnamed(root: Path = RESULTS) -> list[str]:
    readmes = sorted(root.rglob("README.md"))
    patterns = named(readmes)
    files = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*"))]
    files = [f for f in files if (root / f).is_file() and not f.endswith("README.md")]

    def has_row(f: str) -> bool:
        return any(pat.fullmatch(f) or pat.fullmatch(f.split("/")[-1]) for pat in patterns)

    return [f for f in files if not has_row(f)]


def test_every_results_file_has_a_row():
    missing = unnamed()
    assert not missing, "results/README.md names no row for: " + ", ".join(missing)


def test_a_file_without_a_row_is_found(tmp_path):
    (tmp_path / "README.md").write_text(
        "| `bench-a.json`, `-seed1.json` | m | c |\n| `tune-<model>-x.json` | m | c |\n"
        "| `probe-{a,b}-y.json`, `gpu/` | m | c |\n"
    )
    for name in ("bench-a.json", "bench-a-seed1.json", "tune-sasrec-x.json", "probe-b-y.json",
                 "gpu/one.log", "stray.json"):  # fmt: skip
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert unnamed(tmp_path) == ["stray.json"]
