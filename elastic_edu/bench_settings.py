"""The bench's settings: its command-line options, their bounds, and what the JSON records
about the method (`METHOD`). `check_settings` refuses what cannot be measured honestly, with an
error naming the option (the CLI turns it into "error: ..." and exit status 2).
"""

from __future__ import annotations

import argparse
import math

import torch

from elastic_edu.bench_point import (
    COMPILE_TAGS,
    K_MAX,
    OBJECTIVE,
    STREAM_EVENTS,
    Variant,
    expand_models,
    model_config,
)
from elastic_edu.device import choose_device
from elastic_edu.files import check_writable
from elastic_edu.models import REGISTRY, SequentialRecommender
from elastic_edu.profile import available_memory

DEFAULT_LENGTHS = [128 * 2**i for i in range(8)]  # 128 .. 16384
MODES = ("inference", "train", "stream")
MAX_N, MAX_BATCH = 1_048_576, 4096
METHOD = {
    "objective": OBJECTIVE, "optimizer": "AdamW(lr=1e-3, weight_decay=0)", "dropout": 0.0,
    "max_len": "n: each point's model is built for its own N",
    "inputs": "random ids 1..num_items, no padding; one short primer run before measuring",
    "latency": "elastic_edu.profile.time_runs: median over repeats after warmup; CUDA events "
    "on GPU, perf_counter on CPU; compiled variants compile before the clock starts",
    "memory": "elastic_edu.profile.peak_memory over one more run: tensor bytes beyond those "
    "alive before it; GPU max_memory_allocated, CPU PeakMemory (none for compiled CPU runs)",
    "flops": "elastic_edu.flops.count_flops (matrix products) of one run on the meta device",
    "stream": f"latency_ms per event: {STREAM_EVENTS} events stepped onto a state that has "
    "streamed the N events of the history; reencode_ms: model.score on that history",
    "dtype_note": "bfloat16 runs under torch.autocast, as training does",
}  # fmt: skip


def _in_range(value, name: str, low, high) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and low <= value <= high):
        raise ValueError(f"{name}={value!r} must lie in {low}..{high}")


