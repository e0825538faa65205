"""Make the README's images (docs/images/*.png) from the committed results files.

    python scripts/make_readme_images.py                 # every image
    python scripts/make_readme_images.py accuracy        # only some: accuracy complexity
                                                         #   long-range inspector
    python scripts/make_readme_images.py accuracy --accuracy results/accuracy-ml-100k-<m>.json

Each figure comes from `elastic_edu.viz`, exported with plotly's kaleido (a Chromium-based
browser must be installed: Debian's `chromium`, or BROWSER_PATH). The accuracy chart reads
`results/accuracy-ml-100k-cpu-amd-epyc.json` unless --accuracy names another: re-run this script
after the table changes. The CPU cost curves read `results/bench-cpu-amd-epyc.json` and draw
SASRec and the causal ELASTIC only. The inspector image is the browser test's screenshot
(`artifacts/browser/inspector.png`, left by `pytest tests/browser`), copied when present.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from elastic_edu import viz  # noqa: E402
from elastic_edu.bench.report import load_results  # noqa: E402
from elastic_edu.tutorial import static_figures  # noqa: E402

RESULTS, IMAGES = ROOT / "results", ROOT / "docs" / "images"
WIDTH, HEIGHT = 860, 460
# (image, bench file, metric, mode, labels drawn or None for all): the complexity curves. The
# README's headline figure is the CPU one: SASRec against the causal ELASTIC that `--model
# elastic` trains (the file's non-causal elastic-bidir curve is left out of it; docs/RESULTS.md
# has its numbers). The H200 files (commit 7dc3014) measured only the non-causal form.
CPU_LABELS = ("sasrec-naive", "sasrec-sdpa", "elastic-causal-k8", "elastic-causal-k32")
COMPLEXITY = [
    ("complexity-cpu-latency.png", "bench-cpu-amd-epyc.json", "latency_ms", "inference",
     CPU_LABELS),
    ("complexity-h200-bf16-latency.png", "bench-nvidia-h200-bf16.json", "latency_ms", "inference",
     None),
    ("complexity-h200-fp32-memory.png", "bench-nvidia-h200-fp32.json", "peak_mb", "inference",
     None),
]  # fmt: skip
METRICS = ["HR@10", "NDCG@10"]
# the converged table the README quotes (the H200 file is commit 7dc3014's, whose `elastic` is
# the non-causal form: never the default)
ACCURACY = "accuracy-ml-100k-cpu-amd-epyc.json"


def write(fig, name: str) -> Path:
    path = IMAGES / name
    fig.write_image(path, width=WIDTH, height=HEIGHT, scale=1)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def complexity() -> None:
    for name, source, metric, mode, labels in COMPLEXITY:
        bench = load_results(RESULTS / source)
        if labels is not None:
            bench = {**bench, "points": [p for p in bench["points"] if p["model"] in labels]}
        fig = viz.complexity_figure(bench, metric, mode)
        note = " (commit 7dc3014, before the causal ELASTIC)" if "h200" in source else ""
        fig.update_layout(
            title_text=f"{fig.layout.title.text}<br><sup>results/{source}{note}</sup>"
        )
        write(fig, name)


def accuracy(path: Path | None) -> None:
    if path is None:
        path = RESULTS / ACCURACY
        if not path.exists():
            print(f"no results/{ACCURACY}: accuracy chart skipped")
            return
    path = path.resolve()
    table = json.loads(path.read_text())
    means, errors = {}, {}
    for label, by_split in table["summary"].items():
        for key, suffix in (("test", ""), ("test_masked", " masked")):
            for m in METRICS:
                cell = by_split[key][m]
                means.setdefault(label, {})[m + suffix] = cell["mean"]
                se = cell.get("se")
                errors.setdefault(label, {})[m + suffix] = se if se else None
    columns = METRICS + [m + " masked" for m in METRICS]
    seeds = ", ".join(map(str, table.get("seeds", [])))
    title = (
        f"{table.get('dataset')}: test metrics, mean ± SE over seeds {seeds} "
        f"({table.get('device_name')})<br><sup>full ranking over all items; masked: history "
        f"items removed from the ranking. {path.relative_to(ROOT)}</sup>"
    )
    write(viz.bar_table(means, columns, errors, title=title), "accuracy-ml-100k.png")


def long_range() -> None:
    """The recommended causal ELASTIC's long-range studies, seed 0 of each distance."""
    names = ("long-context-cpu-amd-epyc-causal-d300-seed0.json",
             "long-context-cpu-amd-epyc-causal-d1500-seed0.json")  # fmt: skip
    studies = [json.loads((RESULTS / n).read_text())["long_context"] for n in names
               if (RESULTS / n).exists()]  # fmt: skip
    if not studies:
        print("no results/long-context-cpu-amd-epyc-causal-*.json: long-range chart skipped")
        return
    fig = viz.long_context_figure(studies)
    source = "results/long-context-cpu-amd-epyc-causal-d{300,1500}-seed0.json (AMD EPYC CPU)"
    fig.update_layout(title_text=f"{fig.layout.title.text}<br><sup>{source}</sup>")
    write(fig, "long-range-recall.png")


def inspector() -> None:
    shot = ROOT / "artifacts" / "browser" / "inspector.png"
    if not shot.exists():
        print(f"{shot.relative_to(ROOT)} not found: run `pytest tests/browser` first; kept the "
              "committed docs/images/inspector.png")  # fmt: skip
        return
    shutil.copyfile(shot, IMAGES / "inspector.png")
    print(f"copied {shot.relative_to(ROOT)} to docs/images/inspector.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = ["complexity", "accuracy", "long-range", "inspector"]
    parser.add_argument("parts", nargs="*", choices=parts, help="default: all")
    parser.add_argument("--accuracy", type=Path, help="the accuracy table to draw")
    args = parser.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    todo = args.parts or parts
    if set(todo) - {"inspector"}:
        static_figures(True)  # kaleido's browser, kept open for every image
    if "complexity" in todo:
        complexity()
    if "accuracy" in todo:
        accuracy(args.accuracy)
    if "long-range" in todo:
        long_range()
    if "inspector" in todo:
        inspector()
    return 0


if __name__ == "__main__":
    sys.exit(main())
