# %% [markdown]
# # 01 · SASRec and the quadratic wall
#
# SASRec (Kang & McAuley, ICDM 2018) is the standard transformer for next-item recommendation: it
# reads a user's history with **causal self-attention**, so the state at position t sees only
# items 1..t, and the state at the last position scores every item as the next one. ELASTIC is
# built to replace its attention, so we first take that attention apart.
#
# **Learning goals.** After this notebook you can
# 1. build causal multi-head self-attention by hand with einops, and check it against the
#    library's `CausalSelfAttention` (both back-ends) with the same weights.
# 2. see causality at work: changing a later item leaves every earlier output unchanged.
# 3. train a small SASRec, read its training curve and its N x N attention weights.
# 4. compute and measure the memory of the N x N score matrix: it grows as N², the quadratic wall.
#
# **Assumes.** notebook 00 (sequences, leave-one-out, full-ranking metrics); PyTorch
# modules, `softmax`, matrix products. The einops `einsum`/`rearrange` pattern strings are
# explained as we go: read `'b h n d, b h m d -> b h n m'` as "for every batch row b and head h,
# contract the feature axis d of queries at position n with keys at position m".
#
# **Paper or our decision?**
# - **paper** (ELASTIC abstract, arXiv 2408.09380): self-attention's O(N²) time and memory keep
#   sequential recommenders from modelling long behaviour sequences. Section 4 measures that.
# - SASRec's architecture is from its own paper; this library's details are **our decision**:
#   pre-norm blocks, learned positions counted from the end of the history, output scores as dot
#   products with the (tied) item embeddings, full-softmax cross-entropy, and a padded query that
#   reads itself so that no softmax row is empty.

# %% [markdown]
# ## Parameters
# Every knob and the seed; the cell ends with `setup_notebook(SEED)` (threads, seeds, device,
# figures: see notebook 00). `QUICK` (set by `ELASTIC_EDU_QUICK=1`) shrinks only the training
# run: the quick run is what CI executes on a 2-core CPU and what the saved outputs show, a
# demonstration rather than a result; without it the notebook trains with the library defaults,
# exactly as `python -m elastic_edu train --model sasrec --dataset ml-100k`.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0
DATASET = "ml-100k"  # MovieLens 100K when on disk, else the synthetic set
# the hand-built attention check
TOY_BATCH, TOY_LEN, TOY_DIM, TOY_HEADS = 2, 6, 8, 2
# SASRec training: quick mode overrides the CLI defaults (elastic_edu.experiment.default_configs)
SASREC_OVERRIDES = dict(dim=32, epochs=4, lr=2e-3) if QUICK else {}
CHANGED_POSITION = 30  # the causality demo changes the item at this position
# the score-matrix memory
MEM_BATCH, MEM_HEADS, MEM_DIM = 4, 2, 16
MEASURED_NS = [16, 32, 64, 128, 256, 512]  # measured as tensor sizes
ANALYTIC_NS = [2**i for i in range(4, 15)]  # 16 .. 16384, computed

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import math

import torch
from einops import einsum, rearrange

from elastic_edu import viz
from elastic_edu.data import leave_one_out, pad_left
from elastic_edu.tutorial import check, tutorial_data

# %% [markdown]
# ## 1. Causal self-attention, by hand
# For one head with width $d_h$, the input states $X \in \mathbb{R}^{N \times d}$ are projected
# to queries, keys and values $Q = XW_q$, $K = XW_k$, $V = XW_v$, and
#
# $$\text{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_h}} + M\Big)V,
# \qquad M_{tm} = \begin{cases} 0 & m \le t \text{ and } m \text{ is not padding} \\
# -\infty & \text{otherwise.}\end{cases}$$
#
# The mask M makes it **causal**: query position t reads key positions m ≤ t only. With h heads,
# each head does this on its own d/h slice of the features and the results are concatenated and
# projected by $W_o$. The score matrix $QK^\top$ has N x N entries per head and user: the wall.
#
# The library's `CausalSelfAttention` holds $W_q, W_k, W_v$ in one linear layer `to_qkv` whose
# output is laid out as `(three h d)`, and $W_o$ in `to_out`. We write the function with plain
# weight tensors so every step is visible.


