# %% [markdown]
# # 05 · Complexity curves: what long histories cost
#
# ELASTIC exists to make long behaviour sequences affordable. This notebook checks that promise with
# numbers: floating-point operations by formula, then latency and peak memory measured by the
# library's benchmark against history length N, for ELASTIC and for SASRec with two attention
# back-ends, and finally what a causal model gains by carrying its state from one event to the next.
#
# **Learning goals.** After this notebook you can
#
# 1. write the FLOPs of one self-attention layer and of the two dispatcher layers (the paper's
#    non-causal reading and our causal form) as formulas in N, and check them with PyTorch's
#    `FlopCounterMode`;
# 2. read log-log complexity curves: a slope of 1 is linear, 2 quadratic, and fixed costs flatten
#    the curves at small N;
# 3. say where ELASTIC wins against naive attention (time and memory), where fused attention
#    (`scaled_dot_product_attention`, SDPA) narrows the gap or reverses it, and how the
#    measurements compare with the paper's claims;
# 4. read a benchmark file honestly: which model a label names, how its memory was measured;
# 5. measure the per-event latency of the causal ELASTIC against re-encoding the whole history,
#    and run a small benchmark yourself with `elastic_edu.bench.run_bench`.
#
# What a long context buys in accuracy, once it is cheap, is notebook 06.
#
# **Assumes.** What attention computes (softmax(QKᵀ/√d)V) and the idea of ELASTIC's dispatcher
# attention: k experts read the history, then every position reads the k experts (notebook 02).
# Notebook 01 measured SASRec's N × N score matrix; here whole models meet. No recommender
# knowledge is needed: the benchmark feeds random item ids.
#
# **Paper or our decision?** The paper (arXiv 2408.09380; only its abstract is at hand) states that
# self-attention's O(N²) time and memory limit sequence length, that ELASTIC's linear dispatcher
# attention is linear in N, and that ELASTIC uses **up to 90% less GPU memory and runs inference
# 2.7x faster** than the quadratic baseline on long sequences (**paper**). The layer equations, the
# causal form (`elastic-causal`, which `elastic` names), the model sizes, the benchmark's method
# (what is timed, how memory is read, which baselines) are **our decision** (`docs/DESIGN.md`); the
# paper's hardware, sizes and baseline implementation are not known to us, so its two figures are
# a reference point, not a target our numbers must hit.

# %% [markdown]
# ## Parameters
#
# Every knob and the seed; the cell ends with `setup_notebook(SEED)` (threads, seeds, device,
# figures: see notebook 00). Quick mode (`ELASTIC_EDU_QUICK=1`, what CI sets and what the saved
# outputs show) keeps the live benchmark of section 4 to three short lengths and inference only,
# and the live stream to three lengths (seconds on a 2-core CPU); without it the live run goes to
# N = 4096 and includes a training step. The measurements this notebook reports are the committed
# files of section 2, not the live run.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0

# FLOP formulas: one layer, sizes as the committed benchmark files use them
B, D, HEADS, E = 1, 64, 2, 32  # batch, width d, heads, experts k
FLOP_LENGTHS = [128, 512, 2048, 8192]

# committed points not to use, and why (results/README.md tells their story)
SUPERSEDED = {
    ("bench-cpu-amd-epyc-train8192.json", "sasrec-sdpa"): (
        "measured before SASRec-SDPA passed the causal flag (it then built an N x N mask); "
        "bench-cpu-amd-epyc-train-sdpa.json holds the current point"
    ),
}
# how a file's `settings.memory` names the bench's first CPU memory method (results/README.md)
FIRST_METHOD = "ru_maxrss"
MAX_FIGURES = 9  # figures of committed files drawn (about 0.1 MB each with its PNG)

# the live benchmark (the same arguments as `python -m elastic_edu bench`)
LIVE_MODELS = ["sasrec-naive", "sasrec-sdpa", "elastic-bidir", "elastic-causal"]
LIVE_K = 8  # experts k of the live dispatcher models (the library's default)
LIVE_LENGTHS = [256, 512, 1024] if QUICK else [256, 512, 1024, 2048, 4096]
LIVE_MODES = ["inference"] if QUICK else ["inference", "train"]
STREAM_LENGTHS = [256, 1024, 4096] if QUICK else [256, 1024, 4096, 16384]

# the paper's two figures (abstract of arXiv 2408.09380)
PAPER_MEMORY_SAVING = 0.90  # "up to 90% less GPU memory"
PAPER_INFERENCE_SPEEDUP = 2.7  # "2.7x faster inference"

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import re

import torch
from IPython.display import display
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import bench, viz
from elastic_edu.bench.flops import count_flops
from elastic_edu.bench.report import (
    crossover,
    format_crossover,
    format_stream,
    format_summary,
    load_results,
    loglog_slope,
    reference_k,
    summarise,
)
from elastic_edu.nn import CausalSelfAttention, DispatcherAttention
from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention
from elastic_edu.nn.flops import (
    causal_dispatcher_flops,
    dispatcher_crossover,
    dispatcher_flops,
    self_attention_flops,
)
from elastic_edu.paths import repo_root
from elastic_edu.tutorial import check

