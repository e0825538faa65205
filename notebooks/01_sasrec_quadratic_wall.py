# %% [markdown]
# # 01 · SASRec and the quadratic wall
#
# *About 17 minutes to read; about two minutes on a 2-core CPU in quick mode; no GPU needed.*
#
# SASRec (Kang & McAuley, ICDM 2018) is the standard transformer for next-item recommendation: it
# reads a history with **causal self-attention**, so the state at position t sees only items
# 1..t, and the state at the last position scores every item as the next one. ELASTIC replaces
# this attention, so we first take it apart. After this notebook you can build causal multi-head
# self-attention by hand with einops and check it against the library, see causality at work,
# train a small SASRec, and say why its N x N score matrix is a wall.
#
# **Paper or ours?** The **paper** (ELASTIC abstract, arXiv 2408.09380) says self-attention's
# O(N²) time and memory keep sequential recommenders from long histories. SASRec's design is its
# own paper's; this library's details (pre-norm blocks, learned positions counted from the end,
# scores as dot products with the item embeddings, full-softmax cross-entropy) are **ours**.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0
DATASET = "ml-100k"  # MovieLens 100K when on disk, else the synthetic set
TOY_BATCH, TOY_LEN, TOY_DIM, TOY_HEADS = 2, 6, 8, 2  # the hand-built attention check
SASREC_OVERRIDES = dict(dim=32, epochs=4, lr=2e-3) if QUICK else {}  # quick: a short run
CHANGED_POSITION = 30  # the causality demo changes the item at this position
MEM_BATCH, MEM_HEADS = 4, 2  # the score matrix's size
MEASURED_NS = [64, 128, 256, 512]  # measured as tensor sizes

setup = setup_notebook(SEED)  # threads, seeds, device, figures (notebook 00)
device = setup.device

# %% [markdown]
# ## 1. Causal self-attention, by hand
# For one head of width $d_h$, the states $X$ (N x d) become queries, keys and values
# $Q = XW_q$, $K = XW_k$, $V = XW_v$, and
#
# $$\text{Attention}(Q, K, V) = \operatorname{softmax}\!\Big(\frac{QK^\top}{\sqrt{d_h}} + M\Big)V,
# \qquad M_{tm} = 0 \text{ if } m \le t \text{ and } m \text{ is not padding, else } -\infty .$$
#
# The mask M makes it **causal**. With h heads each works on its own d/h slice, and $W_o$ merges
# them. The score matrix $QK^\top$ has N x N entries per head and user: the wall. Read a pattern
# such as `'b h n d, b h m d -> b h n m'` as: for every user b and head h, contract the features d
# of query position n with those of key position m.

# %%
import math

import torch
from einops import einsum, rearrange

from elastic_edu import viz
from elastic_edu.nn import CausalSelfAttention


def causal_self_attention(x, pad, w_qkv, b_qkv, w_out, b_out, heads):
    """x (b, n, d), pad (b, n) True at padding -> out (b, n, d), weights (b, h, n, m)."""
    qkv = einsum(x, w_qkv, "b n d, o d -> b n o") + b_qkv  # (b, n, 3d)
    q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=heads)
    sim = einsum(q, k, "b h n d, b h m d -> b h n m") / math.sqrt(q.shape[-1])  # N x N
    n = x.shape[1]
    readable = torch.ones(n, n, dtype=torch.bool).tril() & ~rearrange(pad, "b m -> b 1 1 m")
    readable = readable | torch.eye(n, dtype=torch.bool)  # a padded query reads itself
    weights = sim.masked_fill(~readable, float("-inf")).softmax(dim=-1)  # (b, h, n, m)
    out = rearrange(einsum(weights, v, "b h n m, b h m d -> b h n d"), "b h n d -> b n (h d)")
    return einsum(out, w_out, "b n d, o d -> b n o") + b_out, weights


