# %% [markdown]
# # 03 · Interest memory retrieval: product keys
#
# *Reading time about 16 minutes; runs in under a minute of CPU in quick mode; no GPU needed.*
#
# ELASTIC gives every user k *interest experts*: vectors the dispatcher attention of notebook 02
# reads and writes. Instead of learning one set of k experts for everyone, it **retrieves** each
# user's k experts from a large learnable *interest memory*, a table of M rows called *slots*
# (**paper**: a vast memory, sparse retrieval "at negligible cost"). The hard part is finding a
# user's best k slots without scoring all M of them. *How* this repository does it, a product-key
# memory (Lample et al., NeurIPS 2019), is **our decision**.
#
# **After this notebook you can** build a product-key search by hand and say why it is exact; count
# its cost against memory size; say how gradients reach a choice made by `topk`.
#
# **Notebook 09** (optional) goes further: what happens with too few candidates, slot usage and
# *collapse* (every user retrieving the same few slots), a load-balancing loss, and training.

# %% [markdown]
# ## Parameters

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0
M_SUB = 32  # m: sub-keys per half, so M = m*m = 1024 slots
KEY_DIM = 32  # d_k: width of the query and of a full key (two halves of 16)
K = 8  # k: slots retrieved per user
C = 8  # c: candidates kept per half; c >= k makes the search exact
N_QUERIES = 512  # random queries for the exactness check
SIZES = [16, 32, 64, 128, 256, 512, 1024]  # m; M = m*m goes up to 1,048,576 slots
TIMING_USERS = 16  # queries per timed call
REPEATS = 5 if QUICK else 20  # timed calls per point (median)
TINY = dict(dim=8, key_dim=8, subkeys=4, num_experts=3, candidates=3)  # the gating demo

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import torch
from einops import einsum, rearrange

from elastic_edu import viz
from elastic_edu.nn import ProductKeyMemory, product_key_topk
from elastic_edu.nn.flops import bruteforce_key_flops, product_key_flops
from elastic_edu.nn.reference import product_key_bruteforce
from elastic_edu.tutorial import check, key_search_latency

# %% [markdown]
# ## 1. The product-key search, by hand
#
# **The intuition.** Give every slot a two-part address, a row i and a column j, like a seat in a
# theatre, and let its score be the sum of a row score and a column score. The best seats must then
# sit in good rows *and* good columns: score the m rows and the m columns, keep the best few of
# each, and only look at the seats where those meet. That is m + m scores instead of m·m.
#
# **The equations.** The query q (width d_k) splits into halves q₁, q₂; two *sub-key* tables K₁, K₂
# hold m rows of width d_k/2 each. Slot s = i·m + j has the key [K₁ᵢ ; K₂ⱼ], so
#
#   score(q, s) = q₁·K₁ᵢ + q₂·K₂ⱼ.
#
# Scoring every full key would cost M·d_k multiply-adds per user: for m = 1024 (a million slots)
# and d_k = 32, 1024² · 32 = 33,554,432 (section 2 prints it). The search instead:
#
# 1. scores the m sub-keys of each half: s₁ = q₁K₁ᵀ, s₂ = q₂K₂ᵀ;
# 2. keeps the top c of each half (the *candidates*);
# 3. adds the c·c candidate pairs s₁ᵢ + s₂ⱼ and keeps the top k; pair (i, j) is slot i·m + j.

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

# step 2: keep the best c of each half
top1, idx1 = s1.topk(C, dim=-1)  # (b, c) scores and sub-key ids of half 1
top2, idx2 = s2.topk(C, dim=-1)  # (b, c)

