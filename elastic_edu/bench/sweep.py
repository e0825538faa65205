r"""Latency, peak memory and FLOPs against history length N: ELASTIC versus SASRec.

**paper** (arXiv 2408.09380): self-attention costs O(N^2) time and memory; ELASTIC's linear
dispatcher attention over k interest experts is linear in N, with up to 90% less GPU memory and
2.7x faster inference than the quadratic baseline on long sequences.

    python -m elastic_edu bench --models sasrec-naive sasrec-sdpa elastic lda-k32 \
        --lengths 2048 8192 --batch 4 --device cpu --out bench.json
    python -m elastic_edu bench --models elastic-causal --modes stream --lengths 512 8192

**our decisions** (also in the JSON's ``settings``): labels and options are described in
`elastic_edu.bench.config`, workloads in `elastic_edu.bench.point`; every point builds its
model for its own N and measures with `elastic_edu.bench.profile` (median latency after warm-up,
peak tensor memory) and counts FLOPs with `elastic_edu.bench.flops` on the meta device, so points
out of memory or time still get their cost (a count that takes longer than --timeout is skipped:
``flops_source`` says so).
On CPU each point runs in a fresh process (forkserver) under an address-space cap; on GPU in
this process. A point out of memory or time is recorded as ``oom``/``timeout`` and larger N of
that model and mode are skipped with the same status; any other failure is recorded as
``error``, and the command then exits with status 1. --out is checked before anything is
measured; if it cannot be written at the end, the JSON is kept in the temporary folder and the
command exits with status 2, saying where.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import multiprocessing as mp
import platform
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

from elastic_edu.bench import profile
from elastic_edu.bench import report as bench_report
from elastic_edu.bench.config import BenchConfig, add_options
from elastic_edu.bench.flops import CountTimeout
from elastic_edu.bench.point import is_oom, point_flops, run_point
from elastic_edu.device import choose_device, describe_device
from elastic_edu.files import check_writable, write_json, write_or_keep
from elastic_edu.options import plain

START_METHOD = "forkserver"  # a fresh process per CPU point, without the parent's memory


def address_space_cap(extra_bytes: int) -> int:
    """The soft RLIMIT_AS for this process: its size now plus `extra_bytes`, but never above a
    limit already in force (``ulimit -v``), which an unprivileged process cannot raise."""
    now = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limits = [x for x in (soft, hard) if x != resource.RLIM_INFINITY]
    return min([now + extra_bytes, *limits])


def _measure(spec: dict) -> dict:
    """run_point, with an out-of-memory error as status ``oom`` and any other as ``error``."""
    try:
        return run_point(spec)
    except Exception as exc:  # noqa: BLE001 - the sweep records it and goes on
        if is_oom(exc):
            return {"status": "oom", "note": f"{type(exc).__name__}: {exc}"[:300]}
        return {"status": "error", "note": traceback.format_exc()[-3000:]}


def _child(conn, spec: dict) -> None:
    """Worker process: cap the address space, measure, send the result back."""
    limit = spec["config"].mem_limit_mb
    if limit:
        cap = address_space_cap(int(limit * 2**20))
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    conn.send(_measure(spec))
    conn.close()


def _run_isolated(ctx, spec: dict) -> dict:
    """Run `spec` in a fresh process; the parent enforces the timeout (kill -> timeout)."""
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, spec), daemon=True)
    proc.start()
    send.close()
    grace = 30 + (600 if spec["variant"].compile != "off" else 0)
    try:
        if receive.poll(spec["config"].timeout + grace):
            return receive.recv()
        return {"status": "timeout", "note": "killed at the time limit"}
    except EOFError:  # died without a word
        proc.join(5)
        if proc.exitcode == -signal.SIGKILL:
            return {"status": "oom", "note": "worker killed (SIGKILL): the kernel's OOM killer"}
        return {"status": "error", "note": f"worker died (exit code {proc.exitcode})"}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        receive.close()


def _run_in_process(spec: dict) -> dict:
    """GPU: measure in this process, then hand the memory back."""
    try:
        return _measure(spec)
    finally:
        if spec["variant"].compile != "off":
            torch._dynamo.reset()
        gc.collect()
        if spec["device"].startswith("cuda"):
            torch.cuda.empty_cache()


def run_bench(config: BenchConfig, out: str | None = None, log=print) -> dict:
    """Measure every (mode, n, variant) point of `config`; write `out` after each point.

    Variants are interleaved at each n, so the ratios at one n are measured close in time. On CPU
    each point runs in a forkserver process: a script calling this needs the usual
    ``if __name__ == "__main__":`` guard (the CLI, pytest and notebooks need nothing).
    """
    config = config.resolved()
    variants = config.variants()
    if out:
        check_writable(out, "--out")
    device = choose_device(config.device)
    bench = {
        "machine": {"hostname": platform.node(), "platform": platform.platform(),
                    "cpu_count": mp.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version()}, "device": str(device),
        "device_name": describe_device(device), "torch": torch.__version__,
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "settings": config.record(), "points": [],
    }  # fmt: skip
    if device.type == "cpu":  # what the achieved GFLOP/s are read against (bench.report)
        torch.set_num_threads(config.threads)
        bench["peak"] = {"matmul_gflops": profile.matmul_rate(device),
                         "matmul": "2048 x 2048 float32 product, median of 5, same threads",
                         "theoretical": profile.theoretical_peak(config.threads)}  # fmt: skip
    ctx = None
    if device.type == "cpu":
        ctx = mp.get_context(START_METHOD)
        if START_METHOD == "forkserver":  # torch._dynamo: 2 s in every fresh process otherwise
            ctx.set_forkserver_preload(["elastic_edu.bench", "torch._dynamo"])
    failed: dict[tuple[str, str], str] = {}
    total, done, unwritten = len(config.modes) * len(config.lengths) * len(variants), 0, False
    for mode in config.modes:
        for n in config.lengths:
            for v in variants:
                done += 1
                key, t0 = (v.label, mode), time.perf_counter()
                point = {"model": v.label, "n": n, "batch": config.batch, "mode": mode,
                         "k": v.num_experts, "compile": v.compile, "dtype": config.dtype,
                         "latency_ms": None, "peak_mb": None,
                         **_meta_flops(v, config, n, mode)}  # fmt: skip
                if key in failed:
                    point.update(status=failed[key].split()[0], note=f"skipped: {failed[key]}")
                else:
                    spec = {"config": config, "variant": v, "n": n, "mode": mode,
                            "device": str(device), "flops": point["flops"],
                            "flops_source": point["flops_source"]}  # fmt: skip
                    point.update(_run_isolated(ctx, spec) if ctx else _run_in_process(spec))
                    if point["status"] != "ok":
                        failed[key] = f"{point['status']} at n={n}"
                bench["points"].append(point)
                log(_progress_line(done, total, point, time.perf_counter() - t0))
                if out:
                    unwritten = _rewrite(out, bench, unwritten, log)
    return bench


def _meta_flops(v, config: BenchConfig, n: int, mode: str) -> dict:
    """The point's FLOPs counted on the meta device within --timeout: flops and flops_source
    (``meta``; flops None when meta cannot run the model, which run_point then counts on the
    device), or ``skipped`` with a note past the time limit."""
    try:
        return {"flops": point_flops(v, config, n, mode, time.perf_counter() + config.timeout),
                "flops_source": "meta"}  # fmt: skip
    except CountTimeout:
        note = f"counting on meta took longer than --timeout ({config.timeout:g} s)"
        return {"flops": None, "flops_source": "skipped", "flops_note": note}


def _rewrite(out, bench: dict, unwritten: bool, log) -> bool:
    """Rewrite `out` after a point; a failed write is said once and measuring goes on (the
    final write keeps the JSON elsewhere if it fails again). Whether this write failed."""
    try:
        write_json(out, bench)
        return False
    except OSError as err:
        if not unwritten:
            log(f"warning: --out {out} could not be written ({err.strerror or err}); measuring "
                "goes on and tries again at the end")  # fmt: skip
        return True


def _progress_line(done: int, total: int, p: dict, seconds: float) -> str:
    if p["status"] != "ok":
        what = f"{p['status']} ({p.get('note', '').strip().splitlines()[-1][:200]})"
    else:
        mb = "-" if p["peak_mb"] is None else f"{p['peak_mb']:.1f}"
        what = f"{p['latency_ms']:10.3f} ms {mb:>10} MB"
        if p.get("reencode_ms") is not None:
            what += f"  re-encode {p['reencode_ms']:.2f} ms"
    flops = f"{p['flops']:.3g}" if p["flops"] else "?"
    return (f"[{done}/{total}] {p['model']:<20} {p['mode']:<9} n={p['n']:<7} {what} "
            f"{flops} FLOP ({seconds:.1f} s)")  # fmt: skip


def add_bench_parser(sub) -> None:
    """The ``bench`` sub-command of `elastic_edu.cli`."""
    p = sub.add_parser("bench", help="latency, memory and FLOPs against sequence length",
                       description=plain(__doc__),
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_options(p)
    p.set_defaults(func=lambda args: run_command(BenchConfig.from_args(args)))


def run_command(config: BenchConfig) -> int:
    """Measure, print progress and the summary; 1 when a point failed for another reason than
    memory or time."""
    device = torch.device(config.device)
    print(f"bench on {describe_device(device)} ({device}), torch {torch.__version__}, batch "
          f"{config.batch}, {config.dtype}, d={config.dim}, {config.layers} layers")  # fmt: skip
    bench = run_bench(config, out=config.out, log=lambda line: print(line, flush=True))
    print("\n" + bench_report.format_summary(bench_report.summarise(bench)))
    if bench.get("peak"):
        print("\n" + bench_report.format_efficiency(bench, at=config.lengths[-1:]))
    if any(p["mode"] == "stream" for p in bench["points"]):
        print("\n" + bench_report.format_stream(bench))
    errors = [p for p in bench["points"] if p["status"] == "error"]
    for p in errors:
        print(f"error: {p['model']} {p['mode']} n={p['n']}: {p['note']}", file=sys.stderr)
    if config.out:
        where, error = write_or_keep(lambda p: write_json(p, bench), config.out, "--out")
        if error is None:
            print(f"wrote {where}")
        else:
            if where is None:
                print(json.dumps(bench, default=str))
                error += "; the bench JSON is printed on stdout"
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 1 if errors else 0