# %%
def causal_self_attention(x, pad, w_qkv, b_qkv, w_out, b_out, heads):
    """x (b, n, d), pad (b, n) True at padding -> out (b, n, d), weights (b, h, n, m)."""
    # project to queries, keys and values, split into heads
    qkv = einsum(x, w_qkv, "b n d, o d -> b n o") + b_qkv  # (b, n, 3d)
    q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=heads)
    # every query against every key: the N x N score matrix
    sim = einsum(q, k, "b h n d, b h m d -> b h n m") / math.sqrt(q.shape[-1])
    # the mask: causal, never a padding key, and a padded query reads itself (no empty row)
    n = x.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()  # (n, m): True where m <= n
    readable = causal & ~rearrange(pad, "b m -> b 1 1 m")  # (b, 1, n, m)
    readable = readable | torch.eye(n, dtype=torch.bool)
    sim = sim.masked_fill(~readable, float("-inf"))  # (b, h, n, m)
    weights = sim.softmax(dim=-1)  # each row sums to 1 over m
    # read the values, merge the heads, project out
    out = einsum(weights, v, "b h n m, b h m d -> b h n d")
    out = rearrange(out, "b h n d -> b n (h d)")
    return einsum(out, w_out, "b n d, o d -> b n o") + b_out, weights


# %% [markdown]
# Now the library's layer with its own random weights, and our function fed **the same weights**.
# The `naive` back-end materialises the score matrix as we do; `sdpa` calls torch's fused
# `scaled_dot_product_attention`, which never hands the matrix back. Both must agree with us. The
# second toy user has two padding positions on the left (histories are left-padded).

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.nn import CausalSelfAttention
from elastic_edu.nn.attention import attention_mask

torch.manual_seed(SEED)
x = torch.randn(TOY_BATCH, TOY_LEN, TOY_DIM)
pad = torch.zeros(TOY_BATCH, TOY_LEN, dtype=torch.bool)
pad[1, :2] = True  # user 1: two padding positions on the left

naive = CausalSelfAttention(TOY_DIM, TOY_HEADS, backend="naive").eval()
sdpa = CausalSelfAttention(TOY_DIM, TOY_HEADS, backend="sdpa").eval()
sdpa.load_state_dict(naive.state_dict())  # the same weights in both back-ends

ours, our_weights = causal_self_attention(
    x,
    pad,
    naive.to_qkv.weight,
    naive.to_qkv.bias,
    naive.to_out.weight,
    naive.to_out.bias,
    heads=TOY_HEADS,
)
with torch.no_grad():
    lib_out, lib_weights = naive(x, pad, return_weights=True)
    sdpa_out, _ = sdpa(x, pad)
torch.testing.assert_close(ours, lib_out)
torch.testing.assert_close(our_weights, lib_weights)
torch.testing.assert_close(ours, sdpa_out)
n = TOY_LEN
hand_mask = (torch.ones(n, n, dtype=torch.bool).tril() & ~pad[:, None, None, :]) | torch.eye(
    n, dtype=torch.bool
)
assert torch.equal(hand_mask, attention_mask(pad))
print("hand-built == library naive == library sdpa (outputs and weights); masks equal")
print("weights of user 0, head 0 (rows: query t, columns: key m):")
print(our_weights[0, 0].detach().numpy().round(2))

# %% [markdown]
# The printed weights are lower-triangular: row t has non-zero weights only in columns 0..t, and
# every row sums to one. That triangle is the causal mask.
#
# ## 2. Causality, demonstrated
# Because position t never reads a later key, **changing a later item cannot change an earlier
# output**. That is what lets SASRec train on every position of a sequence at once (objective
# `all`: position t predicts item t+1) without ever seeing the answer. We check it on a whole
# SASRec model: replace the item at position 30 of a history and compare the states.

# %%
from elastic_edu.experiments import default_configs
from elastic_edu.models import build_model

data = tutorial_data(DATASET)
split = leave_one_out(data)
model_config, train_config = default_configs(
    "sasrec", data.num_items, seed=SEED, device=str(device), **SASREC_OVERRIDES
)
print(model_config)
print(train_config)

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
untrained = build_model(model_config).to(device).eval()
long_users = [u for u, h in enumerate(split.test.histories) if len(h) >= model_config.max_len]
items = pad_left([split.test.histories[long_users[0]]], model_config.max_len).to(device)  # (1, n)
changed = items.clone()
changed[0, CHANGED_POSITION] = items[0, CHANGED_POSITION] % data.num_items + 1  # another item
with torch.no_grad():
    before, after = untrained.encode(items).hidden, untrained.encode(changed).hidden  # (1, n, d)
