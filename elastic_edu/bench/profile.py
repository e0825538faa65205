"""Measuring cost: the one timer, the one peak-memory meter, and memory estimates.

- `time_runs(fn, repeats, warmup, device)`: milliseconds per call of ``fn()``, the median after
  warm-up runs; CUDA events on a GPU (what the kernels take), ``perf_counter`` elsewhere.
- `peak_memory(fn, device)`: the peak bytes of tensors one call allocates beyond those alive
  before it; ``torch.cuda.max_memory_allocated`` on a GPU, `PeakMemory` (a dispatch mode that
  follows every tensor an op creates until it is freed) elsewhere. Both count tensors, not the
  process: a long-lived notebook kernel or the allocator's caches do not enter.
- `estimate_memory` / `check_memory`: before training, what one run will hold (every tensor of
  the model, counted on the meta device, and its activations by formula), against the tightest
  of `memory_limits` (free GPU memory; MemAvailable, the cgroup's limit and ``ulimit -v``).

FLOPs are counted in `elastic_edu.bench.flops`. The bench (`elastic_edu.bench.sweep`), the
complexity widget and the scripts measure with these functions only.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.device import choose_device
from elastic_edu.models.base import FLOAT


@dataclass
class Timing:
    """runs_ms: milliseconds of each timed call (warm-up excluded); complete: every repeat ran
    (False when `time_runs` stopped at its budget); projected_s: the seconds all warm-up and
    timed calls would take, projected from the calls so far."""

    runs_ms: list[float]
    complete: bool
    projected_s: float

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.runs_ms) if self.runs_ms else None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_runs(
    fn: Callable[[], object],
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    budget_s: float = math.inf,
    min_runs: int = 0,
) -> Timing:
    """Call ``fn()`` warmup + repeats times and time each call in milliseconds.

    CUDA: a pair of events around the call, read after the second completes (the GPU's time,
    launch gaps included); MPS and CPU: ``perf_counter`` around the call, synchronised on MPS.
    After each call the total is projected (time so far + this call x calls left); once it
    exceeds `budget_s` and at least `min_runs` calls were timed, it stops (complete=False).
    """
    device = torch.device(device)
    _synchronize(device)
    start, runs, total = time.perf_counter(), [], warmup + repeats
    for i in range(total):
        if device.type == "cuda":
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            fn()
            t1.record()
            t1.synchronize()
            ms = t0.elapsed_time(t1)
        else:
            t = time.perf_counter()
            fn()
            _synchronize(device)
            ms = 1e3 * (time.perf_counter() - t)
        if i >= warmup:
            runs.append(ms)
        projected = time.perf_counter() - start + ms / 1e3 * (total - i - 1)
        if projected > budget_s and len(runs) >= min_runs and i < total - 1:
            return Timing(runs, complete=False, projected_s=projected)
    return Timing(runs, complete=True, projected_s=time.perf_counter() - start)


def matmul_rate(device: torch.device | str = "cpu", size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a square float32 matrix product (size^3 multiply-adds) on `device` with the
    threads torch uses now: the practical peak a bench's achieved rate is read against."""
    device = torch.device(device)
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    timing = time_runs(lambda: a @ b, repeats=repeats, warmup=2, device=device)
    return 2 * size**3 / (timing.median_ms / 1e3) / 1e9


def theoretical_peak(threads: int) -> dict | None:
    """The fp32 peak of this CPU by formula, for x86 CPUs with AVX2 and FMA and no AVX-512:
    2 FMA units x 8 float32 lanes x 2 FLOPs per cycle x the clock `/proc/cpuinfo` reports, times
    `threads` cores. None where that formula does not apply (other vectors, no /proc/cpuinfo)."""
    with suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        flags = next((ln.split(":")[1].split() for ln in info.splitlines()
                      if ln.startswith("flags")), [])  # fmt: skip
        mhz = [float(ln.split(":")[1]) for ln in info.splitlines() if ln.startswith("cpu MHz")]
        if {"avx2", "fma"} <= set(flags) and "avx512f" not in flags and mhz:
            ghz = max(mhz) / 1e3
            return {"gflops": threads * 32 * ghz, "ghz": ghz, "cores": threads,
                    "formula": "cores x 2 FMA units x 8 float32 lanes x 2 FLOPs x GHz"}  # fmt: skip
    return None


class PeakMemory(TorchDispatchMode):
    """Peak bytes of the tensors allocated inside the ``with`` block (inputs and weights excluded).

    Every op's new output storage is counted when created and uncounted when freed (a weakref
    finalizer on the storage), so `peak` is the high-water mark of live intermediate tensors.
    It sees the ops of eager PyTorch, backward included, not the buffers a fused kernel or a
    compiled graph allocates inside itself. Under ``inference_mode`` with autocast, a composite
    op such as einsum reaches it without autocast's casts (PyTorch 2.13): use ``no_grad`` there.
    """

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._alive: dict[int, weakref.finalize] = {}

    def _free(self, ptr: int, nbytes: int) -> None:
        self._alive.pop(ptr, None)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}  # fmt: skip
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or ptr in inputs or ptr in self._alive:
                continue  # a view of an input, or a storage already counted
            self._alive[ptr] = weakref.finalize(storage, self._free, ptr, nbytes)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
        return out


