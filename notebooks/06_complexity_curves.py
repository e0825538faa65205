# %% [markdown]
# # 06 · Costs: what a long history costs the recommended ELASTIC
#
# *Reading time about 12 minutes (`scripts/reading_time.py`); runs in under a minute on a CPU in
# quick mode, no GPU needed (it reads a committed benchmark file).*
#
# ELASTIC exists to make long histories affordable. Here we check that on the model
# `python -m elastic_edu train --model elastic` trains, **`elastic-causal`** (the chunkwise-parallel
# causal dispatcher of notebook 04), against SASRec: FLOPs by formula, then latency and peak
# memory measured against the history length N.
#
# **Learning goals.** After this notebook you can (1) write one layer's FLOPs as a formula in N
# and check it with PyTorch's counter; (2) read a log-log curve (slope 1 linear, 2 quadratic);
# (3) say from a benchmark file how much time and memory ELASTIC saves against SASRec with naive
# and with fused attention, and from which N.
#
# **Paper or ours?** The paper (arXiv 2408.09380, abstract only) claims linear cost in N, up to
# 90% less GPU memory and 2.7× faster inference (**paper**). The causal form, the sizes and the
# benchmark's method are **ours** (`docs/DESIGN.md`). The GPU files, the `torch.compile` and
# one-thread variants and the paper's claims file by file are in notebook 11.

# %% [markdown]
# ## Parameters

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode (ELASTIC_EDU_QUICK=1): nothing here trains or measures
SEED = 0
BENCH = "bench-cpu-amd-epyc.json"  # the committed CPU benchmark (results/README.md)
MODELS = ["sasrec-naive", "sasrec-sdpa", "elastic-causal-k8", "elastic-causal-k32"]
B, D, HEADS, E = 1, 64, 2, 8  # one layer's sizes for the FLOP check: batch, width, heads, experts
FLOP_LENGTHS = [512, 2048, 8192, 32768]
setup = setup_notebook(SEED)

# %%
import torch

from elastic_edu import viz
from elastic_edu.bench import report
from elastic_edu.bench.flops import count_flops
from elastic_edu.nn import CausalSelfAttention
from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention
from elastic_edu.nn.flops import causal_dispatcher_flops, self_attention_flops
from elastic_edu.paths import repo_root
from elastic_edu.tutorial import check

# %% [markdown]
# ## 1. FLOPs: formula and count
#
# Matrix products only, 2 FLOPs per multiply-add (what `FlopCounterMode` counts). One
# self-attention layer: four d × d projections, 8bnd², and the n × n scores and their read,
# 4bn²d. One causal dispatcher layer (`elastic_edu.nn.flops.causal_dispatcher_flops`, whose
# docstring derives every term): 10bnd² + 8bkd² + 2bkd(h + 1) of projections, 10bn'kd + 2bn'kh of
# scores and reads over the window rounded up to chunks (n'), 4bn'C(d + hk) for the masked
# products inside chunks of C ≤ 32 positions, and a small term for the carry between chunk
# groups. Quadratic against linear in n. We count both layers on the meta device (shapes only)
# and assert that formula and count agree:

# %%
# NBVAL_CHECK_OUTPUT
with torch.device("meta"):
    attention, dispatcher = CausalSelfAttention(D, HEADS), CausalDispatcherAttention(D, HEADS)
print(f"{'N':>6} {'self-attention':>16} {'causal dispatcher':>18} {'ratio':>6}")
for n in FLOP_LENGTHS:
    with torch.device("meta"):
        x, experts, pad = torch.randn(B, n, D), torch.randn(B, E, D), torch.zeros(B, n).bool()
    sa = count_flops(lambda x=x, pad=pad: attention(x, pad))
    cd = count_flops(lambda x=x, e=experts, pad=pad: dispatcher(x, e, pad))
    assert sa == self_attention_flops(B, n, D) and cd == causal_dispatcher_flops(B, n, E, D, HEADS)
    print(f"{n:>6} {sa:>16,} {cd:>18,} {sa / cd:>6.1f}")

# %% [markdown]
# FLOPs are not time: memory traffic and many small operations cost too. So we measure.
#
# ## 2. The measured curves
#
# `python -m elastic_edu bench` times whole models (2 layers, random item ids, no padding) at each
# N: inference under `no_grad`, and a training step (loss, backward, AdamW). Each CPU point runs in
# a fresh process; memory is the bytes of tensors allocated beyond those alive before the run.
# Labels: `sasrec-naive` forms the N × N attention matrix, `sasrec-sdpa` calls PyTorch's fused
# kernel with the causal flag (no N × N tensor), `elastic-causal-k8` is the recommended ELASTIC
# with k = 8 experts (the default), `-k32` the same with 32. The file's settings and command:

# %%
bench = report.load_results(repo_root() / "results" / BENCH)
print(report.describe(bench, BENCH))
core = report.subset(bench, MODELS)  # the file also has ELASTIC-bidir (non-causal): deep dive 11

# %% [markdown]
# Log-log figures: solid lines measured, each legend with its slope over N ≥ 2,048; dashed lines
# the model's FLOPs scaled to its first point; crosses are points that ran out of time or
# memory. Inference latency first, then peak memory:

# %%
viz.complexity_figure(core, "latency_ms", "inference")

# %%
viz.complexity_figure(core, "peak_mb", "inference")

# %% [markdown]
# And the training step's latency (its memory follows the same pattern; call
# `viz.complexity_figure(core, "peak_mb", "train")` to see it):

# %%
viz.complexity_figure(core, "latency_ms", "train")

# %% [markdown]
# ## 3. Slopes and ratios
#
# `report.summarise` fits the slopes over N ≥ 2,048 (as the legends do) and takes each ELASTIC's
# ratios to each SASRec (speed-up = SASRec's time / ELASTIC's; memory = ELASTIC's peak /
# SASRec's); `report.crossover` finds the N from which ELASTIC is faster at every longer N.

# %%
largest = max(bench["settings"]["lengths"])
summary = report.summarise(core, slope_from=2048, ratio_at=(8192, largest // 2, largest))
print(report.format_summary(summary))
for mode in ("inference", "train"):
    for base in ("sasrec-naive", "sasrec-sdpa"):
        c = report.crossover(core, "elastic-causal-k8", base, mode)
        print(report.format_crossover(c, at=(largest // 2, largest)))

# %% [markdown]
# What the file shows (AMD EPYC CPU, 2 threads, batch 4, d = 64, `results/bench-cpu-amd-epyc.json`):
#
# * **Slopes.** Naive SASRec grows about quadratically and stops: at N = 16,384 inference timed out
#   and training ran out of memory. Fused SASRec's time is still close to quadratic but its
#   memory is linear; its training step timed out at N = 32,768. ELASTIC's time is about linear
#   and its memory grows no faster (fixed costs still weigh at these N).
# * **Inference.** At the largest N, ELASTIC (k = 8) is about 9× faster than fused SASRec and
#   uses about a third of its memory (the `x@` and `mem@` columns).
# * **Training.** ELASTIC is several times faster from a few thousand items on, but its memory is
#   **not** smaller than fused SASRec's: both keep activations linear in N, and the training step
#   stores about as much for one as for the other. Against naive attention, the saving is large
#   wherever naive attention still runs.
# * **Short histories.** Fused SASRec is faster at N = 512 for inference and up to N = 1,024 for
#   training: ELASTIC's advantage is a long-history one (the crossover lines).
#
# These are CPU numbers for small models; a GPU changes the constants (deep dive 11).

# %% [markdown]
# ## Exercise
#
# **Exercise 1.** A curve with log-log slope s: doubling N multiplies the latency by how much?
# Give the factor for s = 1 and for s = 2.

# %%
ratio_slope_1 = None  # your answer
ratio_slope_2 = None  # your answer

check("slope 1", ratio_slope_1, 2.0, hint="latency ~ N**s, so the factor is 2**s")
ok = check("slope 2", ratio_slope_2, 4.0, hint="latency ~ N**s, so the factor is 2**s")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Latency ∝ N^s, so doubling N multiplies it by 2^s: 2 for s = 1, 4 for s = 2.
# </details>
#
# ## Summary
#
# * One self-attention layer costs 8bnd² + 4bn²d FLOPs; the causal dispatcher's cost is linear in
#   n (formula and count agree).
# * On this CPU the recommended ELASTIC's time and memory grow about linearly; at long N it is
#   much faster than SASRec at inference and uses less memory there; in training it is faster but
#   not leaner than fused attention.
# * Fixed costs dominate short histories, where fused attention is as fast.
#
# Next: notebook 07 looks inside a trained ELASTIC. Deep dives: 10 (what a long context buys) and
# 11 (GPU files, compile, threads, and the paper's claims file by file).