# %% [markdown]
# ## 1. FLOPs by formula
#
# Count the multiply-adds of matrix products (2 FLOPs each) in one layer, for a batch of b histories
# of length n, width d and k = e experts. Softmax, norms and other element-wise work are left out,
# as `FlopCounterMode` leaves them out.
#
# **Self-attention** (SASRec): project to Q, K, V (3 matrices d × d) and back (one more):
# 8·b·n·d²; scores QKᵀ for every pair of positions: 2·b·n²·d; weights times V: 2·b·n²·d.
#
#   FLOPs_attn = 8bnd² + 4bn²d
#
# **Dispatcher attention** (ELASTIC as the paper reads it, **our** layer equations): the
# *aggregate* step projects the experts to queries and the history to keys and values
# (2bed² + 4bnd²), computes e × n scores and reads the values (2·2bend), and projects the e outputs
# (2bed²); the *dispatch* step projects the history to queries (2bnd²), the experts to keys and
# values (4bed²), computes n × e scores and reads (2·2bned), and projects the n outputs (2bnd²).
#
#   FLOPs_LDA = 8bnd² + 8bed² + 8bned
#
# **Causal dispatcher attention** (`elastic-causal`, **ours**, `docs/DESIGN.md`): every expert
# summarises every prefix of the history with a running softmax, and position t reads the
# summaries at t. The history's keys and values (4bnd²), the dispatch queries and gates (4bnd²)
# and the outputs (2bnd²); per expert its query, own key and value and dispatch key (8bed²), its
# recency rates and own score (2bed(h + 1)); per position and expert the item score, route · key,
# gate · summary and the weighted read (8bned). The prefix sums themselves are element-wise.
#
#   FLOPs_causal = 10bnd² + 8bed² + 8bned + 2bed(h + 1)
#
# Both dispatcher forms share the projections with self-attention; what differs is 4bn²d against
# 8bned: quadratic against linear in n. The library keeps the three formulas in `elastic_edu.flops`
# (`self_attention_flops(b, n, d)`, `dispatcher_flops(b, n, k, d)`,
# `causal_dispatcher_flops(b, n, k, d, heads)`; notebook 02 derived the second one step by step).
#
# The check: build the library's three layers on the **meta** device (shapes only, no memory, no
# arithmetic) and count one forward pass with `elastic_edu.flops.count_flops` (`FlopCounterMode`
# on the meta device; a data-dependent check such as the causal layer's underflow test reads as
# "no" there, the branch inputs without trouble take).


# %%
# NBVAL_CHECK_OUTPUT
def counted(make_layer, n):
    """FLOPs of one forward pass of a layer built on the meta device (shapes only)."""
    with torch.device("meta"):
        x, experts = torch.randn(B, n, D), torch.randn(B, E, D)
        pad = torch.zeros(B, n, dtype=torch.bool)
        layer = make_layer().eval()
    if isinstance(layer, CausalSelfAttention):
        return count_flops(lambda: layer(x, pad))
    return count_flops(lambda: layer(x, experts, pad))


print(f"b={B}, d={D}, e={E}, h={HEADS}: FLOPs of one layer, counted (= formula)")
print(
    f"{'N':>6} {'self-attention':>16} {'dispatcher':>14} {'causal':>14} {'ratio':>6} {'causal':>7}"
)
for n in FLOP_LENGTHS:
    sa = counted(lambda: CausalSelfAttention(D, HEADS, backend="sdpa"), n)
    lda = counted(lambda: DispatcherAttention(D, HEADS), n)
    cda = counted(lambda: CausalDispatcherAttention(D, HEADS), n)
    assert sa == self_attention_flops(B, n, D) and lda == dispatcher_flops(B, n, E, D)
    assert cda == causal_dispatcher_flops(B, n, E, D, HEADS)
    print(f"{n:>6} {sa:>16,} {lda:>14,} {cda:>14,} {sa / lda:>6.1f} {sa / cda:>7.1f}")

# %% [markdown]
# (The two ratio columns are self-attention's FLOPs over each dispatcher form's.) A trap worth
# knowing: on some devices the fused SDPA kernel has no FLOP formula registered, and
# `FlopCounterMode` silently counts zero for it. Counting the same layer on real tensors of the
# chosen device shows whether that happens here; it is why the benchmark counts FLOPs on the meta
# device.

# %%
n = FLOP_LENGTHS[1]
layer = CausalSelfAttention(D, HEADS, backend="sdpa").to(device).eval()
x, pad = torch.randn(B, n, D, device=device), torch.zeros(B, n, dtype=torch.bool, device=device)
with torch.no_grad(), FlopCounterMode(display=False) as counter:
    layer(x, pad)
real, formula = counter.get_total_flops(), self_attention_flops(B, n, D)
print(
    f"self-attention at N={n} on {device}: counted {real:,}, formula {formula:,}: "
    + (
        "the fused attention was counted"
        if real == formula
        else f"{formula - real:,} FLOPs of the fused attention kernel went uncounted"
    )
)

# %% [markdown]
# Where does a dispatcher layer become cheaper? Setting the first two formulas equal,
# 4n²d = 8ed² + 8ned, gives n² − 2en − 2ed = 0, so the crossover is at n = e + √(e² + 2ed)
# (`elastic_edu.flops.dispatcher_crossover(k, d)`). The causal form's extra terms move its
# crossover a little; we search for it with the formula:

# %%
# NBVAL_CHECK_OUTPUT
n_cross = dispatcher_crossover(E, D)
print(
    f"e={E}, d={D}: the dispatcher layer does fewer FLOPs than self-attention for N > {n_cross:.1f}"
)
for n in (int(n_cross), int(n_cross) + 1):
    print(
        f"  N={n}: self-attention {self_attention_flops(1, n, D):,}, "
        f"dispatcher {dispatcher_flops(1, n, E, D):,}"
    )
n_causal = next(
    n
    for n in range(1, 100_000)
    if causal_dispatcher_flops(1, n, E, D, HEADS) < self_attention_flops(1, n, D)
)
print(f"the causal dispatcher layer (h={HEADS}) does fewer FLOPs from N = {n_causal}")

# %% [markdown]
# FLOPs are not time: a quadratic count of cheap, well-vectorised operations can beat a linear count
# of small ones, and memory traffic often matters more than arithmetic. That is why we measure.
#
# ## 2. Measured curves (committed results)
#
# `python -m elastic_edu bench` (module `elastic_edu.bench`) measures whole models at each N:
# inference (`encode` under `no_grad`), a training step (random-cut loss, backward, AdamW step)
# and, for the models that carry a state, a stream of new events (section 3). It reads peak memory
# and counts FLOPs on the meta device. Its method is **our decision** and is stored in every file's
# `settings`. Labels name models of the registry (`elastic_edu.models.REGISTRY`): `sasrec-naive`
# (SASRec with naive attention, which materialises the N × N attention matrix, as the original
# SASRec), `sasrec-sdpa` (PyTorch's fused `scaled_dot_product_attention`), and `<model>-k<K>` for a
# dispatcher model with K experts (ELASTIC, and the LDA-only ablation without the memory).
#
# Two things changed since the first files were made; the next cell says, per file, which applies.
#
# 1. **Which ELASTIC a label names.** The first files predate the causal form: their `elastic-k32`
#    is the paper's non-causal ELASTIC, today `elastic-bidir`, and their `lda-k32` is `lda-bidir`.
#    Today `elastic` is an alias of `elastic-causal`. So that one label never stands for two
#    models here, this notebook renames every such label to the model it measured
#    (`elastic-bidir-k32`, `elastic-causal-k8`, ...); figures and tables show these names.
# 2. **How CPU memory was measured.** The first CPU files read the peak resident size of the
#    worker process (`ru_maxrss` after the runs minus before); the bench now counts the bytes of
#    the tensors the run allocates (`elastic_edu.profile.PeakMemory`). On a GPU both read
#    `torch.cuda.max_memory_allocated`. The two CPU methods do not measure the same thing, so this
#    notebook takes a memory ratio only within one file (each file has one method).
#
# The cell loads every `results/bench-*.json` it finds (one per machine and study), prints where
# and how each was made, and sets aside the points listed in `SUPERSEDED`, saying why.

# %%
root = repo_root()
files = sorted((root / "results").glob("bench-*.json")) if root else []
raw = {path.name: load_results(path) for path in files}


def first_method(b):
    """Whether the bench's first method made file `b` (process RSS on CPU; `elastic` was the
    non-causal model then)."""
    return FIRST_METHOD in b["settings"].get("memory", "")


def registry_names(b):
    """{label in file `b`: the registry model it measured, with its k and compile tag}."""
    form = "bidir" if first_method(b) else "causal"  # what `elastic` and `lda` named then
    labels = list(dict.fromkeys(p["model"] for p in b["points"]))
    names = {}
    for label in labels:
        found = re.fullmatch(r"(elastic|lda)-k(\d+)(\+\w+)?", label)
        new = f"{found[1]}-{form}-k{found[2]}{found[3] or ''}" if found else label
        names[label] = label if new != label and new in labels else new  # both in one file
    return names


def memory_method(b):
    if b["device"].startswith("cuda"):
        return "GPU: torch.cuda.max_memory_allocated"
    return "CPU: process peak RSS (first method)" if first_method(b) else "CPU: tensor bytes"


def command_of(b, name):
    """The command line that reproduces a bench file, from its stored settings."""
    s = b["settings"]
    compiled = [c for c in s.get("compile", ["off"]) if c != "off"]
    return (
        f"python -m elastic_edu bench --models {' '.join(s['models'])} --k "
        f"{' '.join(map(str, s['ks']))} --lengths {' '.join(map(str, s['lengths']))} "
        f"--modes {' '.join(s['modes'])} --batch {s['batch']} --device {s['device']} "
        f"--dtype {s['dtype']} --dim {s['dim']} --layers {s['layers']} --heads {s['heads']} "
        f"--threads {s['threads']} --timeout {s['timeout']:g}"
        + (f" --compile off {' '.join(compiled)}" if compiled else "")
        + f" --out results/{name}"
    )


