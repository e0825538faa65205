r"""Latency, peak memory and FLOPs against history length N: ELASTIC versus SASRec.

**paper** (arXiv 2408.09380): self-attention costs O(N^2) time and memory; ELASTIC's linear
dispatcher attention over k interest experts is linear in N, with up to 90% less GPU memory and
2.7x faster inference than the quadratic baseline on long sequences.

    python -m elastic_edu bench --models sasrec-naive sasrec-sdpa elastic lda \
        --lengths 2048 8192 --batch 4 --device cpu --out bench.json

**our decisions** (also in the JSON's ``settings``): labels ``sasrec-naive`` (materialises
N x N), ``sasrec-sdpa`` (scaled_dot_product_attention), ``elastic`` -> ``elastic-k16``, ... one
per ``--k``, ``lda`` -> LDA-only at the middle k. Inputs: random ids 1..I, no padding. Inference
is ``encode`` under ``inference_mode``; a training step is the ``cut`` loss + backward + AdamW step
for every model. Latency: median of ``--repeats`` runs after ``--warmup`` (CUDA events on GPU).
Peak memory on CPU: each point in a fresh process (forkserver), ru_maxrss after the runs minus
before them (model, optimizer state, inputs built); on GPU ``max_memory_allocated`` minus what
was allocated before. FLOPs: ``FlopCounterMode`` (matrix products) over one run on the meta
device, so points that ran out of memory or time still get their theoretical cost. A point out
of memory or time is recorded as ``oom``/``timeout``; larger N of that model and mode are then
recorded as skipped with the same status.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu.bench_report import (  # noqa: F401 - re-exported: elastic_edu.bench.summarise
    format_summary,
    load_results,
    loglog_slope,
    reference_k,
    summarise,
)
from elastic_edu.config import MemoryConfig, ModelConfig
from elastic_edu.device import choose_device, describe_device
from elastic_edu.models import build_model

DEFAULT_LENGTHS = [128 * 2**i for i in range(8)]  # 128 .. 16384
STATUSES = ("ok", "oom", "timeout")
OBJECTIVE = "cut"


def expand_models(models: list[str], ks: list[int]) -> list[dict]:
    """Labels -> variants {label, model, attention, k}; ``elastic`` becomes one label per k."""
    out = []
    for name in models:
        base, _, k = name.partition("-k")
        if name in ("sasrec-naive", "sasrec-sdpa"):
            out.append({"label": name, "model": "sasrec", "attention": name[7:], "k": None})
        elif base in ("elastic", "lda") and k.isdigit():
            out.append({"label": name, "model": base, "attention": "sdpa", "k": int(k)})
        elif name in ("elastic", "lda"):
            chosen = ks if name == "elastic" else [reference_k(ks)]
            out.extend(expand_models([f"{name}-k{k}" for k in chosen], ks))
        else:
            raise SystemExit(
                f"--models: unknown {name!r}; choose sasrec-naive, sasrec-sdpa, elastic, lda "
                "(or elastic-k<K>, lda-k<K>)"
            )
    return out


def model_config(variant: dict, s: dict) -> ModelConfig:
    k = variant["k"] or 32
    return ModelConfig(
        model=variant["model"], num_items=s["num_items"], max_len=s["max_len"], dim=s["dim"],
        heads=s["heads"], layers=s["layers"], dropout=0.0, attention=variant["attention"],
        num_experts=k, memory=MemoryConfig(subkeys=32, candidates=k, key_dim=64),
    )  # fmt: skip


def make_inputs(s: dict, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ids 1..I: items (b, n) with no padding, targets (b,)."""
    gen = torch.Generator().manual_seed(s["seed"] + n)
    items = torch.randint(1, s["num_items"] + 1, (s["batch"], n), generator=gen)
    targets = torch.randint(1, s["num_items"] + 1, (s["batch"],), generator=gen)
    return items.to(device), targets.to(device)