# step 3: all c*c pair scores, then the best k pairs
pairs = rearrange(top1, "b c -> b c 1") + rearrange(top2, "b c -> b 1 c")  # (b, c, c)
scores, best = rearrange(pairs, "b c1 c2 -> b (c1 c2)").topk(K, dim=-1)  # (b, k)
i = idx1.gather(1, best // C)  # (b, k) sub-key id in half 1
j = idx2.gather(1, best % C)  # (b, k) sub-key id in half 2
slots = i * M_SUB + j  # (b, k) slot ids in [0, m*m)
print("s1", tuple(s1.shape), "pairs", tuple(pairs.shape), "slots", tuple(slots.shape))

# %% [markdown]
# Our search against the library's `product_key_topk` and against brute force
# (`product_key_bruteforce`: all M full keys scored in float64, the answer to reproduce):

# %%
# NBVAL_CHECK_OUTPUT
lib_scores, lib_slots = product_key_topk(q, keys1, keys2, K, C)
bf_scores, bf_slots = product_key_bruteforce(q, keys1, keys2, K)
torch.testing.assert_close(scores, lib_scores)
assert torch.equal(slots, lib_slots)
same = (slots.sort(dim=1).values == bf_slots.sort(dim=1).values).all(dim=1)
print(f"by hand == library; by hand == brute force over all {M_SUB**2} slots for "
      f"{int(same.sum())} of {N_QUERIES} users")  # fmt: skip
assert same.all()

# %% [markdown]
# **Why c ≥ k is enough.** Suppose slot (i, j) is in the true top k but sub-key i is not in the top
# k of half 1. Then k sub-keys i′ beat i, and each slot (i′, j) beats (i, j): k slots beat it, a
# contradiction. So keeping c ≥ k candidates per half never misses a slot. With c < k it can, and
# the library refuses such a setting rather than return wrong slots (notebook 09 counts the
# misses):

# %%
# NBVAL_CHECK_OUTPUT
try:
    product_key_topk(q, keys1, keys2, K, 4)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 2. Cost against memory size
#
# Per user, brute force costs 2·M·d_k FLOPs (a multiply and an add per key number); product keys
# cost 2·m·d_k for the sub-keys, plus c² additions and small top-k's. The matrix work grows as
# m = √M instead of M (`elastic_edu.nn.flops`; notebook 09 checks both formulas against PyTorch's
# FLOP counter).

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'m':>5} {'M = m*m':>10} {'brute force':>14} {'product keys':>13} {'ratio':>7}")
for m in SIZES:
    bf, pk = bruteforce_key_flops(m, KEY_DIM), product_key_flops(m, KEY_DIM)
    print(f"{m:>5} {m * m:>10,} {bf:>14,} {pk:>13,} {bf / pk:>7,.0f}")
print(f"keys stored at M = {SIZES[-1] ** 2:,}: a flat memory {SIZES[-1] ** 2 * KEY_DIM:,} "
      f"numbers, product keys {2 * SIZES[-1] * half:,}")  # fmt: skip

# %% [markdown]
# Now the clock: `key_search_latency` times both searches for a batch of users at each m (median of
# a few calls, one CPU thread, with the library's timer; the flat table of all M keys is built
# outside the timing). On a log-log plot, slope 1 means time ∝ M and slope 0.5 means time ∝ √M.

# %%
latency = key_search_latency(SIZES, KEY_DIM, K, C, TIMING_USERS, REPEATS, device=device, seed=SEED)
Ms = [m * m for m in SIZES]
slope = {name: viz.loglog_slope(Ms, ms, x_from=Ms[-3]) for name, ms in latency.items()}
speedup = latency["brute force"][-1] / latency["product keys"][-1]
print(", ".join(f"{name}: slope {s:.2f}" for name, s in slope.items()), f"(M >= {Ms[-3]:,})")
print(f"at M = {Ms[-1]:,} slots the product-key search is {speedup:,.0f}x faster than brute force")
assert slope["brute force"] > slope["product keys"] and speedup > 10
viz.loglog_figure(
    {name: (Ms, ms) for name, ms in latency.items()},
    f"Retrieving k={K} of M slots for {TIMING_USERS} users ({device})",
    "memory slots M = m*m",
    "latency (ms)",
    slope_from=Ms[-3],
)