benches = {}
for name, b in raw.items():
    names = registry_names(b)
    dropped = {m for (f, m) in SUPERSEDED if f == name}
    points = [{**p, "model": names[p["model"]]} for p in b["points"] if p["model"] not in dropped]
    labels = [names.get(x, x) for x in b["settings"].get("labels", [])]
    benches[name] = {**b, "points": points, "settings": {**b["settings"], "labels": labels}}
    s = b["settings"]
    kinds = dict.fromkeys(p["status"] for p in points)  # in order of appearance
    status = {st: sum(p["status"] == st for p in points) for st in kinds}
    print(f"{name}: {b['device_name']} ({b['device']}), torch {b['torch']}, created {b['created']}")
    print(
        f"  d={s['dim']}, {s['layers']} layers, {s['heads']} heads, batch {s['batch']}, "
        f"{s['dtype']}, {s['threads']} CPU thread(s); N = {s['lengths']}; points: {status}"
    )
    print(f"  memory: {memory_method(b)}")
    renamed = {a: z for a, z in names.items() if a != z}
    if renamed:
        why = (
            "the file predates the causal form"
            if first_method(b)
            else "aliases of the causal forms"
        )
        print(f"  labels: {', '.join(f'{a} = {z}' for a, z in renamed.items())} ({why})")
    for a, z in names.items():
        if a == z and re.fullmatch(r"(elastic|lda)-k\d+(\+\w+)?", a):
            print(f"  note: {a} is measured beside its registry name in this file (the same model)")
    print(f"  made by: {command_of(b, name)}")
    for (f, model), why in SUPERSEDED.items():
        if f == name:
            print(f"  not used: its {viz.display_name(model)} points, {why}")
if not benches:
    print(
        "No results/bench-*.json on this machine. Make one with\n  python -m elastic_edu bench "
        "--out results/bench-<machine>.json\n(see `python -m elastic_edu bench --help`); "
        "until then only the live measurements of sections 3 and 4 are shown."
    )

# %% [markdown]
# Ratios in this notebook are always taken *within* one file, where the models ran interleaved on
# the same machine state; across files, absolute times on a shared machine move, and the code may
# have changed between them. The next cell lists every point measured in more than one file, with
# each file's value, when it was made and how its memory was read:

# %%
seen = {}
for name, b in raw.items():
    names = registry_names(b)
    for p in b["points"]:
        if p["status"] == "ok":
            key = (p["mode"], p["n"], names[p["model"]], b["device_name"], p["dtype"])
            seen.setdefault(key, []).append((name, p))
repeated = {key: found for key, found in seen.items() if len(found) > 1}
for (mode, n, model, where, dtype), found in repeated.items():
    print(f"{mode} N={n} {model} on {where} ({dtype}):")
    for name, p in sorted(found, key=lambda f: raw[f[0]]["created"]):
        gone = " (superseded)" if (name, p["model"]) in SUPERSEDED else ""
        print(
            f"  {p['latency_ms']:>9,.0f} ms, {p['peak_mb']:>7,.0f} MB ({memory_method(raw[name])}) "
            f"in {name}, created {raw[name]['created']}{gone}"
        )
if not repeated:
    print("no point is measured in more than one file")

# %% [markdown]
# Where one point has two values, each file's ratios still stand on their own: the README quotes
# the earlier CPU training file only for the ratio against naive attention, which the later file
# did not measure.
#
# Each figure is log-log: solid lines are measurements, each legend entry with its fitted slope
# over N ≥ 2,048; dashed lines are the model's FLOPs scaled to meet its first measurement (so
# slopes compare directly); crosses are points that ran out of memory or time. For each file:
# inference latency and peak memory, then the training step's latency when the file has it (its
# memory tells the same story as inference: `viz.complexity_figure(benches[name], "peak_mb",
# "train")` draws it). A file measured at one length only has no curve to draw; stream points are
# read in section 3. So that the saved notebook stays small however many files `results/` holds,
# at most `MAX_FIGURES` are drawn, inference latency first, then inference memory, then the
# training step; the cell names any it leaves out, each one call away.

# %%
candidates = [
    (name, metric, mode)
    for name, b in benches.items()
    if len(b["settings"]["lengths"]) > 1
    for mode in b["settings"]["modes"]
    if mode != "stream"
    for metric in (("latency_ms", "peak_mb") if mode == "inference" else ("latency_ms",))
]
priority = {("latency_ms", "inference"): 0, ("peak_mb", "inference"): 1}
chosen = sorted(candidates, key=lambda f: priority.get(f[1:], 2))[:MAX_FIGURES]
figures = [f for f in candidates if f in chosen]  # in file order
print(f"{len(figures)} figures: " + "; ".join(f"{n} {mt} {md}" for n, mt, md in figures))
for name, metric, mode in (f for f in candidates if f not in chosen):
    print(f"not drawn: viz.complexity_figure(benches[{name!r}], {metric!r}, {mode!r})")

# %%
for name, metric, mode in figures:
    display(viz.complexity_figure(benches[name], metric, mode))

# %% [markdown]
# The fitted slopes (least squares of log value against log N over the long end,
# `elastic_edu.bench_report.summarise`) and the ratios at a few N, as `format_summary` prints them:

# %%
summaries = {name: summarise(b) for name, b in benches.items()}
for name, sm in summaries.items():
    print(f"== {name} ({benches[name]['device_name']}, memory: {memory_method(raw[name])})")
    print(format_summary(sm), end="\n\n")


# %% [markdown]
# ## 3. The paper's claims against these files
#
# For each file we take each ELASTIC form at the file's reference k (the middle of its `--k`,
# `elastic_edu.bench_report.reference_k`), find the longest N at which it and a SASRec variant both
# finished, and compute the memory saved (1 − ELASTIC / SASRec) and the speed-up (SASRec time /
# ELASTIC time); a negative saving or a speed-up below one is printed as what it is, more memory or
# a slowdown. Points where SASRec ran out of memory or time while ELASTIC finished are listed
# separately: there the saving is not a percentage but the difference between running and not
# running.