def peak_memory(fn: Callable[[], object], device: torch.device | str = "cpu") -> int:
    """Peak bytes that one call ``fn()`` holds in tensors beyond those alive before it.

    CUDA: ``max_memory_allocated`` minus ``memory_allocated`` before the call (fused kernels'
    workspaces included); elsewhere `PeakMemory` (eager ops only: call it on uncompiled code).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with PeakMemory() as mem:
        fn()
    return mem.peak


def estimate_memory(mc: ModelConfig, tc: TrainConfig) -> dict[str, float]:
    """Bytes one training run needs, by part: the parameters and buffers outside the interest
    memory; those of the memory (its query network, keys and value table) with its retrieval's
    activations; the activations of one batch elsewhere. Parameters count x4 (gradients, AdamW's
    two moments). Every tensor of the model is counted exactly, on a copy built on the meta
    device (nothing allocated); activations are the model's own rough formula
    (`activation_bytes`, within a small factor)."""
    from elastic_edu.models import build_model

    with torch.device("meta"):
        model = build_model(mc)
    memory = model.memory if model.has_memory else None
    in_memory = {id(p) for p in memory.parameters()} if memory is not None else set()
    tensors = [*model.parameters(), *model.buffers()]
    table = sum(t.numel() for t in tensors if id(t) in in_memory)
    dense = sum(t.numel() for t in tensors) - table
    targets = model.window if tc.objective in ("all", "cloze") else 1
    retrieval = memory.retrieval_numbers(tc.batch_size) if memory is not None else 0
    return {"parameters": 4 * dense * FLOAT, "interest memory": (4 * table + retrieval) * FLOAT,
            "activations": model.activation_bytes(tc.batch_size, targets)}  # fmt: skip


def available_memory(device: torch.device) -> float | None:
    """Free bytes on `device`: the least of `memory_limits` (None when none can be read)."""
    limits = memory_limits(device)
    return min(limits.values()) if limits else None


def memory_limits(device: torch.device, root: Path = Path("/")) -> dict[str, float]:
    """Free bytes under each limit that applies to `device`, by what limits it: the GPU's free
    memory; elsewhere MemAvailable, the cgroup's limit (memory.max, or cgroup v1's
    memory.limit_in_bytes) less what the cgroup uses, and RLIMIT_AS (``ulimit -v``) less this
    process's address space. `root` stands for ``/`` (tests give a folder of fake files)."""
    if device.type == "cuda":
        return {"GPU free memory": float(torch.cuda.mem_get_info(device)[0])}
    out = {}
    with suppress(OSError, ValueError, IndexError):
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                out["MemAvailable"] = float(line.split()[1]) * 1024
    out.update(_cgroup_free(root))
    with suppress(OSError, ValueError, IndexError):
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            pages = int((root / "proc/self/statm").read_text().split()[0])
            out["RLIMIT_AS (ulimit -v)"] = float(max(0, soft - pages * resource.getpagesize()))
    return out


CGROUP_FILES = {  # version: (folder under /sys/fs/cgroup, limit, usage, inactive cache in stat)
    "v2": ("", "memory.max", "memory.current", "inactive_file"),
    "v1": ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def _cgroup_free(root: Path) -> dict[str, float]:
    """{"cgroup <limit file>": bytes left} for this process's memory cgroup, if it has a limit:
    the limit less the usage, the usage without the inactive file cache (which the kernel
    reclaims first). A namespaced cgroup's own path may not exist: then its mount's root."""
    out = {}
    with suppress(OSError):
        for line in (root / "proc/self/cgroup").read_text().splitlines():
            _, controllers, where = line.split(":", 2)
            version = (
                "v2" if not controllers else "v1" if "memory" in controllers.split(",") else ""
            )
            if not version:
                continue
            sub, limit_file, usage_file, inactive = CGROUP_FILES[version]
            base = root / "sys/fs/cgroup" / sub
            for folder in (base / where.lstrip("/"), base):
                with suppress(OSError, ValueError):
                    limit = (folder / limit_file).read_text().strip()
                    if limit == "max" or int(limit) >= 2**60:  # no limit
                        break
                    usage = int((folder / usage_file).read_text())
                    stat = dict(row.split() for row in (folder / "memory.stat").read_text()
                                .splitlines() if len(row.split()) == 2)  # fmt: skip
                    usage -= int(stat.get(inactive, 0))
                    out[f"cgroup {limit_file}"] = float(max(0, int(limit) - usage))
                    break
    return out


def check_memory(mc: ModelConfig, tc: TrainConfig, fraction: float = 0.9) -> dict[str, float]:
    """Raise ValueError before training when the estimate exceeds `fraction` of free memory
    (the tightest of `memory_limits`, named in the message)."""
    parts = estimate_memory(mc, tc)
    limits = memory_limits(choose_device(tc.device))
    need = sum(parts.values())
    if not limits:
        return parts
    limit = min(limits, key=limits.get)
    free = max(limits[limit], 0.0)
    if need > fraction * free:
        biggest = max(parts, key=parts.get)
        advice = {"parameters": "--max-len, --dim or the catalogue (--kcore)",
                  "interest memory": "--subkeys (M = subkeys**2 value rows) or --key-dim",
                  "activations": "--batch-size, --max-len or --num-experts"}[biggest]  # fmt: skip
        detail = ", ".join(f"{k} {v / 2**30:.1f} GiB" for k, v in parts.items())
        raise ValueError(
            f"this run needs about {need / 2**30:.1f} GiB ({detail}) but {free / 2**30:.1f} "
            f"GiB is free ({limit}): lower {advice}"
        )
    return parts
