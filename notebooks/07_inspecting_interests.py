# %% [markdown]
# # 07 · Inspecting interests: a trained ELASTIC, one user at a time
#
# *Reading time about 14 minutes; runs in about 2 CPU minutes in quick mode; no GPU needed. Run it in
# JupyterLab: the widgets need a live kernel (a saved copy shows a screenshot and text summaries).*
#
# We open a trained ELASTIC (`elastic-causal`, what `--model elastic` trains) and *look*: which
# memory slots a user's history retrieves, what each retrieved expert reads, which expert takes each
# item, and what comes out as recommendations. Two library widgets do the work,
# `InterestInspector` and `ComplexityExplorer`. Everything inspected here, and how, is **our
# decision**; the paper (arXiv 2408.09380, abstract only) states only that ELASTIC retrieves k
# interest experts from a large memory and compresses the history with linear dispatcher attention.
#
# Recall notebook 04: the experts are fixed before the window's first item, so the retrieval query
# reads only the user's *older* items, those before the window. A user whose whole history fits in
# the window has none and gets the memory's default experts, the same for every such user.

# %% [markdown]
# ## Parameters
#
# In quick mode (`ELASTIC_EDU_QUICK=1`, what the saved outputs show) a small model trains for a few
# epochs, so its interests are still blurry; without it the model trains to early stopping.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0
MODEL_NAME = "elastic"  # the recommended form: an alias of elastic-causal
MODEL = dict(
    max_len=50,  # N: the window the experts read
    dim=32 if QUICK else 64,
    heads=2,
    layers=2,
    dropout=0.2,
    num_experts=8,  # k, trained
    subkeys=16 if QUICK else 32,  # m: M = m*m memory slots
    candidates=8,  # c >= k keeps the product-key search exact
    key_dim=32 if QUICK else 64,
    context=50,  # older items before the window that form the retrieval query
)
TRAIN = dict(epochs=4 if QUICK else 100, lr=5e-3 if QUICK else 2e-3, eval_every=2, patience=5,
             max_minutes=10)  # fmt: skip
USE_CHECKPOINT = True  # reuse the model this notebook trained before (data/checkpoints/)
MAX_K = 64  # the inspector's k slider goes up to this
LENGTHS = [64, 128, 256, 512, 1024] if QUICK else [64, 128, 256, 512, 1024, 2048]
MEASURE_AT = [64, 256, 1024]  # N measured before the explorer is shown

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import numpy as np
import plotly.graph_objects as go
import torch  # noqa: F401 - the exercises' solutions use it

from elastic_edu import ModelConfig, viz
from elastic_edu.data import leave_one_out
from elastic_edu.evaluation import evaluate
from elastic_edu.experiments import default_configs
from elastic_edu.models import build_model
from elastic_edu.tutorial import check, trained_model, tutorial_data
from elastic_edu.widgets import ComplexityExplorer, InterestInspector, inspect_history

# %% [markdown]
# ## Data and a trained model
#
# MovieLens 100K when it is on this machine (titles and genres label the items), the synthetic
# planted-interest set otherwise; leave-one-out split (the last item of each user is held out).
# The causal model trains on every position of a window (objective `all`). `trained_model` loads
# the model this notebook trained earlier with the same settings from `data/checkpoints/`, or
# trains it.

# %%
data = tutorial_data()
split = leave_one_out(data)
model_config, train_config = default_configs(
    MODEL_NAME, data.num_items, seed=SEED, device=str(device), **MODEL, **TRAIN
)
name = f"07_{model_config.model}_{data.name}_{'quick' if QUICK else 'full'}_seed{SEED}.pt"
model = trained_model(model_config, train_config, split, name, reuse=USE_CHECKPOINT)
ndcg = evaluate(model, split.test)["NDCG@10"]
popularity = build_model(ModelConfig(model="popularity", num_items=data.num_items))
pop = evaluate(popularity.count(split.train).to(device), split.test)["NDCG@10"]
print(f"{viz.display_name(model_config.model)}: test NDCG@10 {ndcg:.4f}, popularity {pop:.4f} "
      "(all items ranked, history not masked)")  # fmt: skip
assert np.isfinite(ndcg)

# %% [markdown]
# ## 1. The interest inspector
#
# Pick a user, then read top to bottom:
#
# * **History** and **top 10 recommendations**: the window's items, oldest first, and the
#   best-scoring items the user does not have yet (the held-out item is highlighted if present).
# * **Retrieved memory slots**: the k slots the query retrieved, with their scores. Each bar names
#   the items whose embeddings point most the way of the slot's value row (hover for five): how a
#   slot reads as an interest.
# * **What each expert reads**: the aggregate weights, one row per expert, one column per window
#   item, as the last position sees them. A row sums to at most 1: the rest goes to the expert's
#   own entry, its prior (`docs/DESIGN.md`, causal dispatcher, decision 2).
# * **Expert assignment**: for each item, the expert it reads most in the dispatch step (argmax over
#   the k dispatch weights).
#
# The **experts k** slider retrieves another number of slots than trained (section 2); the status
# line says how long each update took.

# %%
inspector = InterestInspector(model, data, split, max_k=MAX_K)
inspector

# %% [markdown]
# The row sums, and the users with no item before the window, who share the default slots:

# %%
rows = np.concatenate([a.sum(axis=-1).ravel() for a in inspector.inspection.aggregate])
assert rows.max() <= 1 + 1e-5
lengths = np.array([len(h) for h in split.test.histories])
inside = np.flatnonzero(lengths <= model_config.max_len)  # no older item: the default query
a, b = (inspect_history(model, split.test.histories[j]).slots for j in inside[:2])
assert np.array_equal(a, b)
print(f"aggregate rows sum to {rows.min():.3f} .. {rows.max():.3f}; {len(inside)} of "
      f"{len(lengths)} users have at most N = {model_config.max_len} items and retrieve the same "
      f"slots (e.g. {a.tolist()})")  # fmt: skip

# %% [markdown]
# A saved copy shows no live widget above, only its text summary. This is the inspector in
# JupyterLab on the quick-mode model, a screenshot taken by the browser test
# (`tests/browser/test_lab.py`):
#
# ![The interest inspector in JupyterLab: controls, history and recommendations, retrieved slots, what each expert reads, and the expert assignment strip with its colour legend](../docs/images/inspector.png)
#
# ## 2. Retrieving more or fewer experts than trained
#
# Nothing in the layers depends on k: the product-key search keeps any number of slots (exact, best
# first), and the dispatcher reads any number of experts. But the gates renormalise over the kept
# slots and the model never saw another k in training, so its predictions drift as k moves away:

# %%
user = inspector.user
j = int(np.flatnonzero(split.test.users == user)[0])
history, target = split.test.histories[j], int(split.test.targets[j])
trained = inspect_history(model, history, target=target)
k_trained = model_config.num_experts
print(f"user {data.user_ids[user]}, trained with k = {k_trained}")
print(f"{'k':>4} {'first slots':>24} {'top-10 shared':>14} {'held-out rank':>14}")
for k in [1, 2, k_trained // 2, k_trained, 2 * k_trained, MAX_K]:
    other = inspect_history(model, history, k, target=target)
    n = min(k, k_trained)
    assert np.array_equal(other.slots[:n], trained.slots[:n])  # exact top k, best first
    shared = len(set(other.top) & set(trained.top))
    print(f"{k:>4} {str(other.slots[:3].tolist()):>24} {shared:>14} {other.target_rank:>14}")

# %% [markdown]
# ## 3. The complexity explorer
#
# **paper**: self-attention costs O(N²) in the history length N, ELASTIC's dispatcher attention is
# linear in N. The explorer builds a small SASRec (naive attention, which materialises the N×N map)
# and a small ELASTIC, runs one inference pass at the N you pick, and plots latency and peak tensor
# memory (**ours**: the bytes the forward pass's tensors hold at their high-water mark). Points are
# measured live on this machine; `python -m elastic_edu bench` does the careful study.

# %%
explorer = ComplexityExplorer(lengths=LENGTHS)
for n in MEASURE_AT:
    explorer.measure(n)  # the slider moves along: it shows the last N measured
explorer

# %% [markdown]
# The same plot as a plain figure, which a saved notebook keeps, and the log-log slopes between the
# measured points (2: quadruples when N doubles; 1: doubles):

# %%
slopes = {
    metric: {name: round(viz.loglog_slope([p["n"] for p in pts], [p[metric] for p in pts]), 2)
             for name, pts in explorer.points.items()}
    for metric in ("latency_ms", "peak_mb")
}  # fmt: skip
print(slopes)
assert slopes["peak_mb"]["SASRec"] > slopes["peak_mb"]["ELASTIC"] + 0.3
go.Figure(explorer.fig)

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Compute the expert assignment of the user above yourself, in **layer 1, head 0**,
# from `model.encode(items, return_weights=True).dispatch` (per layer, (b, h, n, e) weights).

# %%
items = model.prepare([history])  # (1, c + n): the older items, then the window
assignment = None  # your answer: an (n,) array or tensor of expert indices

hint = "take [0, 0] of dispatch[1] (user 0, head 0): (n, e), then argmax over e"
correct = check("expert assignment", assignment, trained.assignment(1, 0), hint=hint)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# with torch.no_grad():
#     assignment = model.encode(items, return_weights=True).dispatch[1][0, 0].argmax(dim=-1)
# ```
# </details>
#
# **Exercise 2.** How many times more peak memory did SASRec need than ELASTIC at the largest N
# measured (`explorer.points`: model name -> points sorted by `"n"`, each with `"peak_mb"`)? Move
# the slider further and compute it again: does it grow?

# %%
memory_ratio = None  # your answer: a float

at = {name: pts[-1]["peak_mb"] for name, pts in explorer.points.items()}
hint = "the peak_mb of each model's last point, then divide"
correct = check("memory ratio", memory_ratio, at["SASRec"] / at["ELASTIC"], hint=hint)

# %% [markdown]
# <details><summary>Solution</summary>
#
# `explorer.points["SASRec"][-1]["peak_mb"] / explorer.points["ELASTIC"][-1]["peak_mb"]`. It grows
# about linearly with N: SASRec's maps grow as N², the experts' as N·k.
# </details>
#
# ## Summary
#
# * A retrieved slot reads as an interest through the items nearest to its value row.
# * The aggregate weights say which items each expert summarises; the argmax of the dispatch
#   weights assigns each item to an expert; both come from `model.encode(..., return_weights=True)`.
# * k can change at inference (the search stays exact), but recommendations drift away from the
#   trained k.
# * Users whose history fits in the window share the default experts (counted above).
# * The explorer measures SASRec's quadratic and ELASTIC's linear growth live (slopes above).