# %%
def finished(b, mode):
    """(model, n) -> point, for the points of `mode` that finished."""
    return {
        (p["model"], p["n"]): p for p in b["points"] if p["mode"] == mode and p["status"] == "ok"
    }


def has(b, model, mode):
    return any(p["model"] == model and p["mode"] == mode for p in b["points"])


def measured_modes(b):
    return [m for m in b["settings"]["modes"] if m != "stream"]


def elastic_refs(b):
    """The eager ELASTIC labels of file `b` at its reference k (all of them if none has it)."""
    labels = [x for x in dict.fromkeys(p["model"] for p in b["points"])
              if x.startswith("elastic") and "+" not in x]  # fmt: skip
    ks = b["settings"].get("ks")
    at_ref = [x for x in labels if ks and x.endswith(f"-k{reference_k(ks)}")]
    return at_ref or labels


def longest_common(b, a, base, mode):
    ok = finished(b, mode)
    ns = sorted(n for (m, n) in ok if m == a and (base, n) in ok)
    return (ns[-1], ok[(a, ns[-1])], ok[(base, ns[-1])]) if ns else None


def speed_words(speedup):
    """'3.20x faster' or '1.60x slower' (never '0.6x faster')."""
    return f"{speedup:.2f}x faster" if speedup >= 1 else f"{1 / speedup:.2f}x slower"


def memory_words(saving):
    """'98.7% less memory' or '14.9% more memory'."""
    return f"{saving:.1%} less memory" if saving >= 0 else f"{-saving:.1%} more memory"


def claims(b, ref, mode):
    for base in ("sasrec-naive", "sasrec-sdpa"):
        if not has(b, base, mode):
            print(f"  {mode}: no {viz.display_name(base)} points in this file")
            continue
        found = longest_common(b, ref, base, mode)
        if not found:
            print(f"  {mode}: {ref} and {viz.display_name(base)} never both finished")
            continue
        n, p, q = found
        saving, speedup = 1 - p["peak_mb"] / q["peak_mb"], q["latency_ms"] / p["latency_ms"]
        mem_word = "above" if saving >= PAPER_MEMORY_SAVING else "below"
        time_word = "above" if speedup >= PAPER_INFERENCE_SPEEDUP else "below"
        print(
            f"  {mode}, N={n}: {ref} uses {memory_words(saving)} than "
            f"{viz.display_name(base)} ({mem_word} the paper's {PAPER_MEMORY_SAVING:.0%} saving) "
            f"and is {speed_words(speedup)} ({time_word} its {PAPER_INFERENCE_SPEEDUP}x)"
        )
        failed = sorted(
            p2["n"]
            for p2 in b["points"]
            if p2["model"] == base and p2["mode"] == mode and p2["status"] != "ok"
        )
        ran = {n2 for (m2, n2) in finished(b, mode) if m2 == ref}
        beyond = [n2 for n2 in failed if n2 in ran]
        if beyond:
            print(f"    and at N={beyond} {viz.display_name(base)} did not finish, {ref} did")


for name, b in benches.items():
    if not measured_modes(b):
        continue
    print(f"{name} ({b['device_name']}, {b['settings']['dtype']}, {memory_method(raw[name])}):")
    for ref in elastic_refs(b):
        for mode in measured_modes(b):
            claims(b, ref, mode)


# %% [markdown]
# The longest N is not the whole story. Below, for each file, where the reference ELASTIC overtakes
# each SASRec variant (`elastic_edu.bench_report.crossover`: the smallest measured N from which it
# is faster at every longer N where both finished; `format_crossover` adds the speed-up and memory
# share at the file's longest N), and what each fitted slope says. A slope near 0 means the latency
# hardly changes with N: fixed costs dominate. On a GPU that is typical of small models, whose time
# goes into launching many small kernels (retrieval, top-k, gathers, two attention steps per layer)
# rather than into arithmetic; there a quadratic model can be faster at short N because the GPU
# runs its N² work in parallel at little extra cost.


# %%
def reading(slope):
    if slope is None:
        return "-"
    return (
        "fixed costs dominate"
        if slope < 0.5
        else "about linear"
        if slope < 1.3
        else "between linear and quadratic"
        if slope < 1.8
        else "about quadratic"
    )


for name, b in benches.items():
    if not measured_modes(b):
        continue
    longest = max(b["settings"]["lengths"])
    print(f"{name} ({b['device_name']}, {b['settings']['dtype']}):")
    for mode in measured_modes(b):
        for ref in elastic_refs(b):
            for base in ("sasrec-naive", "sasrec-sdpa"):
                if has(b, base, mode):
                    print("  " + format_crossover(crossover(b, ref, base, mode), at=(longest,)))
    for label in (*elastic_refs(b), "sasrec-naive", "sasrec-sdpa"):
        for mode, sl in summaries[name]["slopes"].get(label, {}).items():
            lat, mem = sl["latency_ms"], sl["peak_mb"]
            if mode == "stream" or (lat is None and mem is None):
                continue  # stream points: section 3; fewer than two finished lengths: no slope
            fmt = lambda v: "-" if v is None else f"{v:.2f}"
            print(
                f"  {label:<31} {mode:<9} slope over N={sl['n']}: latency "
                f"{fmt(lat)} ({reading(lat)}), memory {fmt(mem)} ({reading(mem)})"
            )

