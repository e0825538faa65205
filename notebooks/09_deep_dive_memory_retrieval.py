# %% [markdown]
# # 09 · Deep dive: the interest memory, further
#
# *Deep dive, not on the core path: about 38 minutes to read; a few CPU minutes in quick mode
# (three short training runs); no GPU needed.*
#
# Notebook 03 built the product-key search and its gates. This deep dive takes the optional roads:
#
# 1. what goes wrong with fewer candidates c than experts k, counted against brute force;
# 2. the FLOP formulas checked against PyTorch's own counter;
# 3. slot usage over real users, what *collapse* (every user retrieving the same few slots) looks
#    like, why the library's query has no bias, what a little training does, and a load-balancing
#    loss that spreads the users over the memory;
# 4. what the gates buy: without them, the keys and the query never learn.
#
# The model here is `elastic-bidir`, ELASTIC-bidir (non-causal): its query pools the window it
# reads, the plainest setting in which to watch a memory. The recommended ELASTIC
# (`elastic-causal`) pools the older items before the window instead (notebook 04); the memory is
# the same in both.


# %% [markdown]
# ## Parameters
#
# Every knob of this notebook, and the seed, live in the next cell, which ends with
# `setup_notebook(SEED)` (threads, seeds, device, figures: see notebook 00). `ELASTIC_EDU_QUICK=1`
# (what CI sets, and what the saved outputs show) picks a small model and a short training run so
# that the notebook runs in a few minutes on a 2-core CPU: a demonstration, not a result.

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
TIMING_USERS = 16  # queries per FLOP-counted call

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

# the gates demo: a tiny memory whose gradients can be listed row by row
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
# ## 1. Fewer candidates than experts
#
# The random sub-keys and queries of notebook 03, and its search as a function of c (the library's
# `product_key_topk` refuses c < k, so we need our own to watch it fail):

# %%
gen = torch.Generator().manual_seed(SEED)
half = KEY_DIM // 2
keys1 = torch.randn(M_SUB, half, generator=gen).to(device)  # K1 (m, d_k/2)
keys2 = torch.randn(M_SUB, half, generator=gen).to(device)  # K2 (m, d_k/2)
q = torch.randn(N_QUERIES, KEY_DIM, generator=gen).to(device)  # (b, d_k), one query per user
bf_scores, bf_slots = product_key_bruteforce(q, keys1, keys2, K)  # the exact top k, float64


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
# The sweep runs the search with several c and counts, against brute force, how many of each user's
# true top-k slots it misses.

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
# Below c = k the search silently returns *wrong* slots for some users: why the library refuses.
#
# ## 2. The FLOP formulas, counted
#
# `elastic_edu.nn.flops.product_key_flops(m, d_k, users)` and `bruteforce_key_flops`, checked
# against PyTorch's `FlopCounterMode` (which counts matrix products only) for one batch of users:


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
# the synthetic set, see the note printed below) is embedded by an untrained
# ELASTIC-bidir (non-causal) model. The
# library's query (`ProductKeyMemory.query`, **our decision**) is
#
#   q = LayerNorm(W · masked_mean(history embeddings)),  with no bias in W.
#
# Its query pools the window the experts then read: the last N − 1 items and a [MASK] token, a
# placeholder item appended after the history at which the non-causal model makes its prediction.

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
# notebook 02; notebook 05 trains properly) and look at the usage again, through the model's own
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
# needs; whether the spread pays in accuracy is a question for a full training run (notebook 05
# and `python -m elastic_edu train --balance ...`), not for three epochs.

# %% [markdown]
# Slot usage is worth watching on every run: a short run says little about where a long one ends.
# Values learn with a higher learning rate than the rest here (`TrainConfig.memory_lr_scale`, **our
# decision**, following the advice from product-key memory users that values want a larger step).
#
# ## 4. Without the gates
#
# Notebook 03 showed that with the gates a loss reaches the retrieved value rows, the sub-keys that
# formed them and the query network. Without them, with the experts the bare rows V[slots], the
# keys and the query network get no gradient at all (their `.grad` stays `None`):

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
tiny = ProductKeyMemory(**TINY).to(device)
xs = torch.randn(2, 5, TINY["dim"], device=device)  # 2 users, 5 history items each
no_pad = torch.zeros(2, 5, dtype=torch.bool, device=device)
target = torch.randn(2, TINY["num_experts"], TINY["dim"], device=device)


def rows_with_grad(p):
    return sorted(torch.nonzero(p.grad.abs().sum(dim=1)).flatten().tolist())


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
# ## Exercise
#
# **Exercise.** If all 943 users retrieved the *same* k = 8 slots of an M = 1024 memory (complete
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
##
# ## Summary
#
# * With c < k the product-key search misses true top-k slots (the sweep above); the library
#   refuses such a setting.
# * The FLOP formulas match PyTorch's counter.
# * Memories can **collapse**: a component shared by all users' queries (here a bias) sends
#   everyone to the same few slots. Layer norm alone does not remove it; the library's query has
#   no bias, and centring across users (batch norm) is the other cure. Watch fraction used and
#   entropy on every run.
# * A **balance loss** over the sub-keys (`MemoryConfig.balance`) spreads the users over the
#   memory: the table in section 3, weight by weight.
# * Without the gates, only the value rows would learn.
