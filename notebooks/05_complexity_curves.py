# %% [markdown]
# # 05 · Complexity curves: what long histories cost
#
# ELASTIC exists to make long behaviour sequences affordable. This notebook checks that promise with
# numbers: floating-point operations by formula, then latency and peak memory measured by the
# library's benchmark against history length N, for ELASTIC and for SASRec with two attention
# back-ends.
#
# **Learning goals.** After this notebook you can
#
# 1. write the FLOPs of one self-attention layer and one dispatcher layer as formulas in N, and
#    check them with PyTorch's `FlopCounterMode`;
# 2. read log-log complexity curves: a slope of 1 is linear, 2 quadratic, and fixed costs flatten
#    the curves at small N;
# 3. say where ELASTIC wins against naive attention (time and memory), where fused attention
#    (`scaled_dot_product_attention`, SDPA) narrows the gap or reverses it, and how the
#    measurements compare with the paper's claims;
# 4. run a small benchmark yourself with `elastic_edu.bench.run_bench`.
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
# model sizes, the benchmark's method (what is timed, how memory is read, which baselines) are
# **our decision** (`docs/DESIGN.md`); the paper's hardware, sizes and baseline implementation are
# not known to us, so its two figures are a reference point, not a target our numbers must hit.

# %% [markdown]
# ## Parameters
#
# Every knob and the seed; the cell ends with `setup_notebook(SEED)` (threads, seeds, device,
# figures: see notebook 00). Quick mode (`ELASTIC_EDU_QUICK=1`, what CI sets and what the saved
# outputs show) keeps the live benchmark of section 4 to three short lengths and inference only
# (seconds on a 2-core CPU); without it the live run goes to N = 4096 and includes a training
# step. The
# measurements this notebook reports are the committed files of section 2, not the live run.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0

# FLOP formulas: one layer, sizes as the benchmark uses them
B, D, HEADS, E = 1, 64, 2, 32  # batch, width d, heads, experts k
FLOP_LENGTHS = [128, 512, 2048, 8192]

# committed points not to use, and why (results/README.md tells their story)
SUPERSEDED = {
    ("bench-cpu-amd-epyc-train8192.json", "sasrec-sdpa"): (
        "measured before SASRec-SDPA passed the causal flag (it then built an N x N mask); "
        "bench-cpu-amd-epyc-train-sdpa.json holds the current point"
    ),
}

# the live benchmark (the same arguments as `python -m elastic_edu bench`)
LIVE_LENGTHS = [256, 512, 1024] if QUICK else [256, 512, 1024, 2048, 4096]
LIVE_MODES = ["inference"] if QUICK else ["inference", "train"]

# the paper's two figures (abstract of arXiv 2408.09380)
PAPER_MEMORY_SAVING = 0.90  # "up to 90% less GPU memory"
PAPER_INFERENCE_SPEEDUP = 2.7  # "2.7x faster inference"

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%

import torch
from IPython.display import display
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import bench, viz
from elastic_edu.bench_report import format_summary, load_results, loglog_slope, summarise
from elastic_edu.costs import attention_flops, dispatcher_crossover, dispatcher_flops
from elastic_edu.nn import CausalSelfAttention, DispatcherAttention
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
# **Dispatcher attention** (ELASTIC, **our** layer equations): the *aggregate* step projects the
# experts to queries and the history to keys and values (2bed² + 4bnd²), computes e × n scores and
# reads the values (2·2bend), and projects the e outputs (2bed²); the *dispatch* step projects the
# history to queries (2bnd²), the experts to keys and values (4bed²), computes n × e scores and reads
# (2·2bned), and projects the n outputs (2bnd²).
#
#   FLOPs_LDA = 8bnd² + 8bed² + 8bned
#
# Both share the 8bnd² of the projections; what differs is 4bn²d against 8bned: quadratic against
# linear in n. The library keeps both formulas, `elastic_edu.costs.attention_flops(b, n, d)` and
# `dispatcher_flops(b, n, k, d)` (notebook 02 derived the second one step by step).
#
# The check: build the library's two layers on the **meta** device (shapes only, no memory, no
# arithmetic) and let `FlopCounterMode` count one forward pass.


