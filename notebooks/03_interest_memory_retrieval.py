# %% [markdown]
# # 03 · Interest memory retrieval: product keys
#
# ELASTIC gives every user a handful of *interest experts*. Instead of learning the same k experts for
# everyone, it **retrieves** each user's k experts from a large learnable *interest memory bank* with
# M slots, "at negligible cost". This notebook opens that retrieval step.
#
# **Learning goals.** After this notebook you can
#
# 1. build a product-key search (Lample et al., 2019) by hand with `einops` and `topk`, and say why it
#    returns the *exact* top k of all M = m² slots when c ≥ k, and what goes wrong when c < k;
# 2. count its cost against memory size (FLOPs and measured latency) and compare it with scoring
#    every slot;
# 3. measure slot usage (fraction of slots ever retrieved, usage entropy), recognise *collapse*, and
#    spread the load with a sub-key balance loss;
# 4. follow the gradient: only the retrieved value rows, the sub-keys that formed them and the query
#    network learn from a batch.
#
# **Assumes.** PyTorch tensors and autograd; `einsum`/`rearrange` from einops (the pattern string is
# the shape documentation; axis letters are listed in `help(elastic_edu)`). No recommender background
# is needed: a *user history* is just a list of item ids, and the model turns it into vectors.
#
# **Paper or our decision?** The ELASTIC paper (arXiv 2408.09380; only its abstract is at hand) states
# that an interest memory retrieval step keeps a vast memory bank and sparsely retrieves each user's
# interests at negligible cost, so that the interest space grows while compute stays fixed
# (**paper**). *How* it is retrieved here, a product-key memory with a layer-normalised query and
# softmax gates, is **our decision**, following Lample et al. (NeurIPS 2019, "Large Memory Layers with
# Product Keys").

# %% [markdown]
# ## Parameters
#
# Every knob of this notebook, and the seed, live in the next cell, which ends with
# `setup_notebook(SEED)` (threads, seeds, device, figures: see notebook 00). `ELASTIC_EDU_QUICK=1`
# (what CI sets, and what the saved outputs show) picks a small model and a short training run so
# that the notebook runs in under a minute on a 2-core CPU: a demonstration, not a result.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0

# the product-key search built by hand
M_SUB = 32  # m: sub-keys per half, so M = m*m = 1024 slots
KEY_DIM = 32  # d_k: width of the query and of a full key (two halves of 16)
K = 8  # k: experts (slots) retrieved per user
C = 8  # c: candidates kept per half; c >= k makes the search exact
N_QUERIES = 512  # random queries for the exactness checks
C_SWEEP = [3, 4, 6, 8, 16]  # c values tried against brute force (c*c >= k)

# cost against memory size
SIZES = [16, 32, 64, 128, 256, 512, 1024]  # m; M = m*m goes up to 1,048,576 slots
TIMING_USERS = 16  # queries per timed call
REPEATS = 5 if QUICK else 20  # timed calls per point (median)
TIMING_THREADS = 1  # CPU threads while timing: a shared machine's other work distorts more threads

# slot usage and collapse
BIAS_NORM = 1.0  # length of the constant bias added to the query in the collapse demo
MODEL_NAME = "elastic-bidir"  # the paper's reading: the retrieval query reads the window
MODEL = (
    dict(dim=32, heads=2, layers=1, max_len=50, num_experts=8, subkeys=32, candidates=8, key_dim=32)
    if QUICK
    else dict(max_len=50, num_experts=8, subkeys=32, candidates=8)
)
TRAIN = (
    dict(objective="cut", epochs=3, cuts_per_user=4, batch_size=256, lr=3e-3, max_minutes=1.0)
    if QUICK
    else dict(objective="cut", epochs=30, cuts_per_user=8, lr=1e-3, max_minutes=10.0)
)
BALANCE_WEIGHTS = (0.01, 0.1)  # MemoryConfig.balance of the runs compared with 0 (no balance loss)

# gating demo: a tiny memory whose gradients can be listed row by row
TINY = dict(dim=8, key_dim=8, subkeys=4, num_experts=3, candidates=3)

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import copy
import math

import torch
from einops import einsum, rearrange
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from elastic_edu import viz
from elastic_edu.bench.profile import time_runs
from elastic_edu.data import leave_one_out
from elastic_edu.evaluation import slot_counts, usage_stats
from elastic_edu.experiments import default_configs
from elastic_edu.models import build_model
from elastic_edu.nn import ProductKeyMemory, product_key_topk
from elastic_edu.nn.flops import bruteforce_key_flops, product_key_flops
from elastic_edu.nn.reference import full_keys, product_key_bruteforce
from elastic_edu.training import fit, seed_everything
from elastic_edu.tutorial import check, tutorial_data