# %% [markdown]
# Keep in mind what the comparison cannot tell: the paper's figures were measured on GPUs, with the
# authors' model sizes and their quadratic baseline, none of which we know. A CPU file says how
# the algorithms scale, not what a GPU would show; a file's own device name says which it is.
#
# ### Fused attention (SDPA): where it narrows the gap, and where it reverses it
#
# A fused attention kernel computes softmax(QKᵀ)V block by block without storing the N × N float
# score matrix, so SASRec's *memory* with SDPA should grow more slowly than with naive attention,
# while its *FLOPs* stay quadratic. How SASRec calls it (**our decision**): with padding in the
# batch it must hand SDPA an explicit (b, 1, N, N) boolean mask for causality and padding, and that
# mask is itself quadratic, one byte per pair of positions per user; without padding (as in the
# benchmark, where every history is full) it passes only `is_causal=True`, and torch runs its flash
# kernel with no N × N tensor at all:

# %%
# NBVAL_CHECK_OUTPUT
for n in (1024, 4096, 16384):
    print(f"N={n:>6}: boolean mask of a batch of 4: {4 * n * n / 2**20:8,.0f} MiB")


# %% [markdown]
# The measured ratios at each N, for the reference ELASTIC forms, and in words what fused attention
# does to each gap at the longest N: *narrows* it (ELASTIC's advantage shrinks but stays),
# *reverses* it (SASRec with SDPA is the faster or the leaner model there) or leaves it.


# %%
def gap_words(naive_x, sdpa_x, what, better, worse):
    """How ELASTIC's advantage against SDPA compares with its advantage against naive attention.

    naive_x, sdpa_x: ELASTIC's advantage factor against each (above 1: ELASTIC is better)."""
    against = (
        f"ELASTIC {naive_x:.1f}x {better} than naive attention, "
        + (f"{sdpa_x:.1f}x {better}" if sdpa_x >= 1 else f"{1 / sdpa_x:.1f}x {worse}")
        + " than SDPA"
    )
    verb = "reverses" if sdpa_x < 1 else "narrows" if sdpa_x < naive_x else "does not narrow"
    return f"{verb} the {what} gap ({against})"


for name, b in benches.items():
    for ref in elastic_refs(b):
        for mode in measured_modes(b):
            ok = finished(b, mode)
            rows = []
            for n in b["settings"]["lengths"]:
                if (ref, n) in ok and ("sasrec-naive", n) in ok and ("sasrec-sdpa", n) in ok:
                    e_, nv, sd = ok[(ref, n)], ok[("sasrec-naive", n)], ok[("sasrec-sdpa", n)]
                    mem = (e_["peak_mb"] / nv["peak_mb"], e_["peak_mb"] / sd["peak_mb"])
                    speed = (
                        nv["latency_ms"] / e_["latency_ms"],
                        sd["latency_ms"] / e_["latency_ms"],
                    )
                    rows.append((n, *mem, *speed))
            if not rows:
                continue
            print(f"{name}, {mode}: {ref} memory as a share of SASRec's, and its speed-up")
            print(f"{'N':>7} {'mem/naive':>10} {'mem/sdpa':>9} {'x naive':>8} {'x sdpa':>7}")
            for n, mn, ms, xn, xs in rows:
                print(f"{n:>7} {mn:>10.1%} {ms:>9.1%} {xn:>8.1f} {xs:>7.1f}")
            n, mn, ms, xn, xs = rows[-1]
            memory = gap_words(1 / mn, 1 / ms, "memory", "leaner", "heavier")
            print(
                f"at N={n}, SDPA {memory}\n  and {gap_words(xn, xs, 'time', 'faster', 'slower')}\n"
            )

# %% [markdown]
# How much of such a mask does the benchmark's SASRec-SDPA hold? SDPA turns a boolean mask into an
# additive float mask of the same shape (2 or 4 bytes a pair, by dtype), so the two together would
# take b·N²·(1 + bytes) bytes. Compare with the measured peak of SASRec-SDPA at inference, in each
# file's own memory method:

# %%
for name, b in benches.items():
    s = b["settings"]
    width = {"float32": 4, "bfloat16": 2}.get(s["dtype"], 4)
    pts = sorted(
        (
            p
            for p in b["points"]
            if p["model"] == "sasrec-sdpa" and p["mode"] == "inference" and p["status"] == "ok"
        ),
        key=lambda p: p["n"],
    )
    if pts:
        p = pts[-1]
        masks = s["batch"] * p["n"] ** 2 * (1 + width) / 2**20
        print(
            f"{name}: N={p['n']}, a boolean + {s['dtype']} mask would take {masks:,.0f} MiB; "
            f"measured peak {p['peak_mb']:,.0f} MiB ({p['peak_mb'] / masks:.1%} of it; "
            f"{memory_method(raw[name])})"
        )

