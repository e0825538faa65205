"""One point of the bench: a registered model built for its own N, one workload, measured with
`elastic_edu.profile` (latency, peak memory) and counted with `elastic_edu.flops`.

Labels name models of `elastic_edu.models.REGISTRY`:

    <model>-<backend>   a model with attention back-ends: sasrec-naive, sasrec-sdpa (bare
                        ``sasrec`` means its default, sdpa)
    <model>-k<K>        a model with K experts: elastic-k32, lda-k16, elastic-causal-k16;
                        a bare name (``elastic``, ``lda-causal``) becomes one label per --k
    <model>             any other sequential model (gru4rec)
    ...+compile         the same under torch.compile (``+cudagraphs``: mode reduce-overhead)

Workloads (modes):

    inference   ``model.encode(items)`` under no_grad (not inference_mode: inside the
                dispatch mode that measures CPU memory, autocast then skips einsum's inputs)
    train       the ``cut`` loss, backward and an AdamW step (every model)
    stream      models that stream (``spec.streams``): ``model.step(state, item)`` per event,
                on a state that has already streamed the N events of the history
                (latency_ms is per event); fresh_ms the same events on a fresh stream, timed
                alternately with them; reencode_ms is ``model.score(items)`` on the same
                N-long history, what a model without a state pays for every new event
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
import time
from dataclasses import dataclass

import torch

from elastic_edu import flops, profile
from elastic_edu.config import MemoryConfig, ModelConfig
from elastic_edu.models import REGISTRY, SequentialRecommender, build_model, get_spec, model_names

OBJECTIVE = "cut"
K_MAX = 1024  # the bench's memory has M = 32 * 32 slots
STREAM_EVENTS = 16  # events stepped per timed stream run
COMPILE_TAGS = {"off": "", "default": "+compile", "reduce-overhead": "+cudagraphs"}


@dataclass(frozen=True)
class Variant:
    """One measured model: its label, registry name, attention back-end, k, compile mode."""

    label: str
    model: str
    attention: str | None = None
    k: int | None = None
    compile: str = "off"


def _forms() -> str:
    names = [n for n, s in REGISTRY.items() if issubclass(s.cls, SequentialRecommender)]
    return (
        f"choose one of {', '.join(names)}, with -naive/-sdpa for a model with attention "
        "back-ends and -k<K> for a model with experts (e.g. sasrec-sdpa, elastic-k32)"
    )


def parse_label(name: str, ks: list[int]) -> list[Variant]:
    """One --models entry -> its variants (several for a bare name of a model with experts)."""
    matches = [m for m in model_names() if name == m or name.startswith(m + "-")]
    if not matches:
        raise ValueError(f"--models: unknown {name!r}; {_forms()}")
    model = max(matches, key=len)  # elastic-causal-k16 is elastic-causal's, not elastic's
    spec, suffix = get_spec(model), name[len(model) + 1 :]
    model = spec.name  # labels name the model measured, never an alias
    if not issubclass(spec.cls, SequentialRecommender) or OBJECTIVE not in spec.objectives:
        raise ValueError(f"--models: {model!r} is not a neural sequence encoder; {_forms()}")
    if "attention" in spec.uses:
        backend = suffix or ModelConfig.attention
        if backend not in ("naive", "sdpa"):
            raise ValueError(f"--models {name!r}: back-end {backend!r}; choose naive or sdpa")
        return [Variant(f"{model}-{backend}", spec.name, attention=backend)]
    if "num_experts" in spec.uses:
        found = re.fullmatch(r"k(\d+)", suffix)
        if suffix and not found:
            raise ValueError(f"--models {name!r}: expected {model}-k<K>, e.g. {model}-k32")
        chosen = [int(found[1])] if found else ks
        for k in chosen:
            if not 1 <= k <= K_MAX:
                where = f"--models {name!r}" if found else "--k"
                raise ValueError(f"{where}: k={k} must lie in 1..{K_MAX}")
        return [Variant(f"{model}-k{k}", spec.name, k=k) for k in chosen]
    if suffix:
        raise ValueError(f"--models {name!r}: {model} takes no suffix")
    return [Variant(model, spec.name)]


def expand_models(names: list[str], ks: list[int], compiles=("off",)) -> list[Variant]:
    """--models, --k and --compile -> the variants to measure, in order, without duplicates."""
    out = []
    for name in names:
        base, _, tag = name.partition("+")
        for v in parse_label(base, ks):
            modes = [m for m, t in COMPILE_TAGS.items() if t == "+" + tag] if tag else compiles
            if not modes:
                raise ValueError(f"--models {name!r}: unknown suffix +{tag}")
            for mode in modes:
                label = v.label + COMPILE_TAGS[mode]
                out.append(Variant(label, v.model, v.attention, v.k, mode))
    return list(dict.fromkeys(out))


def model_config(v: Variant, s: dict, n: int) -> ModelConfig:
    """The ModelConfig of variant `v` built for history length n (max_len = n)."""
    k = v.k or 32
    return ModelConfig(
        model=v.model, num_items=s["num_items"], max_len=n, dim=s["dim"], heads=s["heads"],
        layers=s["layers"], dropout=0.0, attention=v.attention or "sdpa", num_experts=k,
        memory=MemoryConfig(subkeys=32, candidates=k, key_dim=64),
    )  # fmt: skip


def make_inputs(s: dict, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids 1..I: items (b, n) with no padding, targets (b,)."""
    gen = torch.Generator().manual_seed(s["seed"] + n)
    items = torch.randint(1, s["num_items"] + 1, (s["batch"], n), generator=gen)
    targets = torch.randint(1, s["num_items"] + 1, (s["batch"],), generator=gen)
    return items.to(device), targets.to(device)