# %% [markdown]
# At small M both searches cost little more than launching a few operations (the flat start of
# the lines); as M grows, brute force follows M and product keys stay nearly flat.
#
# ## 3. Gating: how gradients reach a `topk`
#
# `topk` is an integer choice with no gradient. If the experts were the bare value rows V[slots],
# the sub-keys and the query would never learn which slots to pick. So each retrieved row is
# *gated* by its score (**our decision**):
#
#   expertₑ = V[slotₑ] · k · softmax(scores)ₑ
#
# The gates average 1, so experts keep the scale of the value rows, and they are differentiable in
# the scores q₁·K₁ᵢ + q₂·K₂ⱼ. The library's `ProductKeyMemory` does exactly this; the query it
# builds from a user's history is a layer-normalised projection of the mean item embedding
# (notebook 04 assembles it into the model). Check the formula, then see which rows learn:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
tiny = ProductKeyMemory(**TINY).to(device)
xs = torch.randn(2, 5, TINY["dim"], device=device)  # 2 users, 5 history items each
r = tiny(xs, torch.zeros(2, 5, dtype=torch.bool, device=device))  # no padding
gates = tiny.num_experts * r.scores.softmax(-1)  # (b, e), mean 1
by_hand = tiny.values.weight[r.slots] * rearrange(gates, "b e -> b e 1")  # V[slots] * gates
torch.testing.assert_close(r.experts, by_hand)
(r.experts * torch.randn_like(r.experts)).sum().backward()  # any loss


def rows_with_grad(p):
    return sorted(torch.nonzero(p.grad.abs().sum(dim=1)).flatten().tolist())


retrieved = sorted(set(r.slots.flatten().tolist()))
print("slots per user:", r.slots.tolist())
print(f"value rows with a gradient: {rows_with_grad(tiny.values.weight)} of {tiny.num_slots}")
print(f"sub-keys K1 with a gradient: {rows_with_grad(tiny.keys1)}; used i = slot // m: "
      f"{sorted(set((r.slots // tiny.subkeys).flatten().tolist()))}")  # fmt: skip
assert rows_with_grad(tiny.values.weight) == retrieved
assert tiny.to_query.weight.grad.abs().sum() > 0

# %% [markdown]
# Only the retrieved value rows and the sub-keys that formed them receive a gradient, and the query
# network too: a batch touches a sliver of a large memory.
#
# ## Exercises
#
# **Exercise 1.** With m = 32, which slot do sub-keys i = 5 and j = 17 form? Which pair (i, j) forms
# slot 1000?

# %%
slot_of_5_17 = None  # your answer: an int
pair_of_1000 = None  # your answer: a tuple (i, j)

check("slot of (5, 17)", slot_of_5_17, 5 * 32 + 17, hint="slot = i*m + j")
ok = check("pair of slot 1000", pair_of_1000, divmod(1000, 32), hint="i = slot // m, j = slot % m")

# %% [markdown]
# <details><summary>Solution</summary>
#
# `5 * 32 + 17` (177) and `(1000 // 32, 1000 % 32)`, i.e. (31, 8).
# </details>
#
# **Exercise 2.** For m = 1024 and c = 32, how many scores does brute force compute per user, and
# how many does the product-key search (sub-key scores plus pair sums)?

# %%
scores_bruteforce = None  # your answer
scores_product_keys = None  # your answer

check("brute-force scores", scores_bruteforce, 1024**2, hint="every one of the M = m*m slots")
ok = check("product-key scores", scores_product_keys, 2 * 1024 + 32**2,
           hint="m sub-keys in each half, plus the c*c pair sums")  # fmt: skip

# %% [markdown]
# <details><summary>Solution</summary>
#
# Brute force: 1024² = 1,048,576. Product keys: 2·1024 + 32² = 3,072.
# </details>
#
# ## Summary
#
# * A slot's score splits as q₁·K₁ᵢ + q₂·K₂ⱼ, so scoring 2m sub-keys and keeping c ≥ k candidates
#   per half finds the **exact** top k of M = m² slots (checked against brute force above).
# * Its cost grows as √M: the latency table and slopes above.
# * **Softmax gates** carry gradients to the sub-keys and the query; only retrieved rows change.
# * **Paper:** a vast memory, sparse retrieval. **Ours:** product keys, the bias-free
#   layer-normalised query (notebook 09 shows what a bias does: collapse), the gates.
#
# Next: notebook 04 assembles the whole ELASTIC from these parts and notebook 02's blocks.
