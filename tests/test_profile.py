"""The one timer and the one peak-memory meter (elastic_edu.profile)."""

from __future__ import annotations

import time

import pytest
import torch

from elastic_edu import profile


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