# %% [markdown]
# ## 1. The product-key search, by hand
#
# A memory slot s has a key of width d_k. Scoring all M keys against a query q costs M·d_k
# multiply-adds per user: with M = 1024² that is a billion numbers per user. Product keys avoid it.
#
# **The idea (Lample et al. 2019).** Split the query in two halves, q = [q₁ ; q₂], and keep two small
# *sub-key* tables K₁ and K₂ of m rows each (width d_k/2). Slot s = i·m + j has the key [K₁ᵢ ; K₂ⱼ],
# so its score splits into two independent parts:
#
#   score(q, s) = q · [K₁ᵢ ; K₂ⱼ] = q₁·K₁ᵢ + q₂·K₂ⱼ
#
# There are m² slots but only 2m sub-keys to score. The search:
#
# 1. score the m sub-keys of each half: s₁ = q₁K₁ᵀ, s₂ = q₂K₂ᵀ (each of length m);
# 2. keep the top c of each half;
# 3. add the c·c pairs s₁ᵢ + s₂ⱼ and keep the top k; the slot of pair (i, j) is i·m + j.
#
# We start from random sub-keys and random queries, drawn on the CPU with a fixed seed (so that
# every machine sees the same numbers) and then moved to the device.

# %%
gen = torch.Generator().manual_seed(SEED)
half = KEY_DIM // 2
keys1 = torch.randn(M_SUB, half, generator=gen).to(device)  # K1 (m, d_k/2)
keys2 = torch.randn(M_SUB, half, generator=gen).to(device)  # K2 (m, d_k/2)
q = torch.randn(N_QUERIES, KEY_DIM, generator=gen).to(device)  # (b, d_k), one query per user

# step 1: split the query and score the sub-keys of each half
q1, q2 = rearrange(q, "b (two d) -> two b d", two=2)
s1 = einsum(q1, keys1, "b d, m d -> b m")
s2 = einsum(q2, keys2, "b d, m d -> b m")
print("q1", tuple(q1.shape), "s1", tuple(s1.shape), "s2", tuple(s2.shape))

# %% [markdown]
# Step 2 keeps the best c sub-keys of each half; step 3 adds every kept pair (a broadcast sum makes
# the c × c grid) and keeps the best k of the c² pair scores. `topk` returns positions inside the
# c × c grid; `// c` and `% c` turn a grid position back into the two sub-key ids.

# %%
# step 2: keep the best c of each half
top1, idx1 = s1.topk(C, dim=-1)  # (b, c) scores and sub-key ids of half 1
top2, idx2 = s2.topk(C, dim=-1)  # (b, c)

