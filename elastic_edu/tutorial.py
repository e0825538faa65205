"""Helpers the notebooks share: set-up, the quick-mode switch, the data choice, exercise checks.

Every notebook's first code cell calls `setup_notebook(seed)`: it pins torch to one thread in
quick mode, seeds python, numpy and torch, chooses the device once, and makes every plotly figure
carry a static PNG beside its interactive JSON (`static_figures`), so that GitHub, nbviewer and
``nbconvert --to html`` show the figures of a saved notebook.

Environment switches:

- ``ELASTIC_EDU_QUICK=1``: the notebooks' quick mode (small models, few epochs: what CI runs on a
  2-core CPU and what the committed outputs show). Quick-mode numbers are demonstrations; the
  reported results come from the files in ``results/`` (see ``docs/DESIGN.md``).
- ``ELASTIC_EDU_FIGURE_PNG``: ``1`` always adds the PNG (fails loudly without a Chromium browser
  for kaleido), ``0`` never (CI's nbval run, which compares no images); unset: add it when kaleido
  finds a browser (``BROWSER_PATH`` or a Chromium/Chrome on ``PATH``).
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from elastic_edu.data import describe_source, load_sequences
from elastic_edu.data.movielens import movielens_ready
from elastic_edu.data.sequences import SequenceData
from elastic_edu.device import choose_device, describe_device
from elastic_edu.paths import data_dir, find_atomic, repo_root

QUICK_ENV = "ELASTIC_EDU_QUICK"
PNG_ENV = "ELASTIC_EDU_FIGURE_PNG"
# the static image beside each figure: plotly's default size (px), scale 1 keeps notebooks small
PNG_WIDTH, PNG_HEIGHT, PNG_SCALE = 800, 450, 1


def _flag(name: str) -> bool | None:
    """True for 1/true/yes/on, False for 0/false/no/off, None when unset or empty."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def quick_mode() -> bool:
    """True when ``ELASTIC_EDU_QUICK`` is set to 1/true/yes (CI's switch)."""
    return bool(_flag(QUICK_ENV))


def find_browser() -> str | None:
    """The Chromium-based browser kaleido would use for image export, or None (never downloads)."""
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return None
    try:
        return Chromium.find_browser(skip_local=False)
    except Exception:  # noqa: BLE001 - a broken install means "no browser", not a crash
        return None


def static_figures(enabled: bool | None = None) -> str:
    """Set plotly's renderer for this kernel and return its name.

    With a PNG (`enabled` True, or None and ``ELASTIC_EDU_FIGURE_PNG`` not 0 and a browser found):
    ``"plotly_mimetype+png"``, so every displayed figure stores both its interactive JSON and a
    static PNG (``PNG_WIDTH`` x ``PNG_HEIGHT`` unless the figure sets its size). One headless
    browser is kept open for the kernel (kaleido's sync server), so a PNG costs about 0.1 s
    instead of a browser start per figure. Without: ``"plotly_mimetype"`` (JSON only).
    """
    import plotly.io as pio

    if enabled is None:
        enabled = _flag(PNG_ENV)
    if enabled is None:
        enabled = find_browser() is not None
    if not enabled:
        pio.renderers.default = "plotly_mimetype"
        return pio.renderers.default
    if find_browser() is None:
        raise RuntimeError(
            f"{PNG_ENV}=1 but kaleido finds no Chromium or Chrome: install one (Debian: "
            "apt-get install chromium; or set BROWSER_PATH), or set "
            f"{PNG_ENV}=0 for interactive figures only"
        )
    import kaleido

    png = pio.renderers["png"]
    png.width = png.height = None  # a figure's own layout size wins, else the defaults below
    png.scale = PNG_SCALE
    pio.defaults.default_width, pio.defaults.default_height = PNG_WIDTH, PNG_HEIGHT
    # the server ignores plotly's per-call options (only an HTTP header); say so once, not per PNG
    warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
    kaleido.start_sync_server(mathjax=False, silence_warnings=True)  # no MathJax download
    pio.renderers.default = "plotly_mimetype+png"
    return pio.renderers.default


@dataclass(frozen=True)
class NotebookSetup:
    """What `setup_notebook` chose: quick mode, seed, torch threads, device, plotly renderer."""

    quick: bool
    seed: int
    threads: int
    device: torch.device
    renderer: str


