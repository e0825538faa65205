"""The bench's settings: `BenchConfig`, one field per command-line option with its help and its
bounds; the labels it measures and the model each label builds; what the JSON records about the
method (`METHOD`).

Labels name models of `elastic_edu.models.REGISTRY`:

    <model>-<backend>   a model with attention back-ends: sasrec-naive, sasrec-sdpa (bare
                        ``sasrec`` means its default, sdpa)
    <model>-k<K>        a model with K experts: elastic-k32, lda-k16, elastic-causal-k16;
                        a bare name (``elastic``, ``lda-causal``) becomes one label per --k
    <model>             any other sequential model (gru4rec)
    ...+compile         the same under torch.compile (``+cudagraphs``: mode reduce-overhead)

A BenchConfig refuses, when it is built, what cannot be measured honestly: each error is one
line naming the option (the CLI turns it into "error: ..." and exit status 2). The JSON's
``settings`` is `BenchConfig.record`: every field (``ks`` for --k, as files have always named
it), the labels measured and the method notes.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import asdict, dataclass, field, fields, replace

import torch

from elastic_edu.bench.profile import available_memory
from elastic_edu.config import MemoryConfig, ModelConfig
from elastic_edu.device import choose_device
from elastic_edu.files import check_writable
from elastic_edu.models import REGISTRY, get_spec, name_in
from elastic_edu.options import Parser, add_dataclass_options, given

OBJECTIVE = "cut"
K_MAX = MemoryConfig().subkeys ** 2  # k <= M, the slots of the memory the bench builds
STREAM_EVENTS = 16  # events stepped per timed stream run
COMPILE_TAGS = {"off": "", "default": "+compile", "reduce-overhead": "+cudagraphs"}


@dataclass(frozen=True)
class Variant:
    """One measured model: its label, registry name, attention back-end, k, compile mode."""

    label: str
    model: str
    attention: str | None = None
    num_experts: int | None = None
    compile: str = "off"


def measurable(streams: bool = False) -> list[str]:
    """The registered models the bench can measure: neural encoders that train on random cuts
    (with `streams`, those that also stream)."""
    return [name for name, spec in REGISTRY.items() if spec.encodes
            and OBJECTIVE in spec.objectives and (spec.streams or not streams)]  # fmt: skip


def _forms() -> str:
    return (
        f"choose one of {', '.join(measurable())}, with -naive/-sdpa for a model with attention "
        "back-ends and -k<K> for a model with experts (e.g. sasrec-sdpa, elastic-k32)"
    )


def parse_label(name: str, num_experts: list[int]) -> list[Variant]:
    """One --models entry -> its variants (one per k of `num_experts` for a bare name of a model
    with experts)."""
    model = name_in(name)  # elastic-causal-k16 is elastic-causal's, not elastic's
    if model is None:
        raise ValueError(f"--models: unknown {name!r}; {_forms()}")
    spec, suffix = get_spec(model), name[len(model) + 1 :]
    model = spec.name  # labels name the model measured, never an alias
    if model not in measurable():
        raise ValueError(f"--models: {model!r} is not a neural sequence encoder; {_forms()}")
    if spec.backends:
        backend = suffix or ModelConfig.attention
        if backend not in spec.backends:
            raise ValueError(f"--models {name!r}: back-end {backend!r}; choose "
                             f"{' or '.join(spec.backends)}")  # fmt: skip
        return [Variant(f"{model}-{backend}", spec.name, attention=backend)]
    if spec.has_experts:
        found = re.fullmatch(r"k(\d+)", suffix)
        if suffix and not found:
            raise ValueError(f"--models {name!r}: expected {model}-k<K>, e.g. {model}-k32")
        chosen = [int(found[1])] if found else num_experts
        for k in chosen:
            if not 1 <= k <= K_MAX:
                where = f"--models {name!r}" if found else "--k"
                raise ValueError(f"{where}: k={k} must lie in 1..{K_MAX}")
        return [Variant(f"{model}-k{k}", spec.name, num_experts=k) for k in chosen]
    if suffix:
        raise ValueError(f"--models {name!r}: {model} takes no suffix")
    return [Variant(model, spec.name)]


def expand_models(names: list[str], num_experts: list[int], compiles=("off",)) -> list[Variant]:
    """--models, --k and --compile -> the variants to measure, in order, without duplicates."""
    out = []
    for name in names:
        base, _, tag = name.partition("+")
        for v in parse_label(base, num_experts):
            modes = [m for m, t in COMPILE_TAGS.items() if t == "+" + tag] if tag else compiles
            if not modes:
                raise ValueError(f"--models {name!r}: unknown suffix +{tag}")
            for mode in modes:
                label = v.label + COMPILE_TAGS[mode]
                out.append(Variant(label, v.model, v.attention, v.num_experts, mode))
    return list(dict.fromkeys(out))


def model_config(v: Variant, config, n: int) -> ModelConfig:
    """The ModelConfig of variant `v` measured at history length n, by `measured_config`."""
    return measured_config(v.model, config.num_items, n, dim=config.dim, heads=config.heads,
                           layers=config.layers, attention=v.attention,
                           num_experts=v.num_experts)  # fmt: skip


def measured_config(
    model: str,
    num_items: int,
    n: int,
    *,
    dim: int,
    heads: int,
    layers: int,
    attention: str | None = None,
    num_experts: int | None = None,
) -> ModelConfig:
    """A model built to be measured (the bench, the complexity widget): the ModelConfig and
    MemoryConfig defaults, with these overrides and no others: its size, max_len = n (each
    point's model is built for its own N), no dropout, and for a model with k experts a memory
    that keeps c = k candidates per half (the fewest for which the search is exact)."""
    overrides = dict(model=model, num_items=num_items, max_len=n, dim=dim, heads=heads,
                     layers=layers, dropout=0.0)  # fmt: skip
    if attention is not None:
        overrides["attention"] = attention
    if num_experts is not None:
        overrides.update(num_experts=num_experts, memory=MemoryConfig(candidates=num_experts))
    return ModelConfig(**overrides)


DEFAULT_LENGTHS = [128 * 2**i for i in range(8)]  # 128 .. 16384
MODES = ("inference", "train", "stream")
MAX_N, MAX_BATCH = 1_048_576, 4096
METHOD = {
    "objective": OBJECTIVE, "optimizer": "AdamW(lr=1e-3, weight_decay=0)", "dropout": 0.0,
    "max_len": "n: each point's model is built for its own N",
    "inputs": "random ids 1..num_items, no padding; one short primer run before measuring",
    "latency": "elastic_edu.bench.profile.time_runs: median over repeats after warmup; CUDA "
    "events on GPU, perf_counter on CPU; compiled variants compile before the clock starts",
    "memory": "elastic_edu.bench.profile.peak_memory over one more run: tensor bytes beyond "
    "those alive before it; GPU max_memory_allocated, CPU PeakMemory (none for compiled CPU "
    "runs)",
    "flops": "elastic_edu.bench.flops.count_flops (matrix products) of one run on the meta "
    "device",
    "stream": f"latency_ms per event: {STREAM_EVENTS} events stepped onto a state that has "
    "streamed the N events of the history; reencode_ms: model.score on that history",
    "dtype_note": "bfloat16 runs under torch.autocast, as training does",
}  # fmt: skip


def _gib(text: str) -> float:
    """--mem-limit in GiB -> MiB, the unit the JSON records."""
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"--mem-limit={text} must be a positive number of GiB")
    return value * 1024


def _opt(default, help: str, bounds=None, **kw):  # noqa: A002 - the option's help text
    """A BenchConfig field: its default, its help, its bounds (low, high) and option details."""
    meta = {"help": help, "bounds": bounds, **kw}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BenchConfig:
    """What one sweep measures, and how: every field is an option of ``python -m elastic_edu
    bench`` (--field-name, or its ``flag``), checked when the config is built."""

    models: list[str] = _opt(
        ["sasrec-naive", "sasrec-sdpa", "elastic", "lda-k32"],
        "labels: <model>-naive|-sdpa, <model>-k<K>, or a bare name (one per --k); models: "
        + ", ".join(measurable()),
    )
    lengths: list[int] = _opt(DEFAULT_LENGTHS, f"history lengths N (1..{MAX_N})", (1, MAX_N))
    num_experts: list[int] = _opt([16, 32, 64], "experts k for bare model names", (1, K_MAX),
                                  flag="--k", key="ks")  # fmt: skip
    modes: list[str] = _opt(["inference", "train"], "inference, train step, or stream (per "
                            "event; streaming models only)", choices=MODES,
                            metavar=None)  # fmt: skip
    batch: int = _opt(4, f"histories per run (1..{MAX_BATCH})", (1, MAX_BATCH))
    device: str = _opt("auto", "auto (cuda > mps > cpu), cpu, cuda")
    dtype: str = _opt("float32", "float32, or bfloat16 under autocast",
                      choices=("float32", "bfloat16"), metavar=None)  # fmt: skip
    dim: int = _opt(64, "model width d")
    layers: int = _opt(2, "layers L")
    heads: int = _opt(2, "attention heads (dim % heads == 0)")
    num_items: int = _opt(1000, "catalogue size (small, so that scoring is cheap)", (1, 10**7))
    repeats: int = _opt(5, "timed runs per point (the median is kept)", (1, 10_000))
    warmup: int | None = _opt(None, "untimed runs first (none: 1 on CPU, 3 on GPU)", (0, 1_000))
    timeout: float = _opt(120.0, "seconds per point", (1e-9, 7 * 86_400))
    mem_limit_mb: float | None = _opt(
        None, "GiB per CPU point (none: 80% of the free memory: MemAvailable, the cgroup's limit, "
        "ulimit -v)", (1e-9, math.inf), flag="--mem-limit", parse=_gib)  # fmt: skip
    threads: int | None = _opt(None, "torch CPU threads (none: torch's)", (1, 4096))
    compile: list[str] = _opt(["off"], "torch.compile modes to measure each model with (off: "
                              "eager; reduce-overhead: CUDA graphs)",
                              choices=tuple(COMPILE_TAGS), metavar=None)  # fmt: skip
    seed: int = _opt(0, "seed of the random inputs")
    out: str | None = _opt(None, "write the JSON here, rewritten after every point")

    def __post_init__(self) -> None:
        self.lengths = sorted(set(self.lengths))
        for f in fields(self):
            if f.metadata["bounds"] is not None:
                _check(self, f)
        if bad := set(self.modes) - set(MODES):
            raise ValueError(f"--modes {sorted(bad)}: choose from {', '.join(MODES)}")
        variants = self.variants()
        if "stream" in self.modes:
            for v in variants:
                if not get_spec(v.model).streams:
                    streaming = ", ".join(measurable(streams=True))
                    raise ValueError(f"--modes stream: {v.label} does not stream (no start/step); "
                                     f"models that do: {streaming}")  # fmt: skip
        for v in variants:  # dim, heads, layers: the model's own checks
            model_config(v, self, max(self.lengths))
        if self.out:  # before anything is measured
            check_writable(self.out, "--out")

    def variants(self) -> list[Variant]:
        """The labels to measure: --models with --k and --compile."""
        return expand_models(self.models, self.num_experts, self.compile)

    def resolved(self) -> BenchConfig:
        """This config with the defaults that depend on the machine filled in: the device, the
        warm-up runs (1 on CPU, 3 on GPU) and torch's threads."""
        device = choose_device(self.device)
        warmup = self.warmup if self.warmup is not None else (3 if device.type == "cuda" else 1)
        return replace(self, device=str(device), warmup=warmup,
                       threads=self.threads or torch.get_num_threads())  # fmt: skip

    def record(self) -> dict:
        """The JSON's ``settings``: every field under its key, the labels, the method notes."""
        values = asdict(self)
        out = {f.metadata.get("key", f.name): values[f.name] for f in fields(self)}
        return {**out, **METHOD, "labels": [v.label for v in self.variants()]}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchConfig:
        """From parsed options (`add_options`): the options given, the machine's defaults, and on
        a CPU a memory cap of 80% of the free memory unless --mem-limit sets one (on a GPU
        none: points run in this process)."""
        config = cls(**given(args, ("bench",))["bench"]).resolved()
        if torch.device(config.device).type != "cpu":
            return replace(config, mem_limit_mb=None)
        if config.mem_limit_mb is None:
            free = available_memory(torch.device("cpu")) or 0
            config = replace(config, mem_limit_mb=free / 2**20 * 0.8 or None)
        return config

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> BenchConfig:
        """From command-line style arguments, as ``python -m elastic_edu bench`` takes them."""
        parser = Parser(prog="python -m elastic_edu bench")
        add_options(parser)
        return cls.from_args(parser.parse_args(argv))


def _check(config: BenchConfig, f) -> None:
    """The field's value (each value, for a list) within its bounds, or a ValueError naming its
    option."""
    low, high = f.metadata["bounds"]
    name = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
    value = getattr(config, f.name)
    if value == []:
        raise ValueError(f"{name}: give at least one value")
    for v in value if isinstance(value, list) else [value]:
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not (ok and low <= v <= high):
            raise ValueError(f"{name}={v!r} must lie in {low}..{high}")


def add_options(parser: argparse.ArgumentParser) -> None:
    """The bench's options, one per BenchConfig field, each with a help that shows its default."""
    add_dataclass_options(parser, BenchConfig, "bench", "bench")