# step 3: all c*c pair scores, then the best k pairs
pairs = rearrange(top1, "b c -> b c 1") + rearrange(top2, "b c -> b 1 c")  # (b, c, c)
scores, best = rearrange(pairs, "b c1 c2 -> b (c1 c2)").topk(K, dim=-1)  # (b, k)
i = idx1.gather(1, best // C)  # (b, k) sub-key id in half 1
j = idx2.gather(1, best % C)  # (b, k) sub-key id in half 2
slots = i * M_SUB + j  # (b, k) slot ids in [0, m*m)
print("pairs", tuple(pairs.shape), "slots", tuple(slots.shape))

# %% [markdown]
# The best three slots of the first user, each score taken apart into its two halves (the sum of the
# two columns is the slot's score):

# %%
# NBVAL_CHECK_OUTPUT
for r in range(3):
    a, b_ = int(i[0, r]), int(j[0, r])
    print(
        f"slot {int(slots[0, r]):4d} = {a:2d}*{M_SUB} + {b_:2d}: "
        f"q1.K1[{a}] = {float(s1[0, a]):6.3f}  q2.K2[{b_}] = {float(s2[0, b_]):6.3f}  "
        f"score = {float(scores[0, r]):6.3f}"
    )
assert torch.allclose(scores[0], s1[0, i[0]] + s2[0, j[0]])


# %% [markdown]
# The same three steps as one function, so that we can call it with other c:


# %%
def search_by_hand(q, keys1, keys2, k, c):
    """The steps above. q (b, d_k), sub-keys (m, d_k/2) -> scores (b, k), slots (b, k)."""
    m = keys1.shape[0]
    q1, q2 = rearrange(q, "b (two d) -> two b d", two=2)
    top1, idx1 = einsum(q1, keys1, "b d, m d -> b m").topk(c, dim=-1)  # (b, c)
    top2, idx2 = einsum(q2, keys2, "b d, m d -> b m").topk(c, dim=-1)  # (b, c)
    pairs = rearrange(top1, "b c -> b c 1") + rearrange(top2, "b c -> b 1 c")
    scores, best = rearrange(pairs, "b c1 c2 -> b (c1 c2)").topk(k, dim=-1)  # (b, k)
    return scores, idx1.gather(1, best // c) * m + idx2.gather(1, best % c)


# %% [markdown]
# ### Check 1: our search agrees with the library and with brute force
#
# The library's version is `elastic_edu.nn.product_key_topk`. The slow reference
# `elastic_edu.nn.reference.product_key_bruteforce` builds all M = m² full keys [K₁ᵢ ; K₂ⱼ]
# (`full_keys`), scores every one of them in float64 and takes the top k: the answer the product-key
# search must reproduce.

# %%
# NBVAL_CHECK_OUTPUT
hand_scores, hand_slots = search_by_hand(q, keys1, keys2, K, C)
lib_scores, lib_slots = product_key_topk(q, keys1, keys2, K, C)
bf_scores, bf_slots = product_key_bruteforce(q, keys1, keys2, K)

torch.testing.assert_close(hand_scores, lib_scores)
assert torch.equal(hand_slots, lib_slots)
same = (hand_slots.sort(dim=1).values == bf_slots.sort(dim=1).values).all(dim=1)
torch.testing.assert_close(hand_scores.double(), bf_scores, rtol=1e-5, atol=1e-5)
print(
    f"by hand == library: True; by hand == brute force over all {M_SUB**2} slots for "
    f"{int(same.sum())} of {N_QUERIES} users"
)
assert same.all()

# %% [markdown]
# ### Why c ≥ k is enough, and what happens below it
#
# Suppose slot (i, j) is in the exact top k, but sub-key i is *not* in the top k of half 1. Then at
# least k sub-keys i′ have s₁ᵢ′ > s₁ᵢ, and each makes a slot (i′, j) with a higher score than (i, j):
# k slots beat (i, j), so it was not in the top k after all. Hence every half of every top-k slot is
# within its half's top k, and keeping c ≥ k candidates per half cannot miss a slot.
#
# With c < k the argument breaks. The sweep below runs our hand-built search with several c and
# counts, against brute force, how many of each user's true top-k slots it misses.

# %%
# NBVAL_CHECK_OUTPUT
truth = bf_slots.sort(dim=1).values
print(f"k = {K}, m = {M_SUB}, {N_QUERIES} random users")
print(f"{'c':>3} {'pairs c*c':>9} {'slots missed':>13} {'users with a miss':>18}")
missed = {}
for c in C_SWEEP:
    _, found = search_by_hand(q, keys1, keys2, K, c)
    hit = (rearrange(found, "b k -> b k 1") == rearrange(truth, "b k -> b 1 k")).any(dim=1)
    missed[c] = 1 - hit.double().mean().item()  # share of true top-k slots not found
    users = (~hit.all(dim=1)).double().mean().item()
    print(f"{c:>3} {c * c:>9} {missed[c]:>13.1%} {users:>18.1%}")
assert all(missed[c] == 0 for c in C_SWEEP if c >= K)

# %% [markdown]
# Below c = k the search silently returns *wrong* slots for some users. The library refuses such a
# configuration rather than return wrong answers:

# %%
# NBVAL_CHECK_OUTPUT
try:
    product_key_topk(q, keys1, keys2, K, 4)
except ValueError as err:
    print("ValueError:", err)


# %% [markdown]
# ## 2. Cost against memory size
#
# Per user, brute force scores M = m² keys of width d_k: 2·m²·d_k FLOPs (a multiply and an add per
# number). The product-key search scores 2m sub-keys of width d_k/2 (2·m·d_k FLOPs), then adds c²
# pairs and takes two small top-c and one top-k over c². Its matrix-product work grows as m, i.e. as
# √M, instead of M.
#
# The two formulas are in the library (`elastic_edu.flops.product_key_flops(m, d_k, users)` and
# `bruteforce_key_flops`), checked here against PyTorch's `FlopCounterMode` (which counts matrix
# products only) for one batch of users:


# %%
# NBVAL_CHECK_OUTPUT
def flops_product_keys(m, users=1):
    return product_key_flops(m, KEY_DIM, users)


def flops_bruteforce(m, users=1):
    return bruteforce_key_flops(m, KEY_DIM, users)


for m in (16, 64):
    k1, k2 = torch.randn(m, half, device=device), torch.randn(m, half, device=device)
    flat = full_keys(k1, k2)  # (M, d_k): what a flat memory of M keys would store
    with FlopCounterMode(display=False) as counted_pk:
        product_key_topk(q[:TIMING_USERS], k1, k2, K, C)
    with FlopCounterMode(display=False) as counted_bf:
        einsum(q[:TIMING_USERS], flat, "b d, s d -> b s").topk(K, dim=-1)
    print(
        f"m={m:3d}: product keys {counted_pk.get_total_flops():>9,} counted, "
        f"{flops_product_keys(m, TIMING_USERS):>9,} by formula; brute force "
        f"{counted_bf.get_total_flops():>11,} counted, "
        f"{flops_bruteforce(m, TIMING_USERS):>11,} by formula"
    )
    assert counted_pk.get_total_flops() == flops_product_keys(m, TIMING_USERS)
    assert counted_bf.get_total_flops() == flops_bruteforce(m, TIMING_USERS)

# %%
# NBVAL_CHECK_OUTPUT
print("FLOPs per user")
print(f"{'m':>5} {'M = m*m':>10} {'brute force':>14} {'product keys':>13} {'ratio':>7}")
for m in SIZES:
    bf, pk = flops_bruteforce(m), flops_product_keys(m)
    print(f"{m:>5} {m * m:>10,} {bf:>14,} {pk:>13,} {bf / pk:>7,.0f}")


# %% [markdown]
# Now the clock. For each m we build random sub-keys and, for brute force, the flat table of all M
# keys (built once, outside the timing, as a flat memory would store it), then time one call for
# a batch of users: the median of several calls after one warm-up call (the library's one timer,
# `elastic_edu.profile.time_runs`, which times a GPU with CUDA events). On a CPU we time with
# `TIMING_THREADS` threads: on a shared machine, threads that wait for each other turn other
# processes' load into noise. The brute-force baseline is
# written inline because the library's `product_key_bruteforce` is a float64 reference that rebuilds
# the table on every call, which would be unfair to it.


# %%
latency = {"product keys": [], "brute force": []}
users = torch.randn(TIMING_USERS, KEY_DIM, generator=gen).to(device)
threads = torch.get_num_threads()
if device.type == "cpu":
    torch.set_num_threads(TIMING_THREADS)
with torch.inference_mode():
    for m in SIZES:
        k1 = torch.randn(m, half, generator=gen).to(device)
        k2 = torch.randn(m, half, generator=gen).to(device)
        flat = full_keys(k1, k2)  # (M, d_k)
        pk = lambda k1=k1, k2=k2: product_key_topk(users, k1, k2, K, C)
        bf = lambda flat=flat: einsum(users, flat, "b d, s d -> b s").topk(K, dim=-1)
        latency["product keys"].append(time_runs(pk, REPEATS, warmup=1, device=device).median_ms)
        latency["brute force"].append(time_runs(bf, REPEATS, warmup=1, device=device).median_ms)
        del flat
torch.set_num_threads(threads)
for name, ms in latency.items():
    print(f"{name:>13}: " + "  ".join(f"{t:8.3f}" for t in ms) + "  ms")

# %% [markdown]
# Plotted log-log against M, a straight line of slope 1 means "time proportional to M"; slope 0.5
# means "proportional to m = √M". The dashed lines are the FLOP formulas, scaled to meet the
# measurement at the largest M, so their slopes compare with the measured ones. Each legend entry
# gives its slope over the three largest memories.

# %%
Ms = [m * m for m in SIZES]
series, colors = {}, {}
for i, ((name, ms), flops) in enumerate(
    zip(latency.items(), (flops_product_keys, flops_bruteforce))
):
    f = [flops(m) for m in SIZES]
    series[f"{name} (measured)"] = (Ms, ms)
    series[f"{name} (FLOPs, scaled)"] = (Ms, [v * ms[-1] / f[-1] for v in f])  # meet at largest M
    colors[f"{name} (measured)"] = colors[f"{name} (FLOPs, scaled)"] = i
viz.loglog_figure(
    series,
    f"Retrieving k={K} of M slots for {TIMING_USERS} users ({device})",
    "memory slots M = m*m",
    "latency (ms)",
    dashed={name for name in series if "FLOPs" in name},
    colors=colors,
    slope_from=Ms[-3],
)

# %% [markdown]
# The slopes over the three largest memories, from `elastic_edu.viz.loglog_slope` (a least-squares
# line through log latency against log M). At small M both searches cost little more than launching
# a few operations, so their lines start flat; that is overhead, not the algorithm.

# %%
slope = {name: viz.loglog_slope(Ms, ms, x_from=Ms[-3]) for name, ms in latency.items()}
speedup = latency["brute force"][-1] / latency["product keys"][-1]
print(
    f"log-log slope against M (M >= {Ms[-3]:,}): "
    + ", ".join(f"{name} {s:.2f}" for name, s in slope.items())
)
print(f"at M = {Ms[-1]:,} slots the product-key search is {speedup:,.0f}x faster than brute force")
print(
    f"keys stored: flat memory {Ms[-1] * KEY_DIM:,} numbers, product keys {2 * SIZES[-1] * half:,}"
)
assert slope["brute force"] > slope["product keys"]
assert speedup > 10

# %% [markdown]
# ## 3. Slot usage, and what collapse looks like
#
# A large memory only helps if users actually retrieve *different* slots. Two numbers describe how
# the memory is used over a population of users:
#
# * the **fraction of slots ever retrieved** (1.0 when every slot serves somebody);
# * the **usage entropy** −Σ pₛ log pₛ of the retrieval distribution pₛ (share of all retrievals that
#   went to slot s), in nats. Its maximum is log M (all slots equally used); if every user retrieves
#   the same k slots it is log k.
#
# A memory has **collapsed** when nearly every user retrieves the same few slots: the extra capacity
# is wasted and the experts stop being personal.
#
# We use the real users: each one's evaluation history (MovieLens 100K when it is on disk, otherwise
# the synthetic set, see the note printed below) is embedded by an untrained ELASTIC model. The
# library's query (`ProductKeyMemory.query`, **our decision**) is
#
#   q = LayerNorm(W · masked_mean(history embeddings)),  with no bias in W.
#
# **Which ELASTIC.** This notebook uses `elastic-bidir`, the paper's non-causal reading: its query
# pools the window the experts then read (the last N − 1 items and the [MASK] token the model
# predicts at), the plainest setting in which to watch a memory. The recommended `elastic`
# (`elastic-causal`) may not read the window it encodes, since its experts are fixed before the
# window's first item: it builds the query from the user's *older* items, the `memory.context`
# items before the window, and a user whose whole history fits in the window gets the memory's
# default slots, the same for everyone. The memory itself, and everything below, is the same in
# both. Notebook 04 trains ELASTIC on the data; `docs/DESIGN.md` ("Retrieval without the future")
# gives the reasons for the causal choice.

# %%
data = tutorial_data()
split = leave_one_out(data)
model_config, train_config = default_configs(
    MODEL_NAME, data.num_items, seed=SEED, device=str(device), **MODEL, **TRAIN
)
seed_everything(SEED)
model = build_model(model_config).to(device).eval()
memory = model.memory  # the model's ProductKeyMemory
M = memory.num_slots
items = model.prepare(split.test.histories)  # (b, n) every user, as the model reads them
print(
    f"{MODEL_NAME}: {len(items)} users, each read as {items.shape[1]} positions (the last "
    f"{items.shape[1] - 1} items, left-padded, and [MASK]); memory of M = {M} slots, "
    f"k = {model_config.num_experts} experts each"
)


# %% [markdown]
# The usage statistics are a few lines; `viz.slot_usage` draws the same numbers in its title.


# %%
def usage(slots, num_slots):
    """slots (b, k) -> retrievals per slot (M,), fraction of slots used, entropy (nats)."""
    counts = torch.bincount(slots.flatten().cpu(), minlength=num_slots).double()
    p = counts[counts > 0] / counts.sum()
    return counts, (counts > 0).double().mean().item(), -(p * p.log()).sum().item()


# %% [markdown]
# Four queries over the same users and the same keys:
#
# * **(a) the library's query**: no bias, layer norm;
# * **(b) a biased, un-normalised query**: W·pooled + β with a fixed vector β of length
#   `BIAS_NORM`. The user-dependent part W·pooled is small at initialisation (averaging many item
#   vectors shrinks them), so β dominates every user's query;
# * **(c) the same biased query, layer-normalised**: layer norm rescales each user's vector but
#   cannot remove a component that all users share;
# * **(d) (c) minus the mean query over the users**: what a batch norm does (Lample et al. put a
#   batch norm on the query for this reason). The library avoids batch statistics because they make
#   a user's experts depend on who else is in the batch and they mix in padding; it avoids the
#   shared component by having no bias instead.
#
# The variants are copies of the library's module with one part swapped, so nothing is redefined.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    x, pad = model.embed(items)  # (b, n, d) history embeddings, (b, n) padding mask
    retrieved = {"(a) library: no bias, layer norm": memory(x, pad).slots}

    biased = copy.deepcopy(memory)
    biased.to_query = nn.Linear(model_config.dim, model_config.memory.key_dim, bias=True).to(device)
    biased.to_query.weight.copy_(memory.to_query.weight)
    beta = torch.randn(model_config.memory.key_dim, generator=gen)
    biased.to_query.bias.copy_(BIAS_NORM * beta / beta.norm())
    normed = copy.deepcopy(biased)  # (c) keeps the layer norm
    biased.query_norm = nn.Identity()  # (b) drops it
    retrieved["(b) bias, no norm"] = biased(x, pad).slots
    retrieved["(c) bias, layer norm"] = normed(x, pad).slots
    qc = normed.query(x, pad)
    centred = qc - qc.mean(dim=0)  # (d) subtract the mean query over users
    retrieved["(d) bias, layer norm, centred"] = product_key_topk(
        centred, normed.keys1, normed.keys2, memory.num_experts, memory.candidates
    )[1]

    user_part = (
        memory.to_query((x * rearrange(~pad, "b n -> b n 1")).sum(1) / (~pad).sum(1, keepdim=True))
        .norm(dim=1)
        .mean()
    )

stats = {name: usage(s, M) for name, s in retrieved.items()}
print(f"mean length of the user-dependent part W.pooled: {user_part:.3f}; bias length: {BIAS_NORM}")
print(
    f"{'query':<32} {'slots used':>10} {'entropy':>8}   (max log M = {math.log(M):.2f}, "
    f"log k = {math.log(memory.num_experts):.2f})"
)
for name, (_, used, ent) in stats.items():
    print(f"{name:<32} {used:>10.1%} {ent:>8.2f}")

# %%
used_a, used_b = stats["(a) library: no bias, layer norm"][1], stats["(b) bias, no norm"][1]
used_c, used_d = stats["(c) bias, layer norm"][1], stats["(d) bias, layer norm, centred"][1]
print(
    f"the dominant bias shrinks slot usage from {used_a:.1%} to {used_b:.1%}; layer norm alone "
    f"{'does not restore it' if used_c < used_a / 2 else 'restores it'} ({used_c:.1%}); "
    f"centring over users {'restores it' if used_d > used_a / 2 else 'does not restore it'} "
    f"({used_d:.1%})"
)
assert used_b < used_a / 2

# %%
viz.slot_usage(
    stats["(a) library: no bias, layer norm"][0], title="(a) library query, untrained model"
)

# %%
viz.slot_usage(stats["(b) bias, no norm"][0], title="(b) biased, un-normalised query: collapse")

# %% [markdown]
# ### After a little training
#
# Now train the same model briefly on the data (the random-cut objective: a history predicts the
# item after it; a model whose experts read the whole history may not train on every position,
# notebook 02; notebook 04 trains properly) and look at the usage again, through the model's own
# output: `model.encode(...)` returns an `EncoderOutput` whose `slots` are the retrieved slot ids
# of every user.

# %%
with torch.no_grad():
    before = model.encode(items).slots
assert torch.equal(before, retrieved["(a) library: no bias, layer norm"])  # same query path

fitted = fit(model, split, train_config, progress=False)
model.eval()
with torch.no_grad():
    after = model.encode(items).slots
print(
    f"trained {len(fitted.history)} epochs in {fitted.train_seconds:.1f} s on {fitted.device}; "
    f"best valid NDCG@10 {fitted.best_valid['NDCG@10']:.4f}"
)

# %%
counts_before, used_before, ent_before = usage(before, M)
counts_after, used_after, ent_after = usage(after, M)
changed = (after.sort(dim=1).values != before.sort(dim=1).values).any(dim=1).double().mean().item()
print(f"before training: {used_before:.1%} of slots used, entropy {ent_before:.2f} nats")
print(f"after training:  {used_after:.1%} of slots used, entropy {ent_after:.2f} nats")
print(f"{changed:.0%} of users retrieve a different set of slots after training")
direction = "more" if ent_after > ent_before else "less"
shared = memory.num_experts / M  # what one set of k slots shared by everybody would use
print(
    f"training made the usage {direction} even; {used_after:.1%} of slots are used, "
    f"{used_after / shared:.0f} times the {shared:.1%} of a fully collapsed memory"
)

# %% [markdown]
# Has the trained query developed a component that all users share (the collapse mechanism of
# (b))? Centre the trained queries across users, as in (d), and retrieve again: if usage then rises
# well above the trained model's own, the shared component is what narrows it.

# %%
with torch.no_grad():
    xt, padt = model.embed(items)
    qt = model.memory.query(xt, padt)
    centred_t = product_key_topk(
        qt - qt.mean(dim=0),
        model.memory.keys1,
        model.memory.keys2,
        model.memory.num_experts,
        model.memory.candidates,
    )[1]
    cosine = torch.nn.functional.cosine_similarity(qt, qt.mean(dim=0, keepdim=True)).mean()
_, used_ct, ent_ct = usage(centred_t, M)
print(
    f"trained queries: mean cosine to their average {cosine:.2f}; centred across users: "
    f"{used_ct:.1%} of slots used, entropy {ent_ct:.2f} (uncentred {used_after:.1%}, "
    f"{ent_after:.2f})"
)

# %%
viz.slot_usage(counts_after, title=f"After {len(fitted.history)} epochs of training")

# %% [markdown]
# ### Spreading the load: a balance loss
#
# Training moves the usage (before and after are printed above), and nothing in the loss so far
# asks for the slots to be shared. The library has a remedy, off by default: `MemoryConfig(balance=w)`
# adds w times a load-balancing loss to the training loss (**our decision**, borrowed from
# mixture-of-experts routing: the Switch Transformer's loss, Fedus et al. 2022, applied to each
# half of the product key; `elastic_edu.nn.product_keys.subkey_balance`). For one half, with fᵢ the
# fraction of the batch's users that keep sub-key i among their best c and pᵢ the mean softmax
# probability of sub-key i over the batch,
#
#   balance = (m / c) · Σᵢ fᵢ pᵢ,
#
# which is 1 when the users spread evenly over the sub-keys and grows as they crowd onto the same
# ones; its gradient flows through p (the counts f are constants). It balances the 2m sub-keys
# that pick the slots, not the M slots themselves.
#
# Below, the model trained above (weight 0) next to the same short training, from the same initial
# weights, with positive weights. Slot usage is measured with the library's
# `elastic_edu.analysis.slot_counts` and `usage_stats` (the numbers of our `usage` above; the
# relative entropy divides by log M); the balance term is the loss itself on the evaluated users;
# the validation NDCG@10 of these short runs is printed beside them as a rough check on accuracy,
# not as a result.

# %%
runs = {0.0: (model, fitted)}  # the model trained above: the same settings, balance 0
for weight in BALANCE_WEIGHTS:
    config_w, train_w = default_configs(
        MODEL_NAME, data.num_items, seed=SEED, device=str(device), balance=weight, **MODEL, **TRAIN
    )
    seed_everything(SEED)  # the same initial weights as the model above
    balanced = build_model(config_w).to(device)
    runs[weight] = (balanced, fit(balanced, split, train_w, progress=False))

usage_by_weight = {}
print(f"{'balance weight':>14} {'slots used':>10} {'entropy':>8} {'/ log M':>8} {'balance term':>12} "
      f"{'valid NDCG@10':>13} {'train s':>8}")  # fmt: skip
for weight, (trained_w, fitted_w) in runs.items():
    trained_w.eval()
    counts_w = slot_counts(trained_w, split.test.histories)
    usage_by_weight[weight] = {**usage_stats(counts_w), "counts": counts_w}
    with torch.no_grad():
        term = trained_w.encode(items).balance.item()
    u = usage_by_weight[weight]
    print(f"{weight:>14g} {u['fraction_used']:>10.1%} {u['entropy']:>8.2f} "
          f"{u['relative_entropy']:>8.1%} {term:>12.3f} {fitted_w.best_valid['NDCG@10']:>13.4f} "
          f"{fitted_w.train_seconds:>8.1f}")  # fmt: skip
# the library's statistics are those of our hand-written `usage` (the same model, weight 0)
assert abs(usage_by_weight[0.0]["fraction_used"] - used_after) < 0.01
assert abs(usage_by_weight[0.0]["entropy"] - ent_after) < 0.05
strongest = max(BALANCE_WEIGHTS)
gain = usage_by_weight[strongest]["fraction_used"] / usage_by_weight[0.0]["fraction_used"]
print(f"balance {strongest:g}: {gain:.1f} times the fraction of slots used without the loss")

# %%
viz.slot_usage(usage_by_weight[strongest]["counts"], title=f"Balance weight {strongest:g}")

# %% [markdown]
# Read the table from left to right: a positive weight should raise the fraction of slots used and
# the entropy, and pull the balance term towards 1; the printed numbers say how far it did in this
# short run. A memory whose slots all serve somebody is what the paper's "vast interest space"
# needs; whether the spread pays in accuracy is a question for a full training run (notebook 04
# and `python -m elastic_edu train --balance ...`), not for three epochs.

# %% [markdown]
# Slot usage is worth watching on every run: a short run says little about where a long one ends.
# Values learn with a higher learning rate than the rest here (`TrainConfig.memory_lr_scale`, **our
# decision**, following the advice from product-key memory users that values want a larger step).
#
# ## 4. Gating: who receives a gradient?
#
# `topk` picks slots: an integer choice with no gradient. If the experts were the bare value rows
# V[slots], the sub-keys and the query network would never learn which slots to pick. The library
# therefore *gates* each retrieved row by its score (**our decision**):
#
#   expertₑ = V[slotₑ] · k · softmax(scores)ₑ
#
# The gates average 1, so the experts keep the scale of the value rows, and the gates are
# differentiable in the scores, which are q₁·K₁ᵢ + q₂·K₂ⱼ: gradients reach the query network and
# exactly the sub-keys that formed the retrieved slots. Check the formula on a tiny memory first:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
tiny = ProductKeyMemory(**TINY).to(device)
xs = torch.randn(2, 5, TINY["dim"], device=device)  # 2 users, 5 history items each
no_pad = torch.zeros(2, 5, dtype=torch.bool, device=device)
r = tiny(xs, no_pad)
gates = tiny.num_experts * r.scores.softmax(-1)  # (b, e), mean 1
by_hand = tiny.values.weight[r.slots] * rearrange(gates, "b e -> b e 1")
torch.testing.assert_close(r.experts, by_hand)
print("slots per user:", r.slots.tolist())
print("gates per user:", [[f"{g:.3f}" for g in row] for row in gates.tolist()])

# %% [markdown]
# Now backpropagate an arbitrary loss through the experts and list which rows of each table
# received a non-zero gradient:

# %%
# NBVAL_CHECK_OUTPUT
target = torch.randn_like(r.experts)
(r.experts * target).sum().backward()


def rows_with_grad(p):
    return sorted(torch.nonzero(p.grad.abs().sum(dim=1)).flatten().tolist())


m_tiny = tiny.subkeys
print(
    f"value rows with a gradient: {rows_with_grad(tiny.values.weight)} "
    f"of {tiny.num_slots}; retrieved: {sorted(set(r.slots.flatten().tolist()))}"
)
print(
    f"sub-keys K1 with a gradient: {rows_with_grad(tiny.keys1)}; "
    f"used i = slot // m: {sorted(set((r.slots // m_tiny).flatten().tolist()))}"
)
print(
    f"sub-keys K2 with a gradient: {rows_with_grad(tiny.keys2)}; "
    f"used j = slot % m: {sorted(set((r.slots % m_tiny).flatten().tolist()))}"
)
print(f"query network gradient norm: {tiny.to_query.weight.grad.norm():.4f}")
assert rows_with_grad(tiny.values.weight) == sorted(set(r.slots.flatten().tolist()))
assert rows_with_grad(tiny.keys1) == sorted(set((r.slots // m_tiny).flatten().tolist()))
assert tiny.to_query.weight.grad.abs().sum() > 0

# %% [markdown]
# Without the gates, the same loss reaches only the value rows; the keys and the query network get
# no gradient at all (their `.grad` stays `None`):

# %%
# NBVAL_CHECK_OUTPUT
tiny.zero_grad(set_to_none=True)
ungated = tiny.values(tiny(xs, no_pad).slots)  # bare rows V[slots], no gates
(ungated * target).sum().backward()
print(
    "keys1.grad:",
    tiny.keys1.grad,
    "| to_query.grad:",
    tiny.to_query.weight.grad,
    "| values.grad rows:",
    rows_with_grad(tiny.values.weight),
)
assert tiny.keys1.grad is None and tiny.to_query.weight.grad is None

# %% [markdown]
# ## Exercises
#
# Write your answer in place of `None` and run the cell: `check` says whether it is right.
#
# **Exercise 1.** In a memory with m = 32 sub-keys per half, which slot id do sub-keys i = 5 (half 1)
# and j = 17 (half 2) form? And which pair (i, j) forms slot 1000?

# %%
slot_of_5_17 = None  # your answer: an int
pair_of_1000 = None  # your answer: a tuple (i, j)

check("slot of (5, 17)", slot_of_5_17, 5 * 32 + 17, hint="slot = i*m + j")
ok = check("pair of slot 1000", pair_of_1000, divmod(1000, 32), hint="i = slot // m, j = slot % m")

# %% [markdown]
# <details><summary>Solution</summary>
#
# `slot_of_5_17 = 5 * 32 + 17` (177) and `pair_of_1000 = (1000 // 32, 1000 % 32)`, i.e. (31, 8).
# </details>
#
# **Exercise 2.** For m = 1024 sub-keys per half, how many slot scores does brute force compute per
# user, and how many scores (sub-key scores plus pair sums) does the product-key search compute with
# c = 32? (Count scores, not FLOPs.)

# %%
scores_bruteforce = None  # your answer
scores_product_keys = None  # your answer

check("brute-force scores", scores_bruteforce, 1024**2, hint="every one of the M = m*m slots")
ok = check(
    "product-key scores",
    scores_product_keys,
    2 * 1024 + 32**2,
    hint="m sub-keys in each of the two halves, plus the c*c pair sums",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# Brute force: 1024² = 1,048,576. Product keys: 2·1024 + 32² = 3,072, about 341 times fewer.
# </details>
#
# **Exercise 3.** If all 943 users retrieved the *same* k = 8 slots of an M = 1024 memory (complete
# collapse), what fraction of slots would be used, and what would the usage entropy be (nats)?
# Confirm your answer with the `usage` function above on such a `slots` tensor.

# %%
collapsed_fraction = None  # your answer
collapsed_entropy = None  # your answer

check("fraction used", collapsed_fraction, 8 / 1024, atol=1e-4, hint="k of M slots")
ok = check(
    "entropy",
    collapsed_entropy,
    math.log(8),
    atol=1e-3,
    hint="k slots used equally often: the entropy of a uniform distribution over k outcomes",
)

# %% [markdown]
# <details><summary>Solution</summary>
#
# `collapsed_fraction = 8 / 1024`, under one percent of the slots, and `collapsed_entropy = math.log(8)`,
# about 2.08 nats:
# `usage(torch.arange(8).repeat(943, 1), 1024)[1:]`.
# </details>
#
# ## Summary
#
# * A product-key memory scores 2m sub-keys instead of M = m² keys: the slot score splits as
#   q₁·K₁ᵢ + q₂·K₂ⱼ, and keeping the top c ≥ k of each half returns the **exact** top k (checked
#   against brute force above); with c < k it misses slots, and the library refuses such a setting.
# * Its matrix-product cost grows as m = √M; its measured latency grew far more slowly than brute
#   force's, up to a million slots (slopes and speed-up printed above).
# * Memories can **collapse**: a component shared by all users' queries (here a bias) sends everyone
#   to the same few slots. Layer norm alone does not remove it; the library's query has no bias, and
#   centring across users (batch norm) is the other cure. Training moves the usage too (before and
#   after are printed above, with the centring diagnostic): watch fraction used and entropy on every
#   run.
# * A **balance loss** over the sub-keys (`MemoryConfig.balance`) spreads the users over the
#   memory; the table in section 3 shows how much in a short run, weight by weight.
# * Retrieval is a hard choice; the **softmax gates** carry gradients to the keys and the query
#   network, while only the retrieved value rows change.
# * This notebook's model, `elastic-bidir`, retrieves with the window it reads; the recommended
#   `elastic` (causal) retrieves with the user's older items (`docs/DESIGN.md`).
# * **Paper:** a vast memory, sparse retrieval at negligible cost. **Our decision:** product keys
#   (Lample et al. 2019), the layer-normalised bias-free query, the gates, the memory learning
#   rate, the balance loss.
#
# Next: notebook 04 trains ELASTIC, its LDA-only ablation and SASRec and compares them.
