"""The one timer and the one peak-memory meter (elastic_edu.bench.profile)."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest
import torch

from elastic_edu.bench import profile
from elastic_edu.config import TrainConfig


def test_time_runs_times_repeats_after_warmup():
    calls = []

    def fn():
        calls.append(time.perf_counter())
        time.sleep(0.002 * len(calls))  # 2, 4, 6, 8 ms

    timing = profile.time_runs(fn, repeats=3, warmup=1)
    assert len(calls) == 4 and timing.complete and len(timing.runs_ms) == 3
    assert all(ms >= s for ms, s in zip(timing.runs_ms, (4, 6, 8)))  # the warm-up is left out
    assert timing.median_ms == sorted(timing.runs_ms)[1]


def test_time_runs_stops_at_its_budget():
    fn = lambda: time.sleep(0.03)
    timing = profile.time_runs(fn, repeats=100, warmup=1, budget_s=0.1)
    assert not timing.complete and timing.projected_s > 0.1
    assert timing.runs_ms == [] and timing.median_ms is None  # stopped after the warm-up
    timing = profile.time_runs(fn, repeats=100, warmup=1, budget_s=0.1, min_runs=2)
    assert not timing.complete and len(timing.runs_ms) == 2


def test_peak_memory_counts_live_intermediate_tensors():
    weights = torch.ones(1000)
    with profile.PeakMemory() as mem:
        a = weights * 2  # 4000 bytes
        b = a + 1  # 8000 live
        view = b[:10]  # a view allocates nothing
        del a
        c = b * 3  # 8000 live again (a freed)
        del b, view, c
    assert mem.peak == 8000 and mem.live == 0


@pytest.mark.parametrize("n", [256, 1024])
def test_peak_memory_of_a_call(n):
    x = torch.randn(n, 64)

    def scores():
        sim = x @ x.T  # n x n floats, the quadratic part
        return sim.softmax(-1).sum()

    assert profile.peak_memory(scores) >= 2 * 4 * n * n  # sim and its softmax, both alive
    assert profile.peak_memory(scores) < 3 * 4 * n * n + 4096


# ---- the memory preflight (issue 22, cases 6 and 7) --------------------------------------------
def test_the_estimate_counts_every_tensor_of_the_memory(tiny_config):
    """Case 6: the memory's keys and query network were left out, so a huge --key-dim passed."""
    from elastic_edu.models import build_model

    tc = TrainConfig(batch_size=4)
    mc = tiny_config("elastic-causal")
    model = build_model(mc)
    memory = sum(p.numel() for p in model.memory.parameters())  # query, norm, keys, values
    dense = sum(p.numel() for p in model.parameters()) - memory
    parts = profile.estimate_memory(mc, tc)
    assert parts["parameters"] == 4 * 4 * dense
    assert 4 * 4 * memory < parts["interest memory"] < 4 * 4 * memory + 4 * 4 * 1000
    wide = profile.estimate_memory(tiny_config("elastic-causal", key_dim=10**8), tc)
    assert wide["interest memory"] > 4 * 4 * 10**8 * (mc.dim + mc.memory.subkeys)


def _fake_root(tmp_path, cgroup: str, files: dict[str, str]) -> Path:
    """A folder standing for / with /proc/meminfo, /proc/self/cgroup and cgroup files."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/meminfo").write_text("MemTotal: 9999 kB\nMemAvailable: 8388608 kB\n")
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    (tmp_path / "proc/self/statm").write_text("262144 1000 0 0 0 0 0\n")  # 1 GiB of 4 KiB pages
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


GIB = 2**30


@pytest.mark.parametrize(
    "cgroup, files, expected",
    [
        ("0::/user.slice/job\n", {"sys/fs/cgroup/user.slice/job/memory.max": f"{2 * GIB}\n",
                                  "sys/fs/cgroup/user.slice/job/memory.current": f"{GIB}\n",
                                  "sys/fs/cgroup/user.slice/job/memory.stat":
                                  f"anon 1\ninactive_file {GIB // 2}\n"},
         {"cgroup memory.max": 1.5 * GIB}),  # cgroup v2: limit less usage, cache reclaimable
        ("0::/\n", {"sys/fs/cgroup/memory.max": "max\n"}, {}),  # no limit
        ("4:memory:/process_api/abc\n0::/\n",  # v1, namespaced: the mount's root holds it
         {"sys/fs/cgroup/memory/memory.limit_in_bytes": f"{3 * GIB}\n",
          "sys/fs/cgroup/memory/memory.usage_in_bytes": f"{GIB}\n",
          "sys/fs/cgroup/memory/memory.stat": "total_inactive_file 0\n"},
         {"cgroup memory.limit_in_bytes": 2.0 * GIB}),
        ("4:memory:/\n", {"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
                          "sys/fs/cgroup/memory/memory.usage_in_bytes": "1\n"}, {}),  # none
    ],
)  # fmt: skip
def test_memory_limits_read_the_cgroup(cgroup, files, expected, tmp_path, monkeypatch):
    """Case 7: under a cgroup limit the preflight read only MemAvailable, passed, then failed."""
    monkeypatch.setattr(resource, "getrlimit", lambda which: (-1, -1))  # RLIM_INFINITY
    limits = profile.memory_limits(torch.device("cpu"), _fake_root(tmp_path, cgroup, files))
    assert limits == {"MemAvailable": 8.0 * GIB, **expected}


def test_memory_limits_read_ulimit_v_and_the_preflight_names_the_tightest(tmp_path, monkeypatch,
                                                                          tiny_config):  # fmt: skip
    root = _fake_root(tmp_path, "0::/\n", {})
    monkeypatch.setattr(resource, "getrlimit", lambda which: (3 * GIB, resource.RLIM_INFINITY))
    limits = profile.memory_limits(torch.device("cpu"), root)
    assert limits == {"MemAvailable": 8.0 * GIB, "RLIMIT_AS (ulimit -v)": 2.0 * GIB}  # 3 - 1 GiB
    monkeypatch.setattr(profile, "memory_limits", lambda device: limits)
    mc, tc = tiny_config("elastic-causal", subkeys=4096), TrainConfig(device="cpu")  # 4 GiB
    says = r"but 2\.0 GiB is free \(RLIMIT_AS \(ulimit -v\)\): lower --subkeys \(M = subkeys"
    with pytest.raises(ValueError, match=says):
        profile.check_memory(mc, tc)
    assert profile.available_memory(torch.device("cpu")) == 2.0 * GIB