def setup_notebook(seed: int = 0, *, threads: int | None = None) -> NotebookSetup:
    """The first code cell of every notebook: threads, seeds, device and figures, in one call.

    threads: torch CPU threads; default one in quick mode (CI runs two notebooks at once on
    two cores), else torch's default. Seeds python, numpy and torch with `seed`. Chooses the
    device once (`choose_device`: cuda > mps > cpu) and the plotly renderer (`static_figures`).
    Prints one line saying what it chose and, in quick mode, that the run is a demonstration.
    """
    quick = quick_mode()
    if threads is None and quick:
        threads = 1
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = choose_device()
    renderer = static_figures()
    figures = "interactive + PNG" if "png" in renderer else "interactive only"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {device} "
        f"({describe_device(device)}), seed {seed}, figures: {figures}"
    )
    if quick:
        print(
            f"quick mode ({QUICK_ENV}=1): small models and short runs, a demonstration of the "
            "method; reported results come from results/ (named where quoted)"
        )
    return NotebookSetup(quick, seed, torch.get_num_threads(), device, renderer)


def movielens_available(name: str = "ml-100k") -> bool:
    """True when MovieLens `name` is on disk (downloaded into data/, or an atomic copy)."""
    return movielens_ready(data_dir() / name, name) or find_atomic(name) is not None


def tutorial_data(name: str = "ml-100k", download: bool = False, **synthetic) -> SequenceData:
    """MovieLens `name` when it is on disk (or `download` is True), else the synthetic set.

    Prints one visible line saying which data the notebook is using and where it came from.
    """
    if download or movielens_available(name):
        data = load_sequences(name, download=download)
        print(f"Using {portable(describe_source(name), name)}")
    else:
        data = load_sequences("synthetic", **synthetic)
        print(
            f"MovieLens {name} is not on this machine: using the synthetic planted-interest set "
            f"instead (call tutorial_data(download=True) to fetch MovieLens from GroupLens)."
        )
    return data


def portable(text: str, name: str) -> str:
    """`text` without this machine's folders: the repository becomes ``<repo>``, a folder on the
    atomic search path ``<atomic search path>`` (`elastic_edu.paths.atomic_search_path`), the home
    folder ``~``. Saved notebook outputs then say where data came from without naming a machine."""
    folder = find_atomic(name)
    root = repo_root()
    for path, label in (
        (folder.parent if folder is not None else None, "<atomic search path>"),
        (root, "<repo>"),
        (Path.home(), "~"),
    ):
        if path is not None and str(path) not in ("", "/"):
            text = text.replace(str(path), label)
    return text


def setup_report() -> dict:
    """Versions and the chosen device, for the first cell of a notebook."""
    import einops
    import numpy
    import plotly

    device = choose_device()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "einops": einops.__version__,
        "numpy": numpy.__version__,
        "plotly": plotly.__version__,
        "device": str(device),
        "device_name": describe_device(device),
        "quick_mode": quick_mode(),
    }


def check(name: str, answer, expected, *, atol: float = 1e-6, hint: str = "") -> bool:
    """Tell a learner whether an exercise `answer` matches `expected`; prints and returns a bool.

    Numbers and arrays/tensors compare with absolute tolerance `atol`; other values with ==.
    An unanswered exercise (`answer is None`) prints a nudge rather than failing.
    """
    import numpy as np

    if answer is None:
        print(f"[{name}] not answered yet. {hint}".rstrip())
        return False
    try:
        a = answer.detach().cpu().numpy() if hasattr(answer, "detach") else answer
        e = expected.detach().cpu().numpy() if hasattr(expected, "detach") else expected
        if isinstance(e, (int, float, np.ndarray, np.generic)) and not isinstance(e, bool):
            ok = np.shape(a) == np.shape(e) and bool(np.allclose(a, e, atol=atol, rtol=0))
        else:
            ok = a == e
    except (TypeError, ValueError):
        ok = False
    print(f"[{name}] " + ("correct!" if ok else f"not quite. {hint}".rstrip()))
    return bool(ok)