# %%
# NBVAL_CHECK_OUTPUT
def counted(layer_fn, n):
    with torch.device("meta"):
        x, experts = torch.randn(B, n, D), torch.randn(B, E, D)
        pad = torch.zeros(B, n, dtype=torch.bool)
        layer = layer_fn().eval()
    with FlopCounterMode(display=False) as counter:
        if isinstance(layer, DispatcherAttention):
            layer(x, experts, pad)
        else:
            layer(x, pad)
    return counter.get_total_flops()


print(f"b={B}, d={D}, e={E}: FLOPs of one layer, counted (= formula)")
print(f"{'N':>6} {'self-attention':>16} {'dispatcher':>14} {'ratio':>7}")
for n in FLOP_LENGTHS:
    sa = counted(lambda: CausalSelfAttention(D, HEADS, backend="sdpa"), n)
    lda = counted(lambda: DispatcherAttention(D, HEADS), n)
    assert sa == attention_flops(B, n, D) and lda == dispatcher_flops(B, n, E, D)
    print(f"{n:>6} {sa:>16,} {lda:>14,} {sa / lda:>7.1f}")

# %% [markdown]
# A trap worth knowing: on some devices the fused SDPA kernel has no FLOP formula registered, and
# `FlopCounterMode` silently counts zero for it. Counting the same layer on real tensors of the chosen
# device shows whether that happens here; it is why the benchmark counts FLOPs on the meta device.

# %%
n = FLOP_LENGTHS[1]
layer = CausalSelfAttention(D, HEADS, backend="sdpa").to(device).eval()
x, pad = torch.randn(B, n, D, device=device), torch.zeros(B, n, dtype=torch.bool, device=device)
with torch.no_grad(), FlopCounterMode(display=False) as counter:
    layer(x, pad)
real, formula = counter.get_total_flops(), attention_flops(B, n, D)
print(
    f"self-attention at N={n} on {device}: counted {real:,}, formula {formula:,}: "
    + (
        "the fused attention was counted"
        if real == formula
        else f"{formula - real:,} FLOPs of the fused attention kernel went uncounted"
    )
)

# %% [markdown]
# Where does the dispatcher layer become cheaper? Setting the two formulas equal,
# 4n²d = 8ed² + 8ned, gives n² − 2en − 2ed = 0, so the crossover is at n = e + √(e² + 2ed)
# (`elastic_edu.costs.dispatcher_crossover(k, d)`):

# %%
# NBVAL_CHECK_OUTPUT
n_cross = dispatcher_crossover(E, D)
print(
    f"e={E}, d={D}: the dispatcher layer does fewer FLOPs than self-attention for N > {n_cross:.1f}"
)
for n in (int(n_cross), int(n_cross) + 1):
    print(
        f"  N={n}: self-attention {attention_flops(1, n, D):,}, "
        f"dispatcher {dispatcher_flops(1, n, E, D):,}"
    )

# %% [markdown]
# FLOPs are not time: a quadratic count of cheap, well-vectorised operations can beat a linear count
# of small ones, and memory traffic often matters more than arithmetic. That is why we measure.
#
# ## 2. Measured curves (committed results)
#
# `python -m elastic_edu bench` (module `elastic_edu.bench`) times inference (`encode` under
# `inference_mode`) and a training step (random-cut loss, backward, AdamW step) of whole models at
# each N, reads peak memory, and counts FLOPs. Its method is **our decision** and is stored in every
# file's `settings`. The models, named in full in the figures: SASRec with naive attention, which
# materialises the N × N attention matrix (as the original SASRec); SASRec with PyTorch's fused
# `scaled_dot_product_attention` (SDPA); ELASTIC with k = 16, 32 or 64 experts; and the LDA-only
# ablation.
#
# This cell loads every `results/bench-*.json` it finds (one per machine and study), prints where
# and how each was made, and sets aside the points listed in `SUPERSEDED`, saying why.