def _compiled(fn, compile_mode: str):
    return fn if compile_mode == "off" else torch.compile(fn, mode=compile_mode)


def workload(model, mode: str, items, targets, autocast, optimizer=None, compile_mode="off"):
    """The function one timed run calls: ``encode`` under no_grad, or a training step
    (cut loss, backward, `optimizer` step); unless compile_mode is "off", under torch.compile:
    what the model compiles for inference (`compiled_encode`), its whole loss for training."""
    if mode == "inference":
        encode = model.compiled_encode(compile_mode) if compile_mode != "off" else model.encode

        def run():
            with torch.no_grad(), autocast():
                encode(items)

        return run
    loss_fn = _compiled(model.loss, compile_mode)

    def run():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(items, targets, OBJECTIVE)
        loss.backward()
        optimizer.step()

    return run


def point_flops(v: Variant, s: dict, n: int, mode: str, deadline: float = math.inf) -> int | None:
    """Matrix-product FLOPs of one run (per event in stream mode), counted on the meta device;
    None if the model cannot run there. Past `deadline` (``time.perf_counter()``) it raises
    `elastic_edu.flops.CountTimeout`."""
    try:
        with torch.device("meta"):
            model = build_model(model_config(v, s, n)).train(mode == "train")
            items, targets = make_inputs(s, n, "meta")
        if mode == "inference":
            return flops.count_flops(lambda: model.encode(items), deadline)
        if mode == "stream":
            state = model.start(batch=s["batch"])
            return flops.count_flops(lambda: model.step(state, items[:, 0]), deadline)
        return flops.count_flops(lambda: model.loss(items, targets, OBJECTIVE).backward(), deadline)
    except flops.CountTimeout:
        raise
    except Exception:  # noqa: BLE001 - run_point counts on the real device instead
        return None


