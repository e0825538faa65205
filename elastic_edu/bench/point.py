"""One point of the bench: a registered model built for its own N (`elastic_edu.bench.config`
names it: its label, its ModelConfig), one workload, measured with `elastic_edu.bench.profile`
(latency, peak memory) and counted with `elastic_edu.bench.flops`.

Workloads (modes):

    inference   ``model.encode(items)`` under no_grad (not inference_mode: inside the
                dispatch mode that measures CPU memory, autocast then skips einsum's inputs)
    train       the ``cut`` loss, backward and an AdamW step (every model)
    stream      models that stream (their fact `streams`): ``model.step(state, item)`` per event,
                on a state that has already streamed the N events of the history
                (latency_ms is per event); fresh_ms the same events on a fresh stream, timed
                alternately with them; reencode_ms is ``model.score(items)`` on the same
                N-long history, what a model without a state pays for every new event
"""

from __future__ import annotations

import contextlib
import itertools
import math
import statistics
import time
from collections.abc import Callable

import torch

from elastic_edu.bench import flops, profile
from elastic_edu.bench.config import OBJECTIVE, STREAM_EVENTS, Variant, model_config
from elastic_edu.config import ModelConfig
from elastic_edu.models import build_model


def make_inputs(num_items: int, batch: int, n: int, seed: int, device):
    """Random ids 1..num_items drawn with seed + n: items (batch, n) with no padding, and
    targets (batch,)."""
    gen = torch.Generator().manual_seed(seed + n)
    items = torch.randint(1, num_items + 1, (batch, n), generator=gen)
    targets = torch.randint(1, num_items + 1, (batch,), generator=gen)
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
    return lambda: optimizer_step(optimizer, lambda: loss_fn(items, targets, OBJECTIVE), autocast)


def optimizer_step(optimizer, loss: Callable[[], torch.Tensor],
                   autocast: Callable = contextlib.nullcontext) -> torch.Tensor:  # fmt: skip
    """One timed training step, the measurement the bench's ``train`` workload repeats:
    gradients cleared, `loss()` under `autocast`, backward, the optimizer's step. Returns the
    loss. (Training itself steps in `elastic_edu.training.fit`.)"""
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        value = loss()
    value.backward()
    optimizer.step()
    return value.detach()


def step_seconds(mc: ModelConfig, batch: int, device, repeats: int = 3, seed: int = 0) -> float:
    """Median seconds of one training step of the model `mc` describes (the bench's ``train``
    workload: the cut loss, backward, AdamW) on random histories of mc.max_len items."""
    model = build_model(mc, seed=seed).to(device).train()
    items, targets = make_inputs(mc.num_items, batch, mc.max_len, seed, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    run = workload(model, "train", items, targets, contextlib.nullcontext, optimizer)
    return profile.time_runs(run, repeats, warmup=1, device=device).median_ms / 1e3


def point_flops(v: Variant, config, n: int, mode: str, deadline: float = math.inf) -> int | None:
    """Matrix-product FLOPs of one run (per event in stream mode), counted on the meta device;
    None if the model cannot run there. Past `deadline` (``time.perf_counter()``) it raises
    `elastic_edu.bench.flops.CountTimeout`."""
    try:
        with torch.device("meta"):
            model = build_model(model_config(v, config, n)).train(mode == "train")
            items, targets = make_inputs(config.num_items, config.batch, n, config.seed, "meta")
        if mode == "inference":
            return flops.count_flops(lambda: model.encode(items), deadline)
        if mode == "stream":
            state = model.start(batch=config.batch)
            return flops.count_flops(lambda: model.step(state, items[:, 0]), deadline)
        return flops.count_flops(lambda: model.loss(items, targets, OBJECTIVE).backward(), deadline)
    except flops.CountTimeout:
        raise
    except Exception:  # noqa: BLE001 - run_point counts on the real device instead
        return None


def run_point(spec: dict) -> dict:
    """Measure one (variant, n, mode) point in this process; exceptions go to the caller."""
    config, v, n, mode = spec["config"], spec["variant"], spec["n"], spec["mode"]
    device, deadline = torch.device(spec["device"]), time.perf_counter() + config.timeout
    dtype = getattr(torch, config.dtype)
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_model(model_config(v, config, n)).to(device).train(mode == "train")
    items, targets = make_inputs(config.num_items, config.batch, n, config.seed, device)
    params = sum(p.numel() for p in model.parameters())
    if mode == "stream":
        return {"params": params, **_stream(model, items, config, device, autocast, deadline, v)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    # prime on a short slice, eagerly: library set-up and AdamW's state are baseline, not peak
    workload(model, mode, items[:, -8:], targets, autocast, optimizer)()
    run = workload(model, mode, items, targets, autocast, optimizer, v.compile)
    deadline = _precompile(run, v.compile, deadline, config.timeout)
    left = deadline - time.perf_counter()
    timing = profile.time_runs(run, config.repeats, config.warmup, device, left)
    if not timing.complete:
        note = f"projected {timing.projected_s:.0f} s after {len(timing.runs_ms)} timed runs"
        return {"status": "timeout", "params": params, "note": note}
    out = {"status": "ok", "latency_ms": timing.median_ms, "runs_ms": timing.runs_ms,
           "params": params, "peak_mb": None}  # fmt: skip
    if v.compile == "off" or device.type == "cuda":  # PeakMemory sees eager ops only
        out["peak_mb"] = profile.peak_memory(run, device) / 2**20
    if spec.get("flops") is None and spec.get("flops_source") != "skipped":
        out.update(device_flops(run, config.timeout))  # the meta device could not run it
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


def _stream(model, items, config, device, autocast, deadline: float, v: Variant) -> dict:
    """Per-event latency after N streamed events, and re-encoding the N-long history."""
    b, n = items.shape
    step = _compiled(model.step, v.compile)
    gen = torch.Generator().manual_seed(config.seed + n + 1)
    later = torch.randint(1, config.num_items + 1, (b, STREAM_EVENTS), generator=gen).to(device)
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

        deadline = _precompile(events, v.compile, deadline, config.timeout)
        states = itertools.cycle([state, fresh])  # timed runs: streamed, fresh, streamed, ...
        timing = profile.time_runs(events, 2 * config.repeats, 2 * config.warmup, device,
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
        return {**out, **_reencode(model, items, config, device, v, deadline)}


def _reencode(model, items, config, device, v: Variant, deadline: float) -> dict:
    """What a model without a state pays per new event: ``score`` on the whole history (under
    the same compile mode); out of memory or time only leaves it out of a stream point."""
    score = _compiled(model.score, v.compile)
    try:
        deadline = _precompile(lambda: score(items), v.compile, deadline, config.timeout)
        timing = profile.time_runs(lambda: score(items), config.repeats, config.warmup, device,
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