# %% [markdown]
# The library's `CausalSelfAttention` with random weights, and our function fed the same weights.
# Its `naive` back-end materialises the score matrix as we do; `sdpa` calls torch's fused
# `scaled_dot_product_attention`, which never hands the matrix back. User 1 is left-padded.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
x = torch.randn(TOY_BATCH, TOY_LEN, TOY_DIM)
pad = torch.zeros(TOY_BATCH, TOY_LEN, dtype=torch.bool)
pad[1, :2] = True
naive = CausalSelfAttention(TOY_DIM, TOY_HEADS, backend="naive").eval()
sdpa = CausalSelfAttention(TOY_DIM, TOY_HEADS, backend="sdpa").eval()
sdpa.load_state_dict(naive.state_dict())  # the same weights in both back-ends
with torch.no_grad():
    ours, our_weights = causal_self_attention(x, pad, naive.to_qkv.weight, naive.to_qkv.bias,
                                              naive.to_out.weight, naive.to_out.bias, TOY_HEADS)  # fmt: skip
    lib_out, lib_weights = naive(x, pad, return_weights=True)
    sdpa_out, _ = sdpa(x, pad)
torch.testing.assert_close(ours, lib_out)
torch.testing.assert_close(our_weights, lib_weights)
torch.testing.assert_close(ours, sdpa_out)
print("hand-built == library naive == library sdpa; weights of user 0, head 0:")
print(our_weights[0, 0].numpy().round(2))

# %% [markdown]
# The weights are lower-triangular: row t reads columns 0..t only, and each row sums to one.
#
# ## 2. Causality, and training on every position
# Since position t never reads a later key, **changing a later item cannot change an earlier
# output**. That lets SASRec train with the objective `all`: every position t of a training window
# predicts item t+1, all at once, without ever seeing its answer. We check it on a whole SASRec
# (built as the command line builds it) by changing the item at position 30 of a history.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.data import leave_one_out, pad_left
from elastic_edu.experiments import default_configs
from elastic_edu.models import build_model
from elastic_edu.tutorial import tutorial_data

data = tutorial_data(DATASET)
split = leave_one_out(data)
model_config, train_config = default_configs("sasrec", data.num_items, seed=SEED,
                                             device=str(device), **SASREC_OVERRIDES)  # fmt: skip
torch.manual_seed(SEED)
untrained = build_model(model_config).to(device).eval()
history = next(h for h in split.test.histories if len(h) >= model_config.max_len)
items = pad_left([history], model_config.max_len).to(device)  # (1, n)
changed = items.clone()
changed[0, CHANGED_POSITION] = items[0, CHANGED_POSITION] % data.num_items + 1  # another item
with torch.no_grad():
    before, after = untrained.encode(items).hidden, untrained.encode(changed).hidden  # (1, n, d)
moved = (before - after).abs().amax(-1)[0] > 1e-4  # (n,)
print(f"states that changed: before position {CHANGED_POSITION}: {int(moved[:CHANGED_POSITION].sum())}, "
      f"from it on: {int(moved[CHANGED_POSITION:].sum())} of {len(moved) - CHANGED_POSITION}")  # fmt: skip
assert not moved[:CHANGED_POSITION].any() and moved[CHANGED_POSITION:].all()

# %% [markdown]
# ## 3. Training a small SASRec
# `elastic_edu.experiments.run` is what the command line calls: `fit` (AdamW, full-softmax
# cross-entropy over all items, validation NDCG@10 after every epoch, early stopping), then the
# test metrics. In quick mode this is a few epochs of a narrow model, a demonstration, not
# SASRec's result; without `ELASTIC_EDU_QUICK` the cell trains the library defaults, exactly as
# `python -m elastic_edu train --model sasrec --dataset ml-100k`.
#
# Where reported numbers live: `results/sasrec-ml-100k-cpu-amd-epyc.json` holds one such full
# SASRec run (seed 0, the command above, on a 2-core AMD EPYC); the README's results table comes
# from `results/accuracy-ml-100k-cpu-amd-epyc.json`, the converged comparison of every model over
# three seeds (`python -m elastic_edu compare`). This notebook quotes neither.

# %%
from elastic_edu import ModelConfig
from elastic_edu.evaluation import evaluate
from elastic_edu.experiments import run

result = run(split, model_config, train_config, dataset=data.name, progress=not QUICK)
sasrec = result["model"].eval()
for row in result["history"]:
    print(
        f"epoch {row['epoch']:>3}  loss {row['loss']:.3f}  valid NDCG@10 {row['valid_NDCG@10']:.4f}"
    )
