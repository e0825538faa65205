# %% [markdown]
# # 11 · Deep dive: costs on a GPU, compile and threads, and the paper's claims
#
# *Deep dive, off the core path. Reading time about 11 minutes (`scripts/reading_time.py`); runs
# in about a minute on a CPU in quick mode (committed files, then a small live benchmark), no GPU
# needed.*
#
# Notebook 06 measured the recommended ELASTIC (`elastic-causal`) against SASRec on one CPU file.
# This deep dive reads every other committed benchmark file: the GPU files, `torch.compile`, one
# thread against two, the non-causal form, the streaming cost, and then sets the paper's two
# figures, **up to 90% less GPU memory and 2.7× faster inference** (**paper**, arXiv 2408.09380),
# against what each file measures.

# %% [markdown]
# ## Parameters

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # nothing here trains or measures: quick mode changes nothing
SEED = 0
CPU = "bench-cpu-amd-epyc.json"  # notebook 06's file: causal and non-causal ELASTIC, SASRec
GPU = ["bench-nvidia-h200-fp32.json", "bench-nvidia-h200-bf16.json"]
COMPILE, ONE_THREAD = "bench-cpu-amd-epyc-compile.json", "bench-cpu-amd-epyc-1thread.json"
STREAM = "bench-cpu-amd-epyc-stream.json"
setup = setup_notebook(SEED)

# %%
from elastic_edu import viz
from elastic_edu.bench import report
from elastic_edu.paths import repo_root

files = {name: report.load_results(repo_root() / "results" / name)
         for name in [CPU, *GPU, COMPILE, ONE_THREAD, STREAM]}  # fmt: skip

# %% [markdown]
# ## 1. The GPU files: what they are
#
# `bench-nvidia-h200-fp32.json` and `-bf16.json` were made on an NVIDIA H200 at commit `7dc3014`
# by a plain `python -m elastic_edu bench` command (which the first version of
# `scripts/gpu_checks.sh` ran) with the bench's small sizes: **d = 64, 2
# layers, batch 4**, N = 128 .. 16,384, 10 repeats after 3 warm-ups. They were **not** made by
# today's `scripts/gpu_checks.sh`, which runs production widths (d = 256 and 512, batch 32) and has
# not run yet: no GPU was lent since. And they predate the causal form: their `elastic-k16/32/64`
# measured **ELASTIC-bidir (non-causal)**, their `lda-k32` the non-causal LDA-only. Their stored
# `settings` say so (printed below with the command that reproduces them at `7dc3014`); GPU
# memory is `torch.cuda.max_memory_allocated` beyond what was allocated before the runs.

# %%
for name in GPU:
    print(report.describe(files[name], name), end="\n\n")

# %% [markdown]
# Inference latency and memory of the fp32 file (the bf16 file, under autocast, draws alike:
# `viz.complexity_figure(files[GPU[1]], ...)`):

# %%
viz.complexity_figure(files[GPU[0]], "latency_ms", "inference")

# %%
viz.complexity_figure(files[GPU[0]], "peak_mb", "inference")

# %%
for name in GPU:
    print(f"== {name}\n{report.format_summary(report.summarise(files[name]))}\n")

# %% [markdown]
# On the GPU at d = 64 ELASTIC-bidir's (non-causal) latency is almost flat (slope well below 1): the
# card is nowhere near busy at these sizes, so fixed launch costs dominate. In fp32 fused SASRec
# (SDPA) is faster than ELASTIC up to N = 4,096 and slower at 8,192; in bf16 it stays faster
# (section 5). ELASTIC's memory is about 92% of fused SASRec's: flash attention stores no N × N
# matrix either. Against naive attention, ELASTIC's memory falls to a few percent. None of this measures `elastic-causal` on a GPU: that needs
# `bash scripts/gpu_checks.sh`.
#
# ## 2. The non-causal form on the CPU
#
# Notebook 06's file also measured `elastic-bidir-k32`, **ELASTIC-bidir (non-causal)**: its
# experts read the whole history at once, cheaper per item than the causal form's running sums,
# but it cannot train on every position nor stream (notebook 02).

# %%
bidir = report.subset(files[CPU], ["sasrec-sdpa", "elastic-causal-k32", "elastic-bidir-k32"])
print(report.format_summary(report.summarise(bidir, slope_from=4096, ratio_at=(8192, 32768))))

# %% [markdown]
# At N = 32,768 the non-causal form is faster than the causal one but holds more memory: 71.5% of
# fused SASRec's, against 37.0% for the causal form (k = 32 both).

# %% [markdown]
# ## 3. `torch.compile` and one thread
#
# `bench-cpu-amd-epyc-compile.json` times the causal ELASTIC (k = 32) eager and compiled
# (`+compile`, compiled before the clock starts; the bench reads no memory for compiled CPU runs)
# beside fused SASRec at N = 8,192 and 16,384. `bench-cpu-amd-epyc-1thread.json` repeats three
# models at N = 8,192 with one torch thread instead of two.