# %% [markdown]
# Each measured peak, as a share of what the masks alone would take, is printed above: with the
# causal flag, flash attention stores no N × N tensor, and its memory slope in section 2 says how
# close to linear it grows. Against it, what is left of ELASTIC's advantage, in time and in
# memory, is printed per file and per ELASTIC form in the tables above, including where the gap
# reverses.
#
# ### Streaming: one new event at a time
#
# A recommender in service sees one new event after another. A model without a state pays for the
# whole history again at every event (`model.score` on the N-long history: *re-encoding*). The
# causal ELASTIC carries a state instead (`model.start`, `model.step`, `model.score_state`;
# `docs/DESIGN.md`, causal dispatcher attention, decision 6): per layer and head, a running
# maximum, sum and weighted sum for each expert, so a new event costs O(L·k·d) however long the
# history already is. The bench's `stream` mode measures it: `latency_ms` per event on a state that
# has streamed N events, `fresh_ms` the same events on a fresh stream (timed alternately, so their
# ratio holds under other load), and `reencode_ms`, `model.score` on the same N-long history.
# `elastic_edu.bench_report.format_stream` prints the table; committed stream files first, when
# `results/` has any:

# %%
streams = {n: b for n, b in benches.items() if any(p["mode"] == "stream" for p in b["points"])}
for name, b in streams.items():
    print(f"== {name} ({b['device_name']}, {b['settings']['dtype']}, d={b['settings']['dim']})")
    print(format_stream(b), end="\n\n")
if not streams:
    print(
        "No stream points in results/bench-*.json yet; make them with\n  python -m elastic_edu "
        "bench --models elastic-causal --modes stream --lengths 1024 16384 "
        "--out results/bench-<machine>-stream.json\nThe live stream below measures this machine."
    )

# %% [markdown]
# The same measurement, live and small: the causal ELASTIC with k = `LIVE_K` experts, streamed to
# each N of `STREAM_LENGTHS` (each point a fresh process on a CPU, as the bench runs it):

# %%
STREAM_ARGS = [
    *("--models", "elastic-causal", "--k", str(LIVE_K), "--modes", "stream"),
    *("--lengths", *map(str, STREAM_LENGTHS)),
    *("--batch", "2", "--device", str(device), "--repeats", "3" if QUICK else "5"),
    *("--threads", "1", "--timeout", "60", "--seed", str(SEED)),
]
live_stream = bench.run_bench(bench.BenchConfig.from_argv(STREAM_ARGS), log=print)
print()
print(format_stream(live_stream))

# %%
done = [p for p in live_stream["points"] if p["status"] == "ok" and p.get("reencode_ms")]
viz.loglog_figure(
    {
        "one new event on a state that has seen N": (
            [p["n"] for p in done],
            [p["latency_ms"] for p in done],
        ),
        "the same on a fresh stream": ([p["n"] for p in done], [p["fresh_ms"] for p in done]),
        "re-encoding the N-long history": (
            [p["n"] for p in done],
            [p["reencode_ms"] for p in done],
        ),
    },
    f"Causal ELASTIC (k = {LIVE_K}): the cost of one new event ({device}, batch 2)",
    "history length N (events already seen)",
    "ms per new event",
)

# %% [markdown]
# Read the table's last line and the figure's slopes: a per-event latency that stays flat as N
# grows (ratio near 1, slope near 0) is what the state buys, and the re-encoding column grows with
# N (its `re-encode/event` column says how many streamed events one re-encoding costs). The
# `after/fresh` column compares a state that has seen N events with a fresh one on the same events,
# measured alternately.
#
# ## 4. A live measurement
#
# The same benchmark, small enough for a notebook: SASRec with both back-ends and both ELASTIC
# forms (`elastic-bidir`, the paper's reading, and `elastic-causal`, which `elastic` names), with
# k = `LIVE_K` experts, batch 2, a few lengths. On a CPU each point runs in a fresh process (so that
# its peak memory is its own) and memory is counted as tensor bytes (`PeakMemory`, the bench's
# current method: compare it only with files that used the same); on a GPU in this process.
# Timings depend on the machine and on whatever else it is doing, so expect them to differ from
# the committed files and from run to run: this is a demonstration of the tool, not a measurement
# to quote.

# %%
LIVE_ARGS = [
    *("--models", *LIVE_MODELS, "--k", str(LIVE_K)),
    *("--lengths", *map(str, LIVE_LENGTHS), "--modes", *LIVE_MODES),
    *("--batch", "2", "--device", str(device), "--repeats", "3" if QUICK else "5"),
    *("--threads", "1", "--timeout", "60", "--seed", str(SEED)),
]
settings = bench.BenchConfig.from_argv(LIVE_ARGS)
live = bench.run_bench(settings, log=print)
print(f"\nlabels: {live['settings']['labels']}\nmemory: {live['settings']['memory']}")

# %%
viz.complexity_figure(live, "latency_ms", "inference", slope_from=None)

# %%
viz.complexity_figure(live, "peak_mb", "inference", slope_from=None)

# %% [markdown]
# Slopes of the live curves (all measured lengths) next to the slopes of their FLOP counts over the
# same lengths. At short N the quadratic term is not yet dominant, so even SASRec's FLOP slope is
# below 2. A measured slope can sit below its FLOP slope (fixed costs: launching operations, the
# item embeddings, the output layer) or above it (naive attention writes and reads its N × N
# matrices, memory traffic that FLOPs do not count): compare the two for each model.