popularity = build_model(ModelConfig(model="popularity", num_items=data.num_items))
pop_test = evaluate(popularity.count(split.train).to(device), split.test)
print(
    f"test NDCG@10, all items ranked: SASRec {result['test']['NDCG@10']:.4f}, "
    f"popularity {pop_test['NDCG@10']:.4f} (uniform loss: log I = {math.log(data.num_items):.2f})"
)
assert result["test"]["NDCG@10"] > pop_test["NDCG@10"], "SASRec should beat the popularity floor"

# %% [markdown]
# What the trained attention looks at: `encode(items, return_weights=True)` returns one
# (b, h, n, n) tensor per layer. Below, one user's last N items, first layer, heads averaged; rows
# are the states computed, columns the positions read, and the empty upper triangle is the mask.

# %%
with torch.no_grad():
    weights = sasrec.encode(items, return_weights=True).attention[0][0].mean(dim=0)  # (n, n)
assert torch.all(weights.triu(diagonal=1) == 0)  # nothing above the diagonal: causal
viz.attention_heatmap(weights, title="SASRec attention, layer 1, heads averaged (one user)")

# %% [markdown]
# ## 4. The quadratic wall
# The naive back-end stores one score per (user, head, query, key): $b \cdot h \cdot N^2$ numbers
# of 4 bytes (`elastic_edu.nn.flops.score_matrix_bytes`). We measure it as the size of the weights
# a one-layer SASRec returns, then extrapolate: doubling N quadruples it.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.nn.flops import score_matrix_bytes

torch.manual_seed(SEED)
probe = build_model(ModelConfig(model="sasrec", num_items=100, max_len=max(MEASURED_NS), dim=16,
                                heads=MEM_HEADS, layers=1, attention="naive")).eval()  # fmt: skip
for n in MEASURED_NS:
    with torch.no_grad():
        w = probe.encode(torch.randint(1, 101, (MEM_BATCH, n)), return_weights=True).attention[0]
    assert w.nelement() * w.element_size() == score_matrix_bytes(MEM_BATCH, MEM_HEADS, n)
    print(f"N = {n:>5}: weights {tuple(w.shape)}, {w.nelement() * 4 / 2**20:7.2f} MiB (measured)")
for n in (4096, 8192, 16384):
    print(
        f"N = {n:>5}: {score_matrix_bytes(MEM_BATCH, MEM_HEADS, n) / 1e9:7.2f} GB (b h N² x 4 bytes)"
    )

# %% [markdown]
# The fused `sdpa` back-end need not store the matrix, but it still computes all N² scores. The
# project's benchmark (`python -m elastic_edu bench`) times whole models up to N = 32768.
# `results/bench-cpu-amd-epyc.json` (batch 4, float32, a 2-core AMD EPYC CPU) holds both SASRec
# back-ends and ELASTIC, the causal model `--model elastic` trains, whose layer notebook 02
# builds (here with k = 32 experts). On log-log axes a power law is a straight line whose slope is
# its exponent; each legend entry gives its fitted slope (2 quadratic, 1 linear), and the dashed
# lines are the counted FLOPs.

# %%
from elastic_edu.bench.report import load_results
from elastic_edu.paths import repo_root
from elastic_edu.tutorial import bench_models

bench = load_results(repo_root() / "results" / "bench-cpu-amd-epyc.json")
shown = bench_models(bench, ["sasrec-naive", "sasrec-sdpa", "elastic-causal-k32"], "inference")
viz.complexity_figure(shown, "latency_ms", "inference")

# %% [markdown]
# ## Summary
# - Causal self-attention is four einops lines and a mask; ours equals the library's
#   `CausalSelfAttention` on both back-ends.
# - Causality: changing item t changes no state before t, which is why SASRec may train on every
#   position at once (objective `all`).
# - A short SASRec run beats the popularity floor (numbers above).
# - The attention weights are an N x N matrix per user and head: doubling N quadruples them. In
#   the benchmark both SASRec back-ends climb with log-log slopes near 2 (the naive one runs out
#   of memory or time beyond N = 8192) while ELASTIC's slope is about 1. That is the wall the
#   **paper** sets out to remove.
#
# Next, `02_linear_dispatcher_attention`: k interest experts read the history and every position
# reads the experts, so the cost grows as N·k instead of N².