# %%
root = repo_root()
files = sorted((root / "results").glob("bench-*.json")) if root else []
raw = {path.name: load_results(path) for path in files}
benches = {}
for name, b in raw.items():
    dropped = {m for (f, m) in SUPERSEDED if f == name}
    benches[name] = {**b, "points": [p for p in b["points"] if p["model"] not in dropped]}
if not benches:
    print(
        "No results/bench-*.json on this machine. Make one with\n  python -m elastic_edu bench "
        "--out results/bench-<machine>.json\n(see `python -m elastic_edu bench --help`); "
        "until then only the live measurement in section 4 is shown."
    )


def command_of(b, name):
    """The command line that reproduces a bench file, from its stored settings."""
    s = b["settings"]
    return (
        f"python -m elastic_edu bench --models {' '.join(s['models'])} --k "
        f"{' '.join(map(str, s['ks']))} --lengths {' '.join(map(str, s['lengths']))} "
        f"--modes {' '.join(s['modes'])} --batch {s['batch']} --device {s['device']} "
        f"--dtype {s['dtype']} --threads {s['threads']} --timeout {s['timeout']:g} "
        f"--out results/{name}"
    )


for name, b in benches.items():
    s, pts = b["settings"], b["points"]
    kinds = dict.fromkeys(p["status"] for p in pts)  # in order of appearance
    status = {st: sum(p["status"] == st for p in pts) for st in kinds}
    print(f"{name}: {b['device_name']} ({b['device']}), torch {b['torch']}, created {b['created']}")
    print(
        f"  d={s['dim']}, {s['layers']} layers, {s['heads']} heads, batch {s['batch']}, "
        f"{s['dtype']}, {s['threads']} CPU thread(s); N = {s['lengths']}; points: {status}"
    )
    print(f"  made by: {command_of(b, name)}")
    for (f, model), why in SUPERSEDED.items():
        if f == name:
            print(f"  not used: its {viz.display_name(model)} points, {why}")

# %% [markdown]
# Two CPU files hold a training step at N = 8192: the same point, measured twice. Ratios in this
# notebook are always taken *within* one file, where the models ran interleaved on the same
# machine state; across files, absolute times on this shared 2-core machine move. The next cell
# lists every point measured in more than one file, with both values:

# %%
seen = {}
for name, b in raw.items():
    for p in b["points"]:
        if p["status"] == "ok":
            seen.setdefault(
                (p["mode"], p["n"], p["model"], b["device_name"], p["dtype"]), []
            ).append((name, p))
for (mode, n, model, where, dtype), found in seen.items():
    if len(found) > 1:
        values = "; ".join(
            f"{p['latency_ms']:,.0f} ms, {p['peak_mb']:,.0f} MB in {name}"
            + (" (superseded)" if (name, model) in SUPERSEDED else "")
            for name, p in found
        )
        print(f"{mode} N={n} {viz.display_name(model)} on {where} ({dtype}): {values}")

# %% [markdown]
# The ELASTIC step of the later file is the faster one: the same code path, a different moment
# on a shared machine. Each file's ratios stand on their own; the README quotes the earlier
# file only for the ratio against naive attention, which the later file did not measure.
#
# Each figure is log-log: solid lines are measurements, each legend entry with its fitted slope
# over N ≥ 2,048; dashed lines are the model's FLOPs scaled to meet its first measurement (so
# slopes compare directly); crosses are points that ran out of memory or time. For each file:
# inference latency and peak memory, then the training step's latency when the file has it (its
# memory tells the same story as inference: `viz.complexity_figure(benches[name], "peak_mb",
# "train")` draws it). A file measured at one length only has no curve to draw.