earlier_same = torch.allclose(before[:, :CHANGED_POSITION], after[:, :CHANGED_POSITION])
later_changed = bool(
    (before[:, CHANGED_POSITION:] - after[:, CHANGED_POSITION:]).abs().amax(-1).gt(1e-4).all()
)
print(
    f"positions 0..{CHANGED_POSITION - 1} unchanged: {earlier_same}; "
    f"positions {CHANGED_POSITION}..{model_config.max_len - 1} all changed: {later_changed}"
)
assert earlier_same and later_changed

# %% [markdown]
# ## 3. Training a small SASRec
# `elastic_edu.experiment.run` is what the command line calls: it trains with `fit` (AdamW,
# full-softmax cross-entropy over all items, validation NDCG@10 after every epoch, early stopping,
# best weights kept), then evaluates on the test targets. SASRec trains with the objective `all`:
# every position of a training window predicts the item after it.
#
# In quick mode this is a few epochs of a narrow model (the cell prints its time): a
# demonstration that the pieces work, not SASRec's result. The full run is
# `python -m elastic_edu train --model sasrec --dataset ml-100k`: the library defaults (d = 64,
# N = 50, up to 200 epochs with patience 20, no time limit). Running this notebook without
# `ELASTIC_EDU_QUICK` trains exactly that configuration in the next cell. The reported SASRec
# numbers (the README's Results) come from `results/sasrec-ml-100k-cpu-amd-epyc.json`, made by
# that command on a 2-core AMD EPYC; this notebook quotes none of them.

# %%
from elastic_edu.experiments import run

result = run(split, model_config, train_config, dataset=data.name, progress=not QUICK)
sasrec = result["model"].eval()
for row in result["history"]:
    print(
        f"epoch {row['epoch']:>3}  loss {row['loss']:.3f}  valid NDCG@10 {row['valid_NDCG@10']:.4f}"
    )
print(
    f"best epoch {result['best_epoch']} ({result['stopped']}), {result['train_seconds']:.0f} s on {result['device_name']}"
)

# %%
from elastic_edu import ModelConfig
from elastic_edu.evaluation import evaluate

# popularity, the floor of notebook 00: built from the registry, counted instead of trained
popularity = build_model(ModelConfig(model="popularity", num_items=data.num_items))
popularity = popularity.count(split.train).to(device)
pop_test = evaluate(popularity, split.test)
print(f"{'test (all items ranked)':<26}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}")
for label, metrics in [
    ("popularity", pop_test),
    ("SASRec, unmasked", result["test"]),
    ("SASRec, history masked", result["test_masked"]),
]:
    print(f"{label:<26}" + "".join(f"{metrics[m]:>8.4f} " for m in ("HR@10", "NDCG@10", "MRR@10")))
assert result["test"]["NDCG@10"] > pop_test["NDCG@10"], "SASRec should beat the popularity floor"

# %% [markdown]
# The training curve: validation NDCG@10 (left) and the training loss (right), one point per
# epoch. The loss is the mean cross-entropy in nats; log(I) would be a uniform guess.

# %%
print(f"uniform guess: log({data.num_items}) = {math.log(data.num_items):.2f} nats")
viz.training_curves({"SASRec": result["history"]})

# %% [markdown]
# ### What the attention looks at
# `encode(items, return_weights=True)` returns an `EncoderOutput` whose `attention` holds one
# (b, h, n, n) tensor per layer. Below: one user's last N items, the first layer, heads averaged.
# Rows are query positions (the state being computed), columns the positions read. The empty upper
# triangle is the causal mask; position 49 is the newest item, whose state scores the next item.

# %%
with torch.no_grad():
    out = sasrec.encode(items, return_weights=True)
weights = out.attention[0][0].mean(dim=0)  # first layer, first user, mean over heads: (n, n)
assert len(out.attention) == model_config.layers and weights.shape == (model_config.max_len,) * 2
assert torch.all(weights.triu(diagonal=1) == 0)  # nothing above the diagonal: causal
viz.attention_heatmap(weights, title="SASRec attention, layer 1, heads averaged (one user)")

# %% [markdown]
# ## 4. The quadratic wall
# The naive back-end stores one score per (user, head, query, key): $b \cdot h \cdot N^2$
# numbers, 4 bytes each in float32. Doubling the history quadruples it. We compute the bytes
# analytically and measure them as the size of the attention tensor a one-layer SASRec returns.
# For contrast, the states themselves, (b, N, d), grow linearly.