def check_settings(s: dict) -> list[Variant]:
    """Refuse settings the bench cannot measure honestly (ValueError naming the option);
    returns the variants."""
    _in_range(s["batch"], "--batch", 1, MAX_BATCH)
    for n in s["lengths"] or [None]:
        _in_range(n, "--lengths", 1, MAX_N)
    for k in s["ks"] or [None]:
        _in_range(k, "--k", 1, K_MAX)
    _in_range(s["repeats"], "--repeats", 1, 10_000)
    _in_range(s["warmup"], "--warmup", 0, 1_000)
    _in_range(s["timeout"], "--timeout", 1e-9, 7 * 86_400)
    _in_range(s["num_items"], "--num-items", 1, 10_000_000)
    _in_range(s["threads"], "--threads", 1, 4096)
    if s["mem_limit_mb"] is not None:
        _in_range(s["mem_limit_mb"], "--mem-limit (MiB)", 1e-9, math.inf)
    if bad := set(s["modes"]) - set(MODES):
        raise ValueError(f"--modes {sorted(bad)}: choose from {', '.join(MODES)}")
    variants = expand_models(s["models"], s["ks"], s["compile"])
    if "stream" in s["modes"]:
        streams = [n for n, spec in REGISTRY.items() if spec.streams]
        for v in variants:
            if not REGISTRY[v.model].streams:
                raise ValueError(f"--modes stream: {v.label} does not stream (no start/step); "
                                 f"models that do: {', '.join(streams)}")  # fmt: skip
    for v in variants:  # dim, heads, layers: the model's own checks
        model_config(v, s, max(s["lengths"]))
    if s.get("out"):  # before anything is measured
        check_writable(s["out"], "--out")
    return variants


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout in ``--help``."""


OPTIONS = [  # flag, default, help, extra add_argument keywords
    ("--models", ["sasrec-naive", "sasrec-sdpa", "elastic", "lda-k32"],
     "labels: <model>-naive|-sdpa, <model>-k<K>, or a bare name (one per --k); models: "
     + ", ".join(n for n, spec in REGISTRY.items() if issubclass(spec.cls, SequentialRecommender)),
     {"nargs": "+"}),
    ("--lengths", DEFAULT_LENGTHS, f"history lengths N (1..{MAX_N})", {"type": int, "nargs": "+"}),
    ("--k", [16, 32, 64], "experts k for bare model names", {"type": int, "nargs": "+"}),
    ("--modes", ["inference", "train"], "inference, train step, or stream (per event; "
     "streaming models only)", {"nargs": "+", "choices": MODES}),
    ("--batch", 4, f"histories per run (1..{MAX_BATCH})", {"type": int}),
    ("--device", "auto", "auto (cuda > mps > cpu), cpu, cuda", {}),
    ("--dtype", "float32", "float32, or bfloat16 under autocast",
     {"choices": ["float32", "bfloat16"]}),
    ("--dim", 64, "model width d", {"type": int}),
    ("--layers", 2, "layers L", {"type": int}),
    ("--heads", 2, "attention heads (dim % heads == 0)", {"type": int}),
    ("--num-items", 1000, "catalogue size (small, so that scoring is cheap)", {"type": int}),
    ("--repeats", 5, "timed runs per point (the median is kept)", {"type": int}),
    ("--warmup", None, "untimed runs first (none: 1 on CPU, 3 on GPU)", {"type": int}),
    ("--timeout", 120.0, "seconds per point", {"type": float}),
    ("--mem-limit", None, "GiB per CPU point (none: 80% of the free memory: MemAvailable, "
     "the cgroup's limit, ulimit -v)", {"type": float}),
    ("--threads", None, "torch CPU threads (none: torch's)", {"type": int}),
    ("--compile", ["off"], "torch.compile modes to measure each model with (off: eager; "
     "reduce-overhead: CUDA graphs)", {"nargs": "+", "choices": list(COMPILE_TAGS)}),
    ("--seed", 0, "seed of the random inputs", {"type": int}),
    ("--out", None, "write the JSON here, rewritten after every point", {}),
]  # fmt: skip


def add_options(p: argparse.ArgumentParser) -> None:
    """The bench's options, each with a one-line help that shows its default."""
    group = p.add_argument_group("bench")
    for flag, default, text, extra in OPTIONS:
        shown = " ".join(map(str, default)) if isinstance(default, list) else default
        text = f"{text} (default: {'none' if shown is None else shown})".replace("%", "%%")
        group.add_argument(flag, default=default, help=text, **extra)


def make_settings(argv: list[str] | None = None) -> dict:
    """The settings dict `run_bench` takes, from command-line style arguments."""
    p = argparse.ArgumentParser(prog="python -m elastic_edu bench")
    add_options(p)
    return settings_from_args(p.parse_args(argv))


def settings_from_args(a: argparse.Namespace) -> dict:
    """The settings dict `run_bench` takes, from parsed arguments (checked by check_settings)."""
    device = choose_device(a.device)
    cpu = device.type == "cpu"
    if a.mem_limit is not None:
        _in_range(a.mem_limit, "--mem-limit", 1e-6, math.inf)
    free = available_memory(torch.device("cpu")) or 0
    mem = a.mem_limit * 1024 if a.mem_limit is not None else free / 2**20 * 0.8
    s = {"models": a.models, "lengths": sorted(set(a.lengths)), "ks": a.k, "modes": a.modes,
         "batch": a.batch, "device": str(device), "dtype": a.dtype, "dim": a.dim,
         "layers": a.layers, "heads": a.heads, "num_items": a.num_items, "repeats": a.repeats,
         "warmup": a.warmup if a.warmup is not None else (3 if device.type == "cuda" else 1),
         "timeout": a.timeout, "seed": a.seed, "threads": a.threads or torch.get_num_threads(),
         "mem_limit_mb": (mem or None) if cpu else None, "compile": a.compile, "out": a.out,
         **METHOD}  # fmt: skip
    check_settings(s)
    return s
