"""How long the tutorial takes to read: the measure the core path is held to.

    python scripts/reading_time.py              # per notebook, the core path and the deep dives
    python scripts/reading_time.py --markdown   # the README's tutorial table: one row a notebook

A cold reader's minutes: prose at 200 words a minute (markdown cells, and the README), one
minute per 10 non-blank code lines, one minute per figure (an image output of the executed
notebook: every figure has its PNG beside it). A notebook is a deep dive when its file name or its
first markdown cell says "deep dive"; the core path is the README and every other notebook.
`tests/scripts/test_reading_time.py` holds the core path to CORE_LIMIT minutes. The README's
tutorial table is what `--markdown` prints: notebook, its title (the first heading, without its
number) and its minutes.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS_PER_MINUTE, CODE_LINES_PER_MINUTE, MINUTES_PER_FIGURE = 200, 10, 1
CORE_LIMIT = 180  # minutes


@dataclass
class Cost:
    name: str
    words: int
    code_lines: int
    figures: int
    deep_dive: bool
    title: str = ""

    @property
    def minutes(self) -> float:
        return (self.words / WORDS_PER_MINUTE + self.code_lines / CODE_LINES_PER_MINUTE
                + self.figures * MINUTES_PER_FIGURE)  # fmt: skip


def words(text: str) -> int:
    """Words of prose: markdown without code fences, links' targets and table rules."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(re.findall(r"[A-Za-z0-9][\w'.,%-]*", text))


def notebook_cost(path: Path) -> Cost:
    nb = json.loads(path.read_text())
    cells = nb["cells"]
    prose = ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    lines = sum(1 for src in code for ln in src.splitlines() if ln.strip())
    figures = sum(1 for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
                  if "image/png" in o.get("data", {}))  # fmt: skip
    first = prose[0].lower() if prose else ""
    deep = "deep dive" in path.stem.replace("_", " ") or "deep dive" in first
    return Cost(path.stem, sum(map(words, prose)), lines, figures, deep, title(prose))


def title(prose: list[str]) -> str:
    """The first markdown heading, without its "NN ·" number: what the notebook teaches."""
    for text in prose:
        m = re.search(r"^#+\s+(?:\d+\s*[·.:-]\s*)?(.+?)\s*$", text, flags=re.M)
        if m:
            return m.group(1)
    return ""


def costs(root: Path = ROOT) -> list[Cost]:
    """The README, then every executed notebook in notebooks/, in order."""
    readme = (root / "README.md").read_text()
    code_lines = sum(1 for block in re.findall(r"```.*?```", readme, flags=re.S)
                     for ln in block.splitlines()[1:-1] if ln.strip())  # fmt: skip
    figures = len(re.findall(r"!\[", readme))
    out = [Cost("README", words(readme), code_lines, figures, False)]
    return out + [notebook_cost(p) for p in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def core_minutes(items: list[Cost]) -> float:
    return sum(c.minutes for c in items if not c.deep_dive)


def report(items: list[Cost]) -> str:
    rows = [f"{'':<40} {'words':>6} {'code':>5} {'figs':>4} {'minutes':>8}"]
    for c in items:
        tag = " (deep dive)" if c.deep_dive else ""
        rows.append(f"{c.name + tag:<40} {c.words:>6} {c.code_lines:>5} {c.figures:>4} "
                    f"{c.minutes:>8.0f}")  # fmt: skip
    core, every = core_minutes(items), sum(c.minutes for c in items)
    rows.append(
        f"core path: {core:.0f} min (limit {CORE_LIMIT}); with the deep dives {every:.0f} min"
    )
    return "\n".join(rows)


def markdown(items: list[Cost]) -> str:
    """The README's tutorial table: notebook, what it teaches, minutes; deep dives marked."""
    rows = ["| notebook | what it teaches | minutes |", "|---|---|---|"]
    for c in items:
        if c.name == "README":
            continue
        topic = re.sub(r"^deep dive\s*[:·-]\s*", "", c.title, flags=re.I).replace("|", "\\|")
        what = ("**deep dive**: " if c.deep_dive else "") + topic
        rows.append(f"| [`{c.name}`](notebooks/{c.name}.ipynb) | {what} | {c.minutes:.0f} |")
    core, every = core_minutes(items), sum(c.minutes for c in items)
    rows.append(f"\nCore path, README included: {core:.0f} minutes; deep dives too: {every:.0f}.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT, help="the repository")
    parser.add_argument("--markdown", action="store_true", help="print the README's table rows")
    args = parser.parse_args(argv)
    items = costs(args.root)
    print(markdown(items) if args.markdown else report(items))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