# %% [markdown]
# The formula is one line, kept in the library with the other cost formulas
# (`elastic_edu.flops`, which notebooks 02, 03 and 05 use too):
#
# ```python
# def score_matrix_bytes(b, h, n, bytes_per_number=4):
#     return b * h * n * n * bytes_per_number
# ```

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.nn.flops import score_matrix_bytes

torch.manual_seed(SEED)
probe = build_model(
    ModelConfig(
        model="sasrec",
        num_items=100,
        max_len=max(MEASURED_NS),
        dim=MEM_DIM,
        heads=MEM_HEADS,
        layers=1,
        dropout=0.0,
        attention="naive",
    )
).eval()
measured = {}
for n in MEASURED_NS:
    ids = torch.randint(1, 101, (MEM_BATCH, n))
    with torch.no_grad():
        w = probe.encode(ids, return_weights=True).attention[0]  # (b, h, n, n)
    measured[n] = w.nelement() * w.element_size()
    assert measured[n] == score_matrix_bytes(MEM_BATCH, MEM_HEADS, n)
    print(
        f"N = {n:>4}: weights {tuple(w.shape)}, {measured[n] / 2**20:8.3f} MiB (= b h N^2 4 bytes)"
    )

# %%
# NBVAL_CHECK_OUTPUT
for n in ANALYTIC_NS[-4:]:
    print(
        f"N = {n:>5}: score matrix {score_matrix_bytes(MEM_BATCH, MEM_HEADS, n) / 1e9:7.3f} GB, "
        f"states (b, N, d=64) {MEM_BATCH * n * 64 * 4 / 1e6:6.2f} MB"
    )
ratios = [
    score_matrix_bytes(MEM_BATCH, MEM_HEADS, 2 * n) / score_matrix_bytes(MEM_BATCH, MEM_HEADS, n)
    for n in ANALYTIC_NS[:-1]
]
assert set(ratios) == {4.0}
print("doubling N multiplies the score matrix by", ratios[0])

# %%
wall = {
    "score matrix, b h N² x 4 bytes": (
        ANALYTIC_NS,
        [score_matrix_bytes(MEM_BATCH, MEM_HEADS, n) for n in ANALYTIC_NS],
    ),
    "measured tensor size": (list(measured), list(measured.values())),
    "states (b, N, d = 64)": (ANALYTIC_NS, [MEM_BATCH * n * 64 * 4 for n in ANALYTIC_NS]),
}
viz.loglog_figure(
    wall,
    f"The quadratic wall (b = {MEM_BATCH}, h = {MEM_HEADS}, float32)",
    "history length N (items)",
    "bytes",
    dashed={"states (b, N, d = 64)"},
    markers={"measured tensor size"},
)

# %% [markdown]
# On a log-log plot a power law is a straight line whose slope is the exponent (each legend entry
# gives its fitted slope): 2 for the score matrix, 1 for the states. The fused `sdpa` back-end need not store the matrix, but
# it still computes all N² scores. How that shows in practice is measured by the project's
# benchmark (`python -m elastic_edu bench`), which times whole models up to N = 16384: if a results
# file is in `results/`, the next cell prints the fitted log-log slopes of latency and peak memory
# (slope 2: quadratic, slope 1: linear) and plots the latency. Notebook 02 builds the layer behind
# the ELASTIC curve in it; notebook 05 reads every benchmark file and says, per file, which ELASTIC
# form its `elastic-k<K>` label names and how it measured memory.

# %%
from elastic_edu.bench.report import load_results, summarise
from elastic_edu.paths import repo_root

bench_files = sorted((repo_root() / "results").glob("bench-*.json")) if repo_root() else []
# the first file that times inference (stream-only files measure something else)
benches = [(path, load_results(path)) for path in bench_files]
benches = [(p, b) for p, b in benches if any(x["mode"] == "inference" for x in b["points"])]
if benches:
    path, bench = benches[0]
    print(f"{path.name}: {bench.get('device_name')}, torch {bench.get('torch')}")
    if "ru_maxrss" in bench["settings"].get("memory", ""):  # the bench's first method
        print(
            "  made before the causal ELASTIC existed: its elastic-k<K> is the paper's non-causal "
            "ELASTIC (today's elastic-bidir);\n  peak memory: the process's resident size "
            "(results/README.md)"
        )
    slopes = summarise(bench)["slopes"]
    print(f"{'model':<20}{'mode':<11}{'N range':<12}{'latency slope':>14}{'memory slope':>13}")
    for label, by_mode in slopes.items():
        for mode, sl in by_mode.items():
            f = lambda v: "-" if v is None else f"{v:.2f}"
            print(
                f"{label:<20}{mode:<11}{'-'.join(map(str, sl['n'] or [])):<12}"
                f"{f(sl['latency_ms']):>14}{f(sl['peak_mb']):>13}"
            )
    fig = viz.complexity_figure(bench, "latency_ms", "inference")
