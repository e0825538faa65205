"""The cost bench: latency, peak memory and FLOPs against history length N.

sweep.py    run_bench(): every (mode, N, model) point, each in a fresh process on a CPU
config.py   BenchConfig: the options and their bounds; the labels and the model each builds;
            what the JSON records of the method
point.py    one point: its model built for its N, the workloads, the timed training step
report.py   reading bench JSON: log-log slopes, ratios, crossovers, the printed tables
profile.py  the one timer, the peak-memory meter, memory estimates and limits
flops.py    PyTorch's FLOP count of one call on the meta device
"""

from elastic_edu.bench.config import BenchConfig
from elastic_edu.bench.sweep import add_bench_parser, run_bench, run_command

__all__ = ["BenchConfig", "add_bench_parser", "run_bench", "run_command"]