# %%
for name in (COMPILE, ONE_THREAD):
    print(report.describe(files[name], name))
    print(report.format_crossovers(files[name], at=tuple(files[name]["settings"]["lengths"])), "\n")

# %% [markdown]
# Compiling the causal ELASTIC makes it 1.21× faster at N = 8,192 and 1.61× at 16,384 on this
# CPU. With one thread instead of two, its inference speed-up over fused SASRec at N = 8,192 barely
# moves (3.17× against 3.2× in section 2), while its training speed-up grows (4.24× against 2.9×):
# the ratios are not independent of the thread count, so compare files made with the same.
#
# ## 4. Streaming: one new event at a time
#
# A causal ELASTIC carries its state from event to event (`model.start`, `model.step`), so one
# new event costs the same however long the history is. `bench-cpu-amd-epyc-stream.json` (one
# thread) times it after N events, on a fresh stream, and re-encoding the whole history:

# %%
print(report.format_stream(files[STREAM]))

# %% [markdown]
# ## 5. The paper's claims against every file
#
# For each ELASTIC against each SASRec, at the longest N where both finished (inference, the
# paper's setting): memory saved and speed-up, and whether each reaches the paper's figure. Where
# SASRec failed at a longer N and ELASTIC ran, the line says so: there the saving is running
# against not running.

# %%
for name in [CPU, *GPU, COMPILE]:
    print(f"== {name} ({files[name]['device_name']}, d={files[name]['settings']['dim']})")
    print(report.format_claims(files[name]), end="\n\n")

# %% [markdown]
# **Where our measurement falls short, plainly.**
#
# * The paper's figures are about GPU memory and GPU inference. Our only GPU files measured the
#   ELASTIC-bidir (non-causal) at d = 64: the recommended `elastic-causal` has **no GPU measurement**
#   yet, and no file at the paper's (unknown) model sizes.
# * Against naive attention every file clears both figures at long N. Against fused attention
#   (SDPA), the fair modern baseline, the GPU files show ELASTIC-bidir saving 8% (fp32) or 7% (bf16)
#   of the memory, not 90%, and running 2.67× to 2.75× faster in fp32 (k = 16 to 64: around the
#   paper's 2.7×) but 1.6× to 1.7× slower in bf16. On the CPU the
#   causal ELASTIC (k = 8) saves 65.9% of the memory and runs 9.05× faster at N = 32,768: the
#   speed clears the paper's figure, the memory does not.
# * Training memory is not smaller than fused SASRec's (notebook 06).
# * The paper's hardware, sizes and baseline implementation are not known to us: these lines say
#   what *this* implementation does on *these* machines, not whether the paper's numbers hold.

# %% [markdown]
# ## 6. Measure it yourself
#
# The same benchmark, small enough for a notebook: `bench.run_bench` takes the arguments of
# `python -m elastic_edu bench`. On a CPU each point runs in a fresh process (its peak memory is
# its own). Timings depend on the machine and on whatever else it is doing: a demonstration of the
# tool, not a measurement to quote.

# %%
from elastic_edu import bench

LIVE_LENGTHS = [256, 512, 1024] if QUICK else [256, 1024, 4096]
live = bench.run_bench(bench.BenchConfig.from_argv([
    "--models", "sasrec-sdpa", "elastic-causal", "--k", "8", "--modes", "inference",
    "--lengths", *map(str, LIVE_LENGTHS), "--batch", "2", "--repeats", "3", "--threads", "1",
    "--device", str(setup.device), "--timeout", "60", "--seed", str(SEED),
]))  # fmt: skip
print(report.format_crossovers(live, at=(LIVE_LENGTHS[-1],)))

# %% [markdown]
# **Exercise.** From `live["points"]` (keys `model`, `n`, `mode`, `status`, `latency_ms`), find the
# smallest measured N from which `elastic-causal-k8` is faster than `sasrec-sdpa` at that N and
# every longer one (0 if none).

# %%
from elastic_edu.tutorial import check

crossover_n = None  # your answer
expected = report.crossover(live, "elastic-causal-k8", "sasrec-sdpa", "inference")["from_n"]
ok = check("crossover N", crossover_n, expected or 0, hint="compare latency_ms at each n")

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# lat = {(p["model"], p["n"]): p["latency_ms"] for p in live["points"] if p["status"] == "ok"}
# faster = [lat[("elastic-causal-k8", n)] < lat[("sasrec-sdpa", n)] for n in LIVE_LENGTHS]
# crossover_n = next((n for i, n in enumerate(LIVE_LENGTHS) if all(faster[i:])), 0)
# ```
# </details>
#
# ## Summary
#
# * The GPU files are small-model (d = 64, batch 4) measurements of the non-causal form from
#   commit `7dc3014`; `scripts/gpu_checks.sh` (d = 256/512) has not run.
# * `torch.compile` and the thread count change the constants, not the scaling.
# * A stream's per-event cost stays flat as the history grows.
# * The paper's 90% / 2.7× are reached against naive attention; against fused attention they are
#   not, on the files we have.