# ---- notebooks 00-02 and 08 ----
def tie_statistics(users, timestamps) -> dict:
    """How often a log's timestamps tie, after a stable sort by (user, timestamp, file position).

    users, timestamps: (rows,) arrays in file order. Returns the number of consecutive same-user
    pairs, how many of them share a timestamp, and the users whose last two events are tied (for
    them the tie rule alone decides the test and validation targets).
    """
    users, timestamps = np.asarray(users), np.asarray(timestamps)
    order = np.lexsort((np.arange(len(users)), timestamps, users))  # the last key sorts first
    u, t = users[order], timestamps[order]
    same_user = u[1:] == u[:-1]
    tied = same_user & (t[1:] == t[:-1])
    last = np.flatnonzero(np.r_[u[1:] != u[:-1], True])  # each user's last event
    last = last[last > 0]
    last_two_tied = (u[last] == u[last - 1]) & (t[last] == t[last - 1])
    return {
        "pairs": int(same_user.sum()),
        "tied": int(tied.sum()),
        "users": int(len(np.unique(u))),
        "last_two_tied": u[last[last_two_tied]],
    }


def bench_models(bench: dict, models, mode: str | None = None) -> dict:
    """A bench results file (`elastic_edu.bench.report.load_results`) keeping only the points of
    `models` (their labels in the file, e.g. "elastic-causal-k32") and, if given, one `mode`."""
    points = [p for p in bench["points"] if p["model"] in models and mode in (None, p["mode"])]
    missing = set(models) - {p["model"] for p in points}
    if missing:
        raise ValueError(f"no points for {sorted(missing)} in this bench file")
    return {**bench, "points": points}


class LastItemReadout(torch.nn.Module):
    """Scores histories from the encoder's state at their last item (no [MASK] appended): how a
    model trained on every position predicts. Has the `score` method `evaluate` calls."""

    def __init__(self, model, window: int):
        super().__init__()
        self.model, self.window = model, window

    def score(self, histories):
        from elastic_edu.histories import pad_left

        items = pad_left(histories, self.window).to(self.model.device)
        return self.model.scores_from(self.model.encode(items).hidden[:, -1])  # (b, i)


def train_every_position(model, split, loss_fn, *, window: int, epochs: int, batch_size: int,
                         lr: float, seed: int, device) -> list[dict]:  # fmt: skip
    """Train `model` with `loss_fn(model, inputs, targets)` on every position of the training
    windows (the `AllPositions` sampler, as `fit` does for SASRec), bypassing the library's
    objective guard: deep dive 08 uses it to show what the guard prevents. AdamW without weight
    decay; after each epoch, validation metrics from `LastItemReadout`. Returns one row per epoch
    (`epoch`, `loss`, `valid_<metric>`), the shape of `fit`'s history."""
    from elastic_edu.data.batches import AllPositions
    from elastic_edu.evaluation import evaluate

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sampler, rng = AllPositions(split.train, window, batch_size), np.random.default_rng(seed)
    readout, history = LastItemReadout(model, window), []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for inputs, targets in sampler.epoch(rng):  # (b, n) each
            loss = loss_fn(model, inputs.to(device), targets.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        valid = evaluate(readout, split.valid)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)),
                        **{f"valid_{k}": v for k, v in valid.items()}})  # fmt: skip
    return history


def count_layer_flops(layer_class, n: int, dim: int, heads: int, experts: int | None = None):
    """Matrix-product FLOPs of one call of a fresh ``layer_class(dim, heads)`` on a (1, n, dim)
    history (with (1, experts, dim) experts when `experts` is given), counted by
    `elastic_edu.bench.flops.count_flops` on the meta device: shapes only, nothing computed.

    Layers whose fast path is torch's fused attention kernel, which the counter does not see, run
    their einsum path (``return_weights=True``, the same contractions); the causal dispatcher runs
    as it trains (asking it for weights would add the aggregate weights' products)."""
    from elastic_edu.bench.flops import count_flops
    from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention

    with torch.device("meta"):
        layer = layer_class(dim, heads)
        args = [torch.randn(1, n, dim)] + ([torch.randn(1, experts, dim)] if experts else [])
        args.append(torch.zeros(1, n, dtype=torch.bool))
    weights = not issubclass(layer_class, CausalDispatcherAttention)
    return count_flops(lambda: layer(*args, return_weights=weights))


# ---- notebooks 03, 04 and 07 ----


def _flat_search(q: torch.Tensor, flat: torch.Tensor, k: int):
    """Brute force over a flat key table: q (b, d_k), flat (M, d_k) -> top-k scores, slots."""
    from einops import einsum

    return einsum(q, flat, "b d, s d -> b s").topk(k, dim=-1)