# %%
live_summary = summarise(live, slope_from=LIVE_LENGTHS[0], ratio_at=LIVE_LENGTHS)
print(format_summary(live_summary))
print("\nFLOP slopes over the same lengths:")
for label in live["settings"]["labels"]:
    pts = [p for p in live["points"] if p["model"] == label and p["mode"] == "inference"]
    slope = loglog_slope([p["n"] for p in pts], [p["flops"] for p in pts])
    print(f"  {label:<31} {slope:.2f}")

# %%
for label in (f"elastic-bidir-k{LIVE_K}", f"elastic-causal-k{LIVE_K}"):
    for base in ("sasrec-naive", "sasrec-sdpa"):
        c = crossover(live, label, base, "inference")
        print("live: " + format_crossover(c, at=(LIVE_LENGTHS[-1],)))

# %% [markdown]
# ## Exercises
#
# Write your answer in place of `None` and run the cell: `check` says whether it is right.
#
# **Exercise 1.** A model's latency curve has log-log slope 1; another's has slope 2. Doubling N
# multiplies each latency by how much?

# %%
ratio_slope_1 = None  # your answer
ratio_slope_2 = None  # your answer

check("slope 1", ratio_slope_1, 2.0, hint="latency ~ N**slope, so the ratio is 2**slope")
ok = check("slope 2", ratio_slope_2, 4.0, hint="latency ~ N**slope, so the ratio is 2**slope")

# %% [markdown]
# <details><summary>Solution</summary>
#
# Latency ∝ N^slope, so doubling N multiplies it by 2^slope: 2 for slope 1, 4 for slope 2. A slope
# of 1.5 would give 2^1.5, a little under 3.
# </details>
#
# **Exercise 2.** From the live measurement `live["points"]` (keys `model`, `n`, `mode`, `status`,
# `latency_ms`), find the smallest measured N from which `elastic-causal-k8` inference is faster
# than `sasrec-sdpa` at that N and every longer measured N (0 if there is none).

# %%
crossover_n = None  # your answer, read from live["points"]

expected_n = crossover(live, f"elastic-causal-k{LIVE_K}", "sasrec-sdpa", "inference")["from_n"]
ok = check(
    "crossover N",
    crossover_n,
    expected_n or 0,
    hint="filter the ok inference points of the two models and compare latency_ms at each n",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# lat = {(p["model"], p["n"]): p["latency_ms"] for p in live["points"]
#        if p["mode"] == "inference" and p["status"] == "ok"}
# faster = [lat[("elastic-causal-k8", n)] < lat[("sasrec-sdpa", n)] for n in LIVE_LENGTHS]
# crossover_n = next((n for i, n in enumerate(LIVE_LENGTHS) if all(faster[i:])), 0)
# ```
# (`elastic_edu.bench_report.crossover(live, "elastic-causal-k8", "sasrec-sdpa", "inference")`
# gives the same N as `from_n`, None when there is none.)
# </details>
#
# **Exercise 3.** With the FLOP formulas of section 1, what is the smallest N at which a dispatcher
# layer with k = 64 experts (d = 64) does fewer FLOPs than self-attention? Does doubling k move
# the crossover up or down?

# %%
crossover_k64 = None  # your answer: an int

ok = check(
    "FLOP crossover, k=64",
    crossover_k64,
    next(
        n for n in range(1, 10_000) if dispatcher_flops(1, n, 64, D) < self_attention_flops(1, n, D)
    ),
    hint="search n upward with the two formula functions, or solve n = e + sqrt(e**2 + 2ed)",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# `next(n for n in range(1, 10_000) if dispatcher_flops(1, n, 64, D) < self_attention_flops(1, n, D))`
# gives 175 (`dispatcher_crossover(64, 64)`: e + √(e² + 2ed) = 64 + √12288): more experts cost
# more per position, so the crossover moves up.
# </details>
#
# ## Summary
#
# * By formula, one self-attention layer costs 8bnd² + 4bn²d FLOPs, one dispatcher layer
#   8bnd² + 8bed² + 8bned and one causal dispatcher layer 10bnd² + 8bed² + 8bned + 2bed(h + 1):
#   the quadratic term becomes linear, and the dispatcher is cheaper past n = e + √(e² + 2ed).
#   `count_flops` on the meta device agrees exactly with all three.
# * The committed benchmark files (section 2) give the measured slopes and ratios, each within one
#   file, with each label renamed to the model it measured and each file's memory method named;
#   section 3 says, from the numbers, how they compare with the paper's "90% less memory, 2.7x
#   faster inference" on each machine, where SASRec did not finish at all, and from which N
#   ELASTIC is the faster model. Its advantage is a long-sequence one.
# * Fused attention (SDPA with the causal flag) avoids storing SASRec's N × N score matrix, so its
#   memory grows about as slowly as ELASTIC's, but not its quadratic FLOPs; section 3 prints, per
#   machine, whether ELASTIC's advantage narrows or reverses against it.
# * The causal ELASTIC carries a state from event to event: the stream tables compare the cost of
#   one new event with re-encoding the whole history, at each N.
# * At short N, fixed costs dominate and slopes flatten; the asymptotic story needs long N.
#
# Next, `10_deep_dive_long_context`: what a long context buys when it is cheap, on a task built so that the
# signal lies far back.
