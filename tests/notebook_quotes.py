"""Find numbers that a notebook's prose (or the README's, or DESIGN's) quotes but nothing backs.

The rule: every ratio (``2.7x``), percentage (``93%``) or metric-shaped decimal (``0.0560``,
``1.000``) in a markdown cell must be *supported*, i.e. equal, at the precision it is quoted with,
to a number that

1. appears in the text output of a code cell above it (stream, ``text/plain``, ``text/markdown``
   or ``text/html``; a fraction such as 0.934 also supports ``93.4%``), or
2. appears in a results file the same markdown cell names (``results/x.json`` or ``x.json``,
   looked up under ``results/``; a glob such as ``-curriculum*.json`` names every match), or
3. is in `ALLOWED`, the constants a notebook may quote without computing them (the paper's
   claims, each marked **paper** in the prose, and the published anchors docs/DESIGN.md cites).

Signs are not compared: ``-0.0009`` in the prose quotes 0.0009, which ``-0.0009`` in an output
supports.

The README and docs/DESIGN.md follow the same rule paragraph by paragraph (`check_markdown`),
supported by the generated docs/RESULTS.md (every number there is printed from results/) or a
results file the paragraph names.

Not checked: numbers inside code (fenced blocks and inline ``code``), LaTeX (``$...$``), link
targets and HTML comments, and integers without a unit (sizes such as N = 2048, counts, years).
Outputs are those of the committed notebook, so the check needs no kernel.

    python tests/notebook_quotes.py notebooks/*.ipynb     # list unsupported quotes
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
ALLOWED = {
    "90%": "paper: up to 90% less GPU memory (abstract of arXiv 2408.09380)",
    "2.7x": "paper: 2.7x faster inference (abstract of arXiv 2408.09380)",
    # published anchors docs/DESIGN.md quotes: ML-1M, leave-one-out, full ranking, HR@10 / NDCG@10
    # (Zhai et al., ICML 2024, the HSTU paper)
    "0.2853": "HSTU paper: SASRec HR@10 on ML-1M",
    "0.1603": "HSTU paper: SASRec NDCG@10 on ML-1M",
    "0.3097": "HSTU paper: HSTU HR@10 on ML-1M",
    "0.1720": "HSTU paper: HSTU NDCG@10 on ML-1M",
    "0.3294": "HSTU paper: HSTU-large HR@10 on ML-1M",
    "0.1893": "HSTU paper: HSTU-large NDCG@10 on ML-1M",
}
QUOTE = re.compile(
    r"(?<![\w.])(?P<value>\d+(?:\.\d+)?)\s?(?P<unit>x|×|%)(?!\w)"  # ratio or percentage
    r"|(?<![\w.,])(?P<metric>[01]\.\d{2,})(?![\d%×]|x\b)"  # metric-shaped decimal
)
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
RESULTS_FILE = re.compile(r"[\w*.-]*[\w*-]\.json")
STRIP = [
    re.compile(r"```.*?```", re.S),  # fenced code
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"\$[^$\n]+\$"),  # inline math
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"\]\([^)]*\)"),  # link and image targets
]
TEXT_OUTPUTS = ("text/plain", "text/markdown", "text/html")


@dataclass(frozen=True)
class Quote:
    """One quoted number: as written, its value, its decimals, whether it is a percentage."""

    text: str
    value: float
    decimals: int
    percent: bool


@dataclass(frozen=True)
class Unsupported:
    cell: int
    quote: str
    context: str
    where: str = "markdown cell"  # or "paragraph", in a markdown document

    def __str__(self) -> str:
        return f"{self.where} {self.cell}: {self.quote!r} in '...{self.context}...'"


def quotes(markdown: str) -> list[tuple[Quote, str]]:
    """The checked quotes of one markdown text, each with a little context."""
    text = markdown
    for pattern in STRIP:
        text = pattern.sub(" ", text)
    found = []
    for m in QUOTE.finditer(text):
        raw = m.group("metric") or m.group("value")
        unit = m.group("unit") or ""
        decimals = len(raw.split(".")[1]) if "." in raw else 0
        quote = Quote(raw + unit, float(raw), decimals, unit == "%")
        context = " ".join(text[max(0, m.start() - 40) : m.end() + 20].split())
        found.append((quote, context))
    return found


def numbers(text: str) -> set[float]:
    """Every number written in `text` (thousands separators allowed)."""
    out = set()
    for token in NUMBER.findall(text):
        try:
            out.add(float(token.replace(",", "")))
        except ValueError:
            continue
    return out


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for key in TEXT_OUTPUTS:
            value = out.get("data", {}).get(key)
            if value:
                parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(obj=v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield float(obj)


def named_results(markdown: str, results: Path = RESULTS) -> set[float]:
    """Numbers of the results files a markdown text names."""
    values: set[float] = set()
    for name in set(RESULTS_FILE.findall(markdown)):
        base = name.split("/")[-1]  # "x.json", or a suffix "-seed1.json", or a glob "-c*.json"
        pattern = f"*{base}" if base.startswith(("-", "*")) else base
        for path in results.rglob(pattern):
            try:
                values |= set(_leaves(json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
    return values


def supported(quote: Quote, values: set[float]) -> bool:
    tol = 0.5 * 10**-quote.decimals + 1e-9
    for v in values:
        if not math.isfinite(v):
            continue
        v = abs(v)  # the quote pattern takes no sign
        candidates = [v, 100 * v] if quote.percent and v <= 1 else [v]
        if any(abs(c - quote.value) <= tol for c in candidates):
            return True
    return False


def check_notebook(nb, results: Path = RESULTS) -> list[Unsupported]:
    """Every unsupported quote of a notebook (an nbformat node), in cell order."""
    seen: set[float] = set()
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            seen |= numbers(output_text(cell))
            continue
        if cell.cell_type != "markdown":
            continue
        values = seen | named_results(cell.source, results)
        for quote, context in quotes(cell.source):
            if quote.text in ALLOWED or quote.text.replace("×", "x") in ALLOWED:
                continue
            if not supported(quote, values):
                bad.append(Unsupported(i, quote.text, context))
    return bad


def paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs of a markdown document (a fenced block stays whole)."""
    parts, current, fenced = [], [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    return parts + (["\n".join(current)] if current else [])


def check_markdown(text: str, support: str = "", results: Path = RESULTS) -> list[Unsupported]:
    """Every unsupported quote of a markdown document (the README, docs/DESIGN.md), paragraph by
    paragraph: a quote is supported by `support` (the text of the generated docs/RESULTS.md,
    itself printed from results/) or by a results file its own paragraph names."""
    base = numbers(support)
    bad = []
    for i, para in enumerate(paragraphs(text)):
        values = base | named_results(para, results)
        for quote, context in quotes(para):
            if quote.text in ALLOWED or quote.text.replace("×", "x") in ALLOWED:
                continue
            if not supported(quote, values):
                bad.append(Unsupported(i, quote.text, context, "paragraph"))
    return bad


def check_documents(root: Path = ROOT) -> dict[str, list[Unsupported]]:
    """The README and docs/DESIGN.md against docs/RESULTS.md and the results files they name."""
    support = (root / "docs" / "RESULTS.md").read_text()
    return {name: check_markdown((root / name).read_text(), support, root / "results")
            for name in ("README.md", "docs/DESIGN.md")}  # fmt: skip


def main(argv: list[str]) -> int:
    status = 0
    for name in argv:
        if name.endswith(".md"):
            support = (ROOT / "docs" / "RESULTS.md").read_text()
            for item in check_markdown(Path(name).read_text(), support):
                print(f"{name}: {item}")
                status = 1
            continue
        bad = check_notebook(nbformat.read(name, as_version=4))
        for item in bad:
            print(f"{name}: {item}")
        status |= bool(bad)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