def key_search_latency(
    sizes, key_dim: int, k: int, c: int, users: int, repeats: int, *, device=None, seed: int = 0
) -> dict[str, list[float]]:
    """Median milliseconds of one top-k search for `users` random queries, per m in `sizes`:
    ``{"product keys": [...], "brute force": [...]}`` (notebook 03).

    Product keys: `elastic_edu.nn.product_key_topk` over random sub-keys (m, d_k/2) x 2. Brute
    force: one product with the flat table of all M = m*m full keys, built outside the timing (as
    a flat memory would store it), then topk. Timed with the library's one timer
    (`elastic_edu.bench.profile.time_runs`: one warm-up call, then the median of `repeats`) on a
    single CPU thread, where a shared machine's other work distorts more threads least.
    """
    from elastic_edu.bench.profile import time_runs
    from elastic_edu.nn import product_key_topk
    from elastic_edu.nn.reference import full_keys

    device = torch.device(device or "cpu")
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(users, key_dim, generator=gen).to(device)
    latency: dict[str, list[float]] = {"product keys": [], "brute force": []}
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for m in sizes:
                k1, k2 = (torch.randn(m, key_dim // 2, generator=gen).to(device) for _ in "12")
                flat = full_keys(k1, k2)  # (M, d_k)
                runs = {
                    "product keys": partial(product_key_topk, q, k1, k2, k, c),
                    "brute force": partial(_flat_search, q, flat, k),
                }
                for name, call in runs.items():
                    latency[name].append(
                        time_runs(call, repeats, warmup=1, device=device).median_ms
                    )
                del flat, runs
    finally:
        torch.set_num_threads(threads)
    return latency


def trained_model(model_config, train_config, split, name: str, *, reuse: bool = True):
    """The model of `model_config` trained on `split`, or the one trained earlier with the same
    settings (a checkpoint under data/checkpoints/`name`; `load_checkpoint` refuses a file made
    with other settings, which is then trained again). Returns the model in eval mode on
    `train_config.device`; prints which of the two happened (notebook 07)."""
    from elastic_edu.models import build_model
    from elastic_edu.training import fit, load_checkpoint

    checkpoint = data_dir() / "checkpoints" / name
    if reuse and checkpoint.exists():
        try:
            model = load_checkpoint(checkpoint, model_config).to(choose_device(train_config.device))
            print(f"loaded the model trained earlier from {checkpoint.name}")
            return model.eval()
        except ValueError as err:  # CheckpointError: other settings, or not a checkpoint
            print(f"not using {checkpoint.name}: {err}")
    model = build_model(model_config, seed=train_config.seed)
    fitted = fit(
        model, split, train_config, progress=False, checkpoint=checkpoint if reuse else None
    )
    print(f"trained {len(fitted.history)} epochs in {fitted.train_seconds:.0f} s")
    return fitted.model.eval()


# ---- notebooks 05, 06, 10 and 11 ----
# Reading committed results files (results/README.md names each one's command), so that a notebook
# calls one function where it would otherwise hold the plumbing.


def load_reported(pattern: str = "accuracy-ml-100k-cpu-*.json") -> tuple[str, dict] | None:
    """The newest results file matching `pattern` (name, contents), or None when there is none."""
    import json

    root = repo_root()
    found = (
        sorted((root / "results").glob(pattern), key=lambda p: p.stat().st_mtime) if root else []
    )  # noqa: E501
    return (found[-1].name, json.loads(found[-1].read_text())) if found else None


def _option(words: list[str], flag: str) -> list[str]:
    """The words of a command line after `flag`, up to the next option."""
    rest = words[words.index(flag) + 1 :]
    return rest[: next((i for i, w in enumerate(rest) if w.startswith("-")), len(rest))]


def accuracy_commands(reported: dict, name: str) -> list[str]:
    """The commands that made an accuracy file, in results/README.md's template: one `compare`
    per part (its labels, seeds and the patience its runs recorded), then the merge."""
    import shlex

    lines = []
    for command in reported.get("commands") or []:
        words = shlex.split(command)
        models, seeds = _option(words, "--models"), _option(words, "--seeds")
        patience = {r["config"]["train"]["patience"] for m in models for r in reported["runs"][m]}
        part = Path(words[words.index("--out") + 1]).name
        lines.append(f"python -m elastic_edu compare --dataset {reported['dataset']} --models "
                     f"{' '.join(models)} --seeds {' '.join(seeds)} --patience "
                     f"{'/'.join(map(str, sorted(patience)))} --quiet --out {part}")  # fmt: skip
    if reported.get("merged_from"):
        lines.append(f"python scripts/merge_accuracy.py {' '.join(reported['merged_from'])} "
                     f"--out results/{name}")  # fmt: skip
    return lines


def best_label(reported: dict, prefix: str) -> str | None:
    """The label with the highest mean test NDCG@10 among the file's models named prefix..."""
    from elastic_edu.models import get_spec

    summary = reported["summary"]
    labels = [x for x in summary if get_spec(x.partition(":")[0]).name.startswith(prefix)]
    return max(labels, key=lambda x: summary[x]["test"]["NDCG@10"]["mean"], default=None)


def paired_from_file(reported: dict, a: str, b: str) -> dict:
    """The file's paired test of a - b on each user's NDCG@10 (averaged over seeds), flipped
    when stored as b - a, computed from the runs when the file lacks it."""
    from elastic_edu.evaluation import paired_test, user_ndcg

    stored = reported.get("paired", {})
    if f"{a} vs {b}" in stored:
        return stored[f"{a} vs {b}"]
    if f"{b} vs {a}" in stored:
        t = stored[f"{b} vs {a}"]
        lo, hi = t["ci95"]
        return {**t, "mean_diff": -t["mean_diff"], "ci95": [-hi, -lo],
                "wins": t["losses"], "losses": t["wins"]}  # fmt: skip
    runs = reported["runs"]
    n = min(len(runs[a]), len(runs[b]))
    return paired_test(user_ndcg(runs[a][:n]), user_ndcg(runs[b][:n]))


def paired_sentence(a: str, b: str, test: dict) -> str:
    """One line from a `paired_test` result for a - b: the interval, wins and losses, a verdict."""
    lo, hi = test["ci95"]
    verdict = (f"{a} ahead: the interval excludes 0" if lo > 0
               else f"{b} ahead: the interval excludes 0" if hi < 0
               else "the interval includes 0: no evidence of a difference")  # fmt: skip
    return (f"{a} - {b}: NDCG@10 {test['mean_diff']:+.4f} (95% CI {lo:+.4f} .. {hi:+.4f}), wins "
            f"{test['wins']}, losses {test['losses']}, sign test p = {test['sign_test_p']:.3g}: "
            f"{verdict}")  # fmt: skip


def interest_table(runs_by_label: dict) -> str:
    """Per dispatcher model (mean over its runs): k, memory slots M, fraction of slots used, slot
    entropy relative to uniform, and the assignment entropy as a number of equally used experts."""
    lines = [f"{'model':<21}{'k':>4}{'M slots':>9}{'slots used':>12}{'slot entropy':>14}"
             f"{'effective experts':>19}"]  # fmt: skip
    for label, rs in runs_by_label.items():
        stats = [r.get("interests") or {} for r in rs]
        if not any(stats):
            continue
        mean = lambda part, key, stats=stats: (  # noqa: E731
            float(np.mean(v)) if (v := [s[part][key] for s in stats if part in s]) else None
        )
        cell = lambda v, w, d: f"{v:>{w}.{d}f}" if v is not None else f"{'-':>{w}}"  # noqa: E731
        model = rs[0]["config"]["model"]
        slots = model["memory"]["subkeys"] ** 2 if "slots" in stats[0] else "-"
        lines.append(f"{label:<21}{model['num_experts']:>4}{slots:>9}"
                     f"{cell(mean('slots', 'fraction_used'), 12, 3)}"
                     f"{cell(mean('slots', 'relative_entropy'), 14, 3)}"
                     f"{cell(mean('assignments', 'effective_experts'), 19, 2)}")  # fmt: skip
    return "\n".join(lines)


def long_context_studies(pattern: str = "long-context-*.json") -> dict[str, dict]:
    """The long-range study files in results/ (name -> file), each study part naming the ELASTIC
    form it trained (``elastic_model``: from the study, else the file's settings, else
    ``elastic-bidir``: files from before the option, commit 7dc3014, ran the non-causal form)."""
    import json

    root = repo_root()
    out = {}
    for path in sorted((root / "results").glob(pattern)) if root else []:
        result = json.loads(path.read_text())
        study = result["long_context"]
        form = study.get("elastic_model") or result.get("settings", {}).get("elastic_model")
        study["elastic_model"] = form or "elastic-bidir"
        out[path.name] = result
    return out