def run_point(spec: dict) -> dict:
    """Measure one (variant, n, mode) point in this process; exceptions go to the caller."""
    s, v, n, mode = spec["settings"], spec["variant"], spec["n"], spec["mode"]
    device, deadline = torch.device(spec["device"]), time.perf_counter() + s["timeout"]
    dtype = getattr(torch, s["dtype"])
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    torch.manual_seed(s["seed"])
    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    model = build_model(model_config(v, s, n)).to(device).train(mode == "train")
    items, targets = make_inputs(s, n, device)
    params = sum(p.numel() for p in model.parameters())
    if mode == "stream":
        return {"params": params, **_stream(model, items, s, device, autocast, deadline, v)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    # prime on a short slice, eagerly: library set-up and AdamW's state are baseline, not peak
    workload(model, mode, items[:, -8:], targets, autocast, optimizer)()
    run = workload(model, mode, items, targets, autocast, optimizer, v.compile)
    deadline = _precompile(run, v.compile, deadline, s["timeout"])
    left = deadline - time.perf_counter()
    timing = profile.time_runs(run, s["repeats"], s["warmup"], device, left)
    if not timing.complete:
        note = f"projected {timing.projected_s:.0f} s after {len(timing.runs_ms)} timed runs"
        return {"status": "timeout", "params": params, "note": note}
    out = {"status": "ok", "latency_ms": timing.median_ms, "runs_ms": timing.runs_ms,
           "params": params, "peak_mb": None}  # fmt: skip
    if v.compile == "off" or device.type == "cuda":  # PeakMemory sees eager ops only
        out["peak_mb"] = profile.peak_memory(run, device) / 2**20
    if spec.get("flops") is None and spec.get("flops_source") != "skipped":
        out.update(device_flops(run, s["timeout"]))  # the meta device could not run it
    return out


def device_flops(run, timeout: float) -> dict:
    """FLOPs of one more run on the device, within `timeout` seconds (else skipped)."""
    try:
        return {"flops": flops.count_flops(run, time.perf_counter() + timeout),
                "flops_source": "device"}  # fmt: skip
    except flops.CountTimeout:
        return {"flops": None, "flops_source": "skipped",
                "flops_note": f"counting took longer than --timeout ({timeout:g} s)"}  # fmt: skip


def _precompile(run, compile_mode: str, deadline: float, timeout: float) -> float:
    """Compile (and record CUDA graphs) before the clock starts; the new deadline."""
    if compile_mode == "off":
        return deadline
    for _ in range(3 if compile_mode == "reduce-overhead" else 1):
        run()
    return time.perf_counter() + timeout


def _stream(model, items, s: dict, device, autocast, deadline: float, v: Variant) -> dict:
    """Per-event latency after N streamed events, and re-encoding the N-long history."""
    b, n = items.shape
    step = _compiled(model.step, v.compile)
    gen = torch.Generator().manual_seed(s["seed"] + n + 1)
    later = torch.randint(1, s["num_items"] + 1, (b, STREAM_EVENTS), generator=gen).to(device)
    chunk, state, seen = 64, None, 0
    with torch.no_grad(), autocast():
        state = model.start(batch=b)

        def advance():  # stream the next `chunk` events of the history into the state
            nonlocal state, seen
            for t in range(seen, min(seen + chunk, n)):
                state = model.step(state, items[:, t])
            seen = min(seen + chunk, n)

        fill = profile.time_runs(advance, math.ceil(n / chunk), 0, device,
                                 deadline - time.perf_counter(), min_runs=1)  # fmt: skip
        if not fill.complete:
            return {"status": "timeout", "note": f"streaming {n} events: projected "
                    f"{fill.projected_s:.0f} s after {seen}"}  # fmt: skip
        # the same events on the streamed state and on a fresh one, alternately: the ratio of
        # the two holds even when other processes slow this one down
        fresh = model.start(batch=b)
        states = itertools.cycle([state, fresh])

        def events():  # STREAM_EVENTS new events on the next state (which stays as it is)
            st = next(states)
            for t in range(STREAM_EVENTS):
                st = step(st, later[:, t])

        deadline = _precompile(events, v.compile, deadline, s["timeout"])
        states = itertools.cycle([state, fresh])  # timed runs: streamed, fresh, streamed, ...
        timing = profile.time_runs(events, 2 * s["repeats"], 2 * s["warmup"], device,
                                   deadline - time.perf_counter())  # fmt: skip
        if not timing.complete:
            return {"status": "timeout", "note": f"{STREAM_EVENTS} events: projected "
                    f"{timing.projected_s:.0f} s"}  # fmt: skip
        after, before = timing.runs_ms[0::2], timing.runs_ms[1::2]
        eager = v.compile == "off" or device.type == "cuda"  # PeakMemory sees eager ops only
        peak = profile.peak_memory(events, device) / 2**20 if eager else None
        out = {"status": "ok", "latency_ms": statistics.median(after) / STREAM_EVENTS,
               "runs_ms": after, "fresh_ms": statistics.median(before) / STREAM_EVENTS,
               "fresh_runs_ms": before, "events_per_run": STREAM_EVENTS, "peak_mb": peak,
               "stream_s": sum(fill.runs_ms) / 1e3}  # fmt: skip
        return {**out, **_reencode(model, items, s, device, v, deadline)}


def _reencode(model, items, s: dict, device, v: Variant, deadline: float) -> dict:
    """What a model without a state pays per new event: ``score`` on the whole history (under
    the same compile mode); out of memory or time only leaves it out of a stream point."""
    score = _compiled(model.score, v.compile)
    try:
        deadline = _precompile(lambda: score(items), v.compile, deadline, s["timeout"])
        timing = profile.time_runs(lambda: score(items), s["repeats"], s["warmup"], device,
                                   deadline - time.perf_counter())  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is expected here
        if not is_oom(exc):
            raise
        return {"reencode_ms": None, "reencode_note": f"out of memory: {exc}"[:300]}
    if not timing.complete:
        return {"reencode_ms": None, "reencode_note": f"projected {timing.projected_s:.0f} s"}
    return {"reencode_ms": timing.median_ms, "reencode_runs_ms": timing.runs_ms}


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` says the process or the device ran out of memory."""
    text = str(exc).lower()
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or any(
        t in text for t in ("out of memory", "can't allocate memory", "bad_alloc")
    )