# %%
figures = [
    (name, metric, mode)
    for name, b in benches.items()
    if len(b["settings"]["lengths"]) > 1
    for mode in b["settings"]["modes"]
    for metric in (("latency_ms", "peak_mb") if mode == "inference" else ("latency_ms",))
]
print(f"{len(figures)} figures: " + "; ".join(f"{n} {mt} {md}" for n, mt, md in figures))

# %%
for name, metric, mode in figures:
    display(viz.complexity_figure(benches[name], metric, mode))

# %% [markdown]
# The fitted slopes (least squares of log value against log N over the long end,
# `elastic_edu.bench_report.summarise`) and the ratios at a few N, as `format_summary` prints them:

# %%
summaries = {name: summarise(b) for name, b in benches.items()}
for name, sm in summaries.items():
    print(f"== {name} ({benches[name]['device_name']})")
    print(format_summary(sm), end="\n\n")


# %% [markdown]
# ## 3. The paper's claims against these files
#
# For each file we take ELASTIC at its reference k (`summarise(...)["reference"]`), find the longest
# N at which it and a SASRec variant both finished, and compute the memory saved (1 − ELASTIC /
# SASRec) and the speed-up (SASRec time / ELASTIC time); a negative saving or a speed-up below one
# is printed as what it is, more memory or a slowdown. Points where SASRec ran out of memory or
# time while ELASTIC finished are listed separately: there the saving is not a percentage but the
# difference between running and not running.


# %%
def finished(b, mode):
    """(model, n) -> point, for the points of `mode` that finished."""
    return {
        (p["model"], p["n"]): p for p in b["points"] if p["mode"] == mode and p["status"] == "ok"
    }


def has(b, model, mode):
    return any(p["model"] == model and p["mode"] == mode for p in b["points"])


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