else:
    fig = None
    print(
        "no benchmark results in results/: run `python -m elastic_edu bench --out results/bench-cpu.json`"
    )
fig

# %% [markdown]
# ## Exercises
# Replace each `None`, run the cell, then the check cell. Solutions follow.
#
# **Exercise 1.** How much memory (in GB, 10⁹ bytes) do the float32 attention weights of one
# layer take at N = 16384 with a batch of b = 4 users and h = 2 heads?

# %%
answer_gb = None  # a float, in GB

# %%
ok = check(
    "score matrix at N = 16384",
    answer_gb,
    score_matrix_bytes(4, 2, 16384) / 1e9,
    atol=0.01,
    hint="b * h * N * N numbers, 4 bytes each; divide by 1e9.",
)

# %% [markdown]
# *Solution 1.*

# %%
# NBVAL_CHECK_OUTPUT
solution_gb = 4 * 2 * 16384**2 * 4 / 1e9
print(f"{solution_gb:.3f} GB")
assert check(
    "score matrix at N = 16384", solution_gb, score_matrix_bytes(4, 2, 16384) / 1e9, atol=0.01
)

# %% [markdown]
# **Exercise 2.** In a history of 10 items with no padding, which positions (counting from 0) can
# the query at position 5 attend to? Give a Python list.

# %%
answer_positions = None  # a list of ints

# %%
mask10 = attention_mask(torch.zeros(1, 10, dtype=torch.bool))[0, 0]  # (n, m)
ok = check(
    "positions read by query 5",
    answer_positions,
    torch.nonzero(mask10[5]).flatten().tolist(),
    hint="Causal: a query reads itself and every earlier position.",
)

# %% [markdown]
# *Solution 2.*

# %%
# NBVAL_CHECK_OUTPUT
assert check(
    "positions read by query 5", list(range(0, 6)), torch.nonzero(mask10[5]).flatten().tolist()
)

# %% [markdown]
# **Exercise 3.** Use the causality test of section 2 on your own: with the trained `sasrec`,
# change the item at position 10 of `items`. How many of the 50 output positions keep their
# state (within `torch.allclose`)?

# %%
answer_unchanged = None  # an int


# %%
def unchanged_positions(model, items, position):
    other = items.clone()
    other[0, position] = items[0, position] % data.num_items + 1
    with torch.no_grad():
        a, b = model.encode(items).hidden[0], model.encode(other).hidden[0]  # (n, d)
    return sum(torch.allclose(a[t], b[t]) for t in range(a.shape[0]))


ok = check(
    "unchanged positions",
    answer_unchanged,
    unchanged_positions(sasrec, items, 10),
    hint="Positions before the changed one cannot see it.",
)

# %% [markdown]
# *Solution 3.* Positions 0..9 cannot see position 10: ten states stay the same.

# %%
# NBVAL_CHECK_OUTPUT
assert check("unchanged positions", 10, unchanged_positions(sasrec, items, 10))

# %% [markdown]
# ## Summary
# - Causal self-attention is four einops lines and a mask; our hand-built version equals the
#   library's `CausalSelfAttention` with the same weights, on both the naive and the fused back-end.
# - Causality: changing item t changes no state before t, which is why SASRec may train on every
#   position at once.
# - A short SASRec run beats the popularity floor (numbers above); the full run is
#   `python -m elastic_edu train --model sasrec --dataset ml-100k`.
# - The attention weights are an N x N matrix per user and head: 8.6 GB of float32 for one layer
#   at N = 16384, b = 4, h = 2. Doubling N quadruples it. That is the wall ELASTIC's abstract
#   (**paper**) sets out to remove.
#
# Next, `02_linear_dispatcher_attention`: k interest experts read the history and every position
# reads the experts, so the cost grows as N k instead of N².