class _MetaScalars(TorchDispatchMode):
    """On the meta device a data-dependent check (``if pad.any():``) has no value: say False."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            return False if args[0].dtype == torch.bool else 0
        return func(*args, **(kwargs or {}))


def _one_run(model, items, targets, mode: str, optimizer, autocast) -> None:
    """One inference forward, or one training step (forward, cut loss, backward, step)."""
    if mode == "inference":
        with torch.inference_mode(), autocast():
            model.encode(items)
        return
    optimizer.zero_grad(set_to_none=True)
    with autocast():
        loss = model.loss(items, targets, OBJECTIVE)
    loss.backward()
    optimizer.step()


def count_flops(variant: dict, s: dict, n: int, mode: str) -> int | None:
    """Matrix-product FLOPs of one run on the meta device (None if the model cannot run there)."""
    try:
        with torch.device("meta"):
            model = build_model(model_config(variant, s)).train(mode == "train")
            items, targets = make_inputs(s, n, "meta")
        with _MetaScalars(), FlopCounterMode(display=False) as counter:
            if mode == "inference":
                model.encode(items)
            else:
                model.loss(items, targets, OBJECTIVE).backward()
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - the worker counts on the real device instead
        return None


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or any(
        t in text for t in ("out of memory", "not enough memory", "can't allocate")
    )


def run_point(spec: dict) -> dict:
    """Measure one (model, n, mode) point in this process: latency, peak memory, status."""
    s, device = spec["settings"], torch.device(spec["device"])
    cuda = device.type == "cuda"
    dtype = getattr(torch, s["dtype"])
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    torch.manual_seed(s["seed"])
    if s.get("threads"):
        torch.set_num_threads(s["threads"])
    model = build_model(model_config(spec["variant"], s)).to(device).train(spec["mode"] == "train")
    items, targets = make_inputs(s, spec["n"], device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    # prime on a short slice: library set-up and AdamW's state count as baseline, not as peak
    _one_run(model, items[:, -8:], targets, spec["mode"], optimizer, autocast)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start, times = time.perf_counter(), []
    for i in range(s["warmup"] + s["repeats"]):
        if cuda:
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            _one_run(model, items, targets, spec["mode"], optimizer, autocast)
            t1.record()
            t1.synchronize()
            ms = t0.elapsed_time(t1)
        else:
            t = time.perf_counter()
            _one_run(model, items, targets, spec["mode"], optimizer, autocast)
            ms = 1e3 * (time.perf_counter() - t)
        if i >= s["warmup"]:
            times.append(ms)
        elapsed = time.perf_counter() - start
        projected = elapsed + ms / 1e3 * (s["warmup"] + s["repeats"] - i - 1)
        if projected > s["timeout"]:
            return {"status": "timeout", "note": f"projected {projected:.0f} s after {i + 1} runs"}
    if cuda:
        peak_mb = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    out = {"status": "ok", "latency_ms": statistics.median(times), "runs_ms": times,
           "peak_mb": max(peak_mb, 0.0)}  # fmt: skip
    if spec.get("flops") is None:  # the meta device could not run it: count on the device
        with FlopCounterMode(display=False) as counter:
            _one_run(model, items, targets, spec["mode"], optimizer, autocast)
        out["flops"], out["flops_source"] = int(counter.get_total_flops()), "device"
    return out


def _child(conn, spec: dict) -> None:
    """Forkserver worker: cap the address space, measure, send the result back."""
    limit = spec["settings"].get("mem_limit_mb")
    if limit:
        now = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        cap = now + int(limit * 2**20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        result = run_point(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        oom = _is_oom(exc)
        note = f"{type(exc).__name__}: {exc}"[:300] if oom else traceback.format_exc()
        result = {"status": "oom" if oom else "error", "note": note}
    conn.send(result)
    conn.close()


def _run_isolated(ctx, spec: dict) -> dict:
    """Run `spec` in a fresh process; the parent enforces the timeout (kill -> timeout)."""
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, spec), daemon=True)
    proc.start()
    send.close()
    try:
        if receive.poll(spec["settings"]["timeout"] + 30):
            return receive.recv()
        return {"status": "timeout", "note": "killed at the time limit"}
    except EOFError:  # died without a word: the kernel's OOM killer, most likely
        proc.join(5)
        return {"status": "oom", "note": f"worker died (exit code {proc.exitcode})"}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()


def _mem_available_mb() -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return None


def run_bench(s: dict, out: str | None = None, log=print) -> dict:
    """Measure every (mode, n, model) point of settings `s`; write `out` after each point.

    Models are interleaved at each n, so the ratios at one n are measured close in time. On CPU
    each point runs in a forkserver process: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard (the CLI, pytest and notebooks need nothing).
    """
    device = choose_device(s["device"])
    variants = expand_models(s["models"], s["ks"])
    bench = {
        "machine": {"hostname": platform.node(), "platform": platform.platform(),
                    "cpu_count": mp.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version()}, "device": str(device),
        "device_name": describe_device(device), "torch": torch.__version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": {**s, "labels": [v["label"] for v in variants]}, "points": [],
    }  # fmt: skip
    ctx = None
    if device.type == "cpu":
        ctx = mp.get_context("forkserver")
        # torch._dynamo: imported lazily by the first optimizer, 2 s in every fresh process
        ctx.set_forkserver_preload(
            ["elastic_edu.bench", "elastic_edu.models.elastic", "torch._dynamo"]
        )
    failed: dict[tuple[str, str], str] = {}
    total, done = len(s["modes"]) * len(s["lengths"]) * len(variants), 0
    for mode in s["modes"]:
        for n in s["lengths"]:
            for v in variants:
                done += 1
                point = {"model": v["label"], "n": n, "batch": s["batch"], "mode": mode,
                         "k": v["k"], "dtype": s["dtype"], "latency_ms": None, "peak_mb": None,
                         "flops": count_flops(v, s, n, mode), "flops_source": "meta"}  # fmt: skip
                key, t0 = (v["label"], mode), time.perf_counter()
                if key in failed:
                    point.update(status=failed[key].split()[0], note=f"skipped: {failed[key]}")
                else:
                    spec = {"settings": s, "variant": v, "n": n, "mode": mode,
                            "device": str(device), "flops": point["flops"]}  # fmt: skip
                    result = _run_isolated(ctx, spec) if ctx else _run_in_process(spec)
                    if result["status"] == "error":
                        raise RuntimeError(f"{v['label']} {mode} n={n} failed:\n{result['note']}")
                    point.update(result)
                    if point["status"] != "ok":
                        failed[key] = f"{point['status']} at n={n}"
                bench["points"].append(point)
                log(_progress_line(done, total, point, time.perf_counter() - t0))
                if out:
                    write_json(out, bench)
    return bench


def _run_in_process(spec: dict) -> dict:
    """GPU: measure in this process; an out-of-memory error becomes status ``oom``."""
    try:
        return run_point(spec)
    except Exception as exc:  # noqa: BLE001
        if not _is_oom(exc):
            raise
        return {"status": "oom", "note": f"{type(exc).__name__}: {exc}"[:300]}
    finally:
        gc.collect()
        if spec["device"].startswith("cuda"):
            torch.cuda.empty_cache()


def _progress_line(done: int, total: int, p: dict, seconds: float) -> str:
    if p["status"] != "ok":
        what = f"{p['status']} ({p.get('note', '')})"
    else:
        what = f"{p['latency_ms']:10.2f} ms {p['peak_mb']:10.1f} MB"
    flops = f"{p['flops']:.3g}" if p["flops"] else "?"
    return (f"[{done}/{total}] {p['model']:<14} {p['mode']:<9} n={p['n']:<6} {what} "
            f"{flops} FLOP ({seconds:.1f} s)")  # fmt: skip


def write_json(path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)


METHOD = {
    "objective": OBJECTIVE, "optimizer": "AdamW(lr=1e-3, weight_decay=0)", "dropout": 0.0,
    "inputs": "random ids 1..num_items, no padding; one short primer run before measuring",
    "latency": "median over repeats after warmup; CUDA events on GPU",
    "memory": "CPU: ru_maxrss of a fresh process after the runs minus before them; "
    "GPU: max_memory_allocated minus allocated before the runs",
    "flops": "FlopCounterMode (matrix products only) over one run on the meta device",
    "dtype_note": "bfloat16 runs under torch.autocast, as training does",
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m elastic_edu bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add = p.add_argument
    add("--models", nargs="+", default=["sasrec-naive", "sasrec-sdpa", "elastic", "lda"])
    add("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    add("--k", type=int, nargs="+", default=[16, 32, 64], help="experts k (elastic: one per k)")
    add("--modes", nargs="+", choices=["inference", "train"], default=["inference", "train"])
    add("--batch", type=int, default=4)
    add("--device", default="auto", help="auto (cuda > mps > cpu), cpu, cuda")
    add("--dtype", choices=["float32", "bfloat16"], default="float32", help="bfloat16: autocast")
    add("--dim", type=int, default=64)
    add("--layers", type=int, default=2)
    add("--heads", type=int, default=2)
    add("--num-items", type=int, default=1000, help="small, so that scoring does not dominate")
    add("--repeats", type=int, default=5)
    add("--warmup", type=int, default=None, help="default: 1 on CPU, 3 on GPU")
    add("--timeout", type=float, default=120.0, help="seconds per point")
    add("--mem-limit", type=float, default=None, help="GiB per CPU point (80%% of MemAvailable)")
    add("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add("--seed", type=int, default=0)
    add("--out", default=None, help="write the JSON here (rewritten after every point)")
    return p


def make_settings(argv: list[str] | None = None) -> dict:
    """The settings dict `run_bench` takes, from command-line style arguments."""
    return settings_from_args(build_parser().parse_args(argv))


def settings_from_args(a: argparse.Namespace) -> dict:
    """The settings dict `run_bench` takes, from parsed arguments."""
    device, lengths = choose_device(a.device), sorted(set(a.lengths))
    mem = a.mem_limit * 1024 if a.mem_limit else (_mem_available_mb() or 0) * 0.8
    return {"models": a.models, "lengths": lengths, "ks": a.k, "modes": a.modes,
            "batch": a.batch, "device": str(device), "dtype": a.dtype, "dim": a.dim,
            "layers": a.layers, "heads": a.heads, "num_items": a.num_items,
            "max_len": max(lengths), "repeats": a.repeats, "warmup": a.warmup
            if a.warmup is not None else (3 if device.type == "cuda" else 1),
            "timeout": a.timeout, "seed": a.seed, "threads": a.threads or torch.get_num_threads(),
            "mem_limit_mb": round(mem) if device.type == "cpu" else None, "out": a.out,
            **METHOD}  # fmt: skip


def add_bench_parser(sub) -> None:
    """The ``bench`` sub-command of `elastic_edu.cli`."""
    p = sub.add_parser(
        "bench",
        parents=[build_parser()],
        add_help=False,
        help="latency and memory against sequence length",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=lambda a: run_settings(settings_from_args(a)))


def main(argv: list[str] | None = None) -> int:
    """``python -m elastic_edu bench ...``: measure, print progress and the summary table."""
    return run_settings(make_settings(argv))


def run_settings(s: dict) -> int:
    device = torch.device(s["device"])
    print(f"bench on {describe_device(device)} ({device}), torch {torch.__version__}, "
          f"batch {s['batch']}, {s['dtype']}, d={s['dim']}, {s['layers']} layers")  # fmt: skip
    bench = run_bench(s, out=s["out"], log=lambda line: print(line, flush=True))
    print("\n" + format_summary(summarise(bench)))
    if s["out"]:
        print(f"wrote {s['out']}")
    return 0


if __name__ == "__main__":  # `python -m elastic_edu.bench`: run the importable copy
    from elastic_edu.bench import main as _main

    sys.exit(_main())