def claims(name, b, mode="inference"):
    ref = summaries[name]["reference"] or "elastic-k32"
    for base in ("sasrec-naive", "sasrec-sdpa"):
        if not has(b, base, mode):
            print(f"  {mode}: no {viz.display_name(base)} points in this file")
            continue
        found = longest_common(b, ref, base, mode)
        if not found:
            print(
                f"  {mode}: {viz.display_name(ref)} and {viz.display_name(base)} never both finished"
            )
            continue
        n, p, q = found
        saving, speedup = 1 - p["peak_mb"] / q["peak_mb"], q["latency_ms"] / p["latency_ms"]
        mem_word = "above" if saving >= PAPER_MEMORY_SAVING else "below"
        time_word = "above" if speedup >= PAPER_INFERENCE_SPEEDUP else "below"
        print(
            f"  {mode}, N={n}: {viz.display_name(ref)} uses {memory_words(saving)} than "
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
            print(f"    and at N={beyond} {viz.display_name(base)} did not finish, ELASTIC did")


for name, b in benches.items():
    print(f"{name} ({b['device_name']}, {b['settings']['dtype']}):")
    for mode in b["settings"]["modes"]:
        claims(name, b, mode)


# %% [markdown]
# The longest N is not the whole story. Below, for each file, the shortest measured N from which
# the reference ELASTIC is faster than each SASRec variant (the *crossover*), and what each fitted
# slope says. A slope near 0 means the latency hardly changes with N: fixed costs dominate. On a GPU
# that is typical of small models, whose time goes into launching many small kernels (retrieval,
# top-k, gathers, two attention steps per layer) rather than into arithmetic; there a quadratic
# model can be faster at short N because the GPU runs its N² work in parallel at little extra cost.


# %%
def crossover(b, a="elastic-k16", base="sasrec-sdpa", mode="inference"):
    """Smallest measured N from which a is faster than base at every longer N where both
    finished; 0 when there is no such N; None when the two never both finished."""
    ok = finished(b, mode)
    ns = [n for n in b["settings"]["lengths"] if (a, n) in ok and (base, n) in ok]
    if not ns:
        return None
    faster = [ok[(a, n)]["latency_ms"] < ok[(base, n)]["latency_ms"] for n in ns]
    return next((n for i, n in enumerate(ns) if all(faster[i:])), 0)


def describe_crossover(n, lengths):
    if n is None:
        return "cannot be compared: the file has no length where both finished"
    if n == 0:
        return f"at none of the lengths where both finished (up to {lengths[-1]})"
    return f"at every measured N (from {n})" if n == lengths[0] else f"from N={n} on"


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
    ref = summaries[name]["reference"] or "elastic-k32"
    print(f"{name} ({b['device_name']}, {b['settings']['dtype']}):")
    for mode in b["settings"]["modes"]:
        for base in ("sasrec-naive", "sasrec-sdpa"):
            if not has(b, base, mode):
                print(f"  {mode:<9} no {viz.display_name(base)} points in this file")
                continue
            n = crossover(b, ref, base, mode)
            where = describe_crossover(n, b["settings"]["lengths"])
            print(
                f"  {mode:<9} {viz.display_name(ref)} is faster than {viz.display_name(base)} {where}"
            )
    for label in (ref, "sasrec-naive", "sasrec-sdpa"):
        for mode, sl in summaries[name]["slopes"].get(label, {}).items():
            lat, mem = sl["latency_ms"], sl["peak_mb"]
            if lat is None and mem is None:
                continue  # fewer than two finished lengths: no slope
            fmt = lambda v: "-" if v is None else f"{v:.2f}"
            print(
                f"  {viz.display_name(label):<31} {mode:<9} slope over N={sl['n']}: latency "
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
# The measured ratios at each N, for the reference ELASTIC, and in words what fused attention does
# to each gap at the longest N: *narrows* it (ELASTIC's advantage shrinks but stays),
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
    ref = summaries[name]["reference"] or "elastic-k32"
    for mode in b["settings"]["modes"]:
        ok = finished(b, mode)
        rows = []
        for n in b["settings"]["lengths"]:
            if (ref, n) in ok and ("sasrec-naive", n) in ok and ("sasrec-sdpa", n) in ok:
                e_, nv, sd = ok[(ref, n)], ok[("sasrec-naive", n)], ok[("sasrec-sdpa", n)]
                mem = (e_["peak_mb"] / nv["peak_mb"], e_["peak_mb"] / sd["peak_mb"])
                speed = (nv["latency_ms"] / e_["latency_ms"], sd["latency_ms"] / e_["latency_ms"])
                rows.append((n, *mem, *speed))
        if not rows:
            continue
        print(
            f"{name}, {mode}: {viz.display_name(ref)} memory as a share of SASRec's, and its speed-up"
        )
        print(f"{'N':>7} {'mem/naive':>10} {'mem/sdpa':>9} {'x naive':>8} {'x sdpa':>7}")
        for n, mn, ms, xn, xs in rows:
            print(f"{n:>7} {mn:>10.1%} {ms:>9.1%} {xn:>8.1f} {xs:>7.1f}")
        n, mn, ms, xn, xs = rows[-1]
        memory = gap_words(1 / mn, 1 / ms, "memory", "leaner", "heavier")
        print(f"at N={n}, SDPA {memory}\n  and {gap_words(xn, xs, 'time', 'faster', 'slower')}\n")

# %% [markdown]
# How much of such a mask does the benchmark's SASRec-SDPA hold? SDPA turns a boolean mask into an
# additive float mask of the same shape (2 or 4 bytes a pair, by dtype), so the two together would
# take b·N²·(1 + bytes) bytes. Compare with the measured peak of SASRec-SDPA at inference:

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
            f"measured peak {p['peak_mb']:,.0f} MiB ({p['peak_mb'] / masks:.1%} of it)"
        )

# %% [markdown]
# The measured peak is a small fraction of what a mask alone would take: with the causal flag, flash
# attention's memory is linear in N, like ELASTIC's. Against it, ELASTIC's remaining advantage is
# time on the CPU (its FLOPs are linear, flash attention's quadratic) and little memory; on the GPU
# the words printed above say, per file, whether any of either is left or whether the gap reverses.
#
# ## 4. A live measurement
#
# The same benchmark, small enough for a notebook: three models, batch 2, a few lengths. On a CPU
# each point runs in a fresh process (so that its peak memory is its own); on a GPU in this process.
# Timings depend on the machine and on whatever else it is doing, so expect them to differ from the
# committed files and from run to run: this is a demonstration of the tool, not a measurement to
# quote.

# %%
LIVE_ARGS = [
    *("--models", "sasrec-naive", "sasrec-sdpa", "elastic", "--k", "16"),
    *("--lengths", *map(str, LIVE_LENGTHS), "--modes", *LIVE_MODES),
    *("--batch", "2", "--device", str(device), "--repeats", "3" if QUICK else "5"),
    *("--threads", "1", "--timeout", "60", "--seed", str(SEED)),
]
settings = bench.make_settings(LIVE_ARGS)
live = bench.run_bench(settings, log=print)

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
    print(f"  {viz.display_name(label):<31} {slope:.2f}")

# %%
for base in ("sasrec-naive", "sasrec-sdpa"):
    n = crossover(live, "elastic-k16", base)
    print(
        f"live: {viz.display_name('elastic-k16')} is faster than {viz.display_name(base)} "
        f"{describe_crossover(n, LIVE_LENGTHS)}"
    )

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
# `latency_ms`), find the smallest measured N from which `elastic-k16` inference is faster than
# `sasrec-sdpa` at that N and every longer measured N (0 if there is none).

# %%
crossover_n = None  # your answer, read from live["points"]

ok = check(
    "crossover N",
    crossover_n,
    crossover(live, "elastic-k16", "sasrec-sdpa"),
    hint="filter the ok inference points of the two models and compare latency_ms at each n",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# lat = {(p["model"], p["n"]): p["latency_ms"] for p in live["points"]
#        if p["mode"] == "inference" and p["status"] == "ok"}
# faster = [lat[("elastic-k16", n)] < lat[("sasrec-sdpa", n)] for n in LIVE_LENGTHS]
# crossover_n = next((n for i, n in enumerate(LIVE_LENGTHS) if all(faster[i:])), 0)
# ```
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
    next(n for n in range(1, 10_000) if dispatcher_flops(1, n, 64, D) < attention_flops(1, n, D)),
    hint="search n upward with the two formula functions, or solve n = e + sqrt(e**2 + 2ed)",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# `next(n for n in range(1, 10_000) if dispatcher_flops(1, n, 64, D) < attention_flops(1, n, D))`
# gives 175 (`dispatcher_crossover(64, 64)`: e + √(e² + 2ed) = 64 + √12288): more experts cost
# more per position, so the crossover moves up.
# </details>
#
# ## Summary
#
# * By formula, one self-attention layer costs 8bnd² + 4bn²d FLOPs and one dispatcher layer
#   8bnd² + 8bed² + 8bned: the quadratic term becomes linear, and the dispatcher is cheaper past
#   n = e + √(e² + 2ed). `FlopCounterMode` on the meta device agrees exactly.
# * The committed benchmark files (section 2) give the measured slopes and ratios, each within one
#   file; section 3 says, from the numbers, how they compare with the paper's "90% less memory,
#   2.7x faster inference" on each machine, where SASRec did not finish at all, and from which N
#   ELASTIC is the faster model. Its advantage is a long-sequence one.
# * Fused attention (SDPA with the causal flag) avoids storing SASRec's N × N score matrix, so its
#   memory grows linearly too, but not its quadratic FLOPs; section 3 prints, per machine, whether
#   ELASTIC's advantage narrows or reverses against it.
# * At short N, fixed costs dominate and slopes flatten; the asymptotic story needs long N.
#
# Next, `06_long_context`: what a long context buys when it is cheap, on a task built so that the
# signal lies far back.
