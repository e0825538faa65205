# %% [markdown]
# # 07 · Inspecting interests: a trained ELASTIC model, one user at a time
#
# The earlier notebooks built ELASTIC's parts and trained it. Here we open a trained model and *look*:
# which memory slots does a user's history retrieve, what does each retrieved expert read, which
# expert takes each item, and what comes out as recommendations? Two widgets from the library do
# the work, `elastic_edu.widgets.InterestInspector` and `elastic_edu.widgets.ComplexityExplorer`.
#
# **Learning goals.** After this notebook you can
#
# 1. read a retrieved memory slot as an *interest* through the items nearest to its value row;
# 2. read the aggregate weights (experts × history items) and the expert assignment of each item
#    (argmax of the dispatch weights), per layer and head, and compute them yourself from
#    `model.encode(..., return_weights=True)`;
# 3. change the number k of experts retrieved *at inference* and say what it changes;
# 4. measure, live, how SASRec's and ELASTIC's latency and memory grow with the history length N.
#
# **Assumes.** What ELASTIC does (notebooks 01 to 04, or `docs/DESIGN.md`): a product-key memory
# retrieves k experts per user, and linear dispatcher attention lets the experts read the history
# (aggregate) and every position read the experts (dispatch). Run it in JupyterLab: the widgets need
# a live kernel. A saved copy of this notebook stores no widget state (that keeps the file small);
# instead it shows a screenshot of the inspector and a static copy of the explorer's plot.
#
# **Which ELASTIC.** The model here is `elastic`, the form this library recommends: the *causal*
# ELASTIC (`elastic-causal`, **ours**, `docs/DESIGN.md`). Two things follow for what the inspector
# shows. Each expert summarises every prefix of the window, so the state at position t reads only
# items up to t; the aggregate weights drawn are those of the whole window, the summary the last
# position reads. And the experts are fixed before the window's first item, so the retrieval query
# is built from the user's *older* items, the ones before the window: a user whose whole history
# fits in the window has none, and gets the memory's default experts, the same for every such user.
# (Notebook 03 inspects the memory of `elastic-bidir`, the paper's non-causal reading, whose query
# reads the window.)
#
# **Paper or our decision?** The paper (arXiv 2408.09380, abstract only) states that ELASTIC
# retrieves a fixed number k of interest experts from a large memory and compresses the history with
# a linear dispatcher attention (**paper**). Everything inspected here, the weights, the reading of
# a slot through its nearest items, changing k at inference, is **our decision** on how to look
# inside the model; none of it comes from the paper.

# %% [markdown]
# ## Parameters
#
# Every knob and the seed; the cell ends with `setup_notebook(SEED)` (threads, seeds, device,
# figures: see notebook 00). `ELASTIC_EDU_QUICK=1` (what CI sets, and what the saved outputs show)
# trains a small model for a few epochs so that the whole notebook runs in a minute or two on a
# 2-core CPU: a demonstration whose interests are still blurry. Without it the model is larger
# and trains to early stopping (minutes).

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
    num_experts=8,  # k, trained (the library's default)
    subkeys=16 if QUICK else 32,  # m: M = m*m memory slots
    candidates=8,  # c >= k keeps the product-key search exact
    key_dim=32 if QUICK else 64,
    context=50,  # older items before the window that form the retrieval query
)
TRAIN = dict(
    epochs=4 if QUICK else 100,
    lr=5e-3 if QUICK else 2e-3,
    eval_every=2,
    patience=5,
    max_minutes=10,
)
USE_CHECKPOINT = True  # reuse the model this notebook trained before (data/checkpoints/)

MAX_K = 64  # the inspector's k slider goes up to this
TIMED_CHANGES = 5  # programmatic control changes timed per control
LENGTHS = [64, 128, 256, 512, 1024] if QUICK else [64, 128, 256, 512, 1024, 2048]
MEASURE_AT = [64, 256, 1024]  # N measured before the explorer is shown

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %%
import statistics

import numpy as np
import plotly.graph_objects as go
import torch  # noqa: F401 - the exercises' solutions use it

from elastic_edu import ModelConfig, viz
from elastic_edu.data import leave_one_out
from elastic_edu.device import describe_device
from elastic_edu.evaluation import evaluate
from elastic_edu.experiments import default_configs
from elastic_edu.models import build_model
from elastic_edu.paths import data_dir
from elastic_edu.training import fit, load_checkpoint, seed_everything
from elastic_edu.tutorial import check, tutorial_data
from elastic_edu.widgets import ComplexityExplorer, InterestInspector, inspect_history

# %% [markdown]
# ## Data and a trained model
#
# `tutorial_data()` loads MovieLens 100K when it is on this machine (titles and genres label the
# items) and the synthetic planted-interest set otherwise (each item then carries the interest it
# was drawn from, which the inspector colours). The split is leave-one-out: the last item of every
# user is held out, and the inspector marks it when it shows up among the recommendations.

# %%
data = tutorial_data()
split = leave_one_out(data)
print(data.summary(), f"{len(split.test)} users with a held-out item")
assert len(split.test) > 0

# %% [markdown]
# The causal model trains as SASRec does, with the objective `all`: every position of a window
# predicts the item after it (its default, `elastic_edu.models.REGISTRY`). A model trained earlier
# by this notebook with the same settings is loaded from `data/checkpoints/` instead of trained
# again (`elastic_edu.checkpoint.load_checkpoint` refuses a file made with other settings).

# %%
model_config, train_config = default_configs(
    MODEL_NAME, data.num_items, seed=SEED, device=str(device), **MODEL, **TRAIN
)
print(f"{MODEL_NAME} = {model_config.model}, objective {train_config.objective}")
mode = "quick" if QUICK else "full"
name = f"07_{model_config.model}_{data.name}_{mode}_seed{SEED}.pt"
checkpoint = data_dir() / "checkpoints" / name
model = None
if USE_CHECKPOINT and checkpoint.exists():
    try:
        model = load_checkpoint(checkpoint, model_config).to(device)
        print(f"loaded the model trained earlier from {checkpoint.name}")
    except ValueError as err:  # CheckpointError: other settings, or not a checkpoint
        print(f"not using {checkpoint.name}: {err}")
if model is None:
    seed_everything(SEED)
    saved = checkpoint if USE_CHECKPOINT else None
    fitted = fit(build_model(model_config), split, train_config, progress=False, checkpoint=saved)
    model = fitted.model
    print(f"trained {len(fitted.history)} epochs in {fitted.train_seconds:.0f} s on {device}")
model.eval()
ndcg = evaluate(model, split.test)["NDCG@10"]
popularity = build_model(ModelConfig(model="popularity", num_items=data.num_items))
pop = evaluate(popularity.count(split.train).to(device), split.test)["NDCG@10"]
print(f"test NDCG@10 {ndcg:.4f}, popularity {pop:.4f} (all items ranked, history not masked)")
assert np.isfinite(ndcg)

# %% [markdown]
# ## 1. The interest inspector
#
# Pick a user, then read the inspector top to bottom:
#
# * **History** (left): the items of the window the model encodes (the last N of the history),
#   oldest first, with titles and genres (or the planted interest on synthetic data), and the
#   expert each item is assigned to in the chosen layer.
# * **Top 10 recommendations** (right): the best-scoring items the user does not have yet; the
#   held-out item is highlighted when it is among them, and its rank among all items is given below.
# * **Retrieved memory slots**: the k slots the user's query retrieved, best first, with their
#   retrieval scores q·key. The query reads the items *before* the window; a user with none gets
#   the memory's default slots (the same for every such user: counted in the next cell). The text
#   in each bar names the items whose embeddings have the largest dot product with the slot's value
#   row (hover for five): this is how a slot reads as an interest. Colours are experts, the same in
#   every view.
# * **What each expert reads**: the aggregate weights of one layer and head, one row per retrieved
#   expert, one column per window item, as the last position sees them (the causal layer's summary
#   after the whole window). A row sums to at most 1: the rest of the softmax goes to the expert's
#   own entry, its prior (`docs/DESIGN.md`, causal dispatcher attention, decision 2).
# * **Expert assignment**: for each history item, the expert it reads most in the dispatch step
#   (argmax over k); on synthetic data the planted interest is drawn below it for comparison.
#
# The **experts k** slider retrieves a different number of slots at inference than the model was
# trained with (section 3). Every control updates the figures in place.

# %%
inspector = InterestInspector(model, data, split, max_k=MAX_K)
inspector

# %% [markdown]
# What the last two bullets say, checked on the inspector's current user and on every test user:
# the aggregate rows' sums, and how many users have no item before the window and therefore share
# the default slots.

# %%
rows = np.concatenate([a.sum(axis=-1).ravel() for a in inspector.inspection.aggregate])
print(f"aggregate rows of user {data.user_ids[inspector.user]} (every layer and head) sum to "
      f"{rows.min():.3f} .. {rows.max():.3f}")  # fmt: skip
assert rows.max() <= 1 + 1e-5
lengths = np.array([len(h) for h in split.test.histories])
inside = np.flatnonzero(lengths <= model_config.max_len)  # no older item: the default query
print(
    f"{len(inside)} of {len(lengths)} test users have at most N = {model_config.max_len} "
    "items: their query reads no item, and they share the default slots"
)
if len(inside) >= 2:
    a, b = (inspect_history(model, split.test.histories[j]).slots for j in inside[:2])
    print(f"  e.g. test rows {inside[0]} and {inside[1]}: slots {a.tolist()} and {b.tolist()}")
    assert np.array_equal(a, b)
# %% [markdown]
# A saved copy of this notebook shows no live widget above (it stores no widget state). This is
# the inspector as it renders in JupyterLab, on the quick-mode model, after choosing another user
# in the dropdown: a screenshot taken by the browser test (`tests/browser/test_lab.py`) and copied
# to `docs/images/` by `scripts/make_readme_images.py`.
#
# ![The interest inspector in JupyterLab: controls, history and recommendations, retrieved slots, what each expert reads, and the expert assignment strip with its colour legend](../docs/images/inspector.png)

# %% [markdown]
# ## 2. Does it keep up? Timing a control change
#
# A control change re-encodes one history (user, k) or only redraws (layer, head), then sends the
# new figure data to the browser. Each update records its own duration (`last_update_ms`, and the
# "updated in" label). The cell below changes each control a few times from code, as a learner would
# by hand, and reports the median.

# %%
options = [u for _, u in inspector.user_select.options]
times = {"user": [], "k": [], "layer/head": []}
for u in options[1 : TIMED_CHANGES + 1]:
    inspector.set_user(u)
    times["user"].append(inspector.last_update_ms)
for k in [1, 4, 16, 32, model_config.num_experts][:TIMED_CHANGES]:
    inspector.set_k(k)
    times["k"].append(inspector.last_update_ms)
for _ in range(TIMED_CHANGES):
    inspector.set_layer((inspector.layer + 1) % model_config.layers)
    times["layer/head"].append(inspector.last_update_ms)
inspector.set_user(options[0])
inspector.set_layer(0)
medians = {name: statistics.median(ms) for name, ms in times.items()}
report = ", ".join(f"{name} {ms:.0f} ms" for name, ms in medians.items())
print(f"median update after a control change on {data.name}, {describe_device(device)}: {report}")

# %% [markdown]
# A change of user or k runs one forward pass of one history (the window of N items and the older
# items of the query), finds each slot's nearest items among all items, and rebuilds three small
# figures; most of the time goes to plotly building and validating the figures, not to the model.
#
# ## 3. Retrieving more or fewer experts than trained
#
# The model was trained with k experts. Nothing in its layers depends on k: the product-key search
# can keep any number of slots, and the causal dispatcher attention reads any number of experts. The
# library's `elastic_edu.widgets.encode_with_experts(model, items, k)` runs the encoder with k slots
# without changing the model; with the trained k it is exactly `model.encode`. Two things to see:
#
# * retrieval returns the **exact top k** of all M slot scores, best first, so the slots retrieved
#   with k = 2 are the first two of those retrieved with k = 8;
# * the gates (softmax of the k scores, times k) renormalise over whichever slots are kept, and the
#   model never saw other k in training, so its predictions drift as k moves away from the trained
#   value.

# %%
user = inspector.user
j = int(np.flatnonzero(split.test.users == user)[0])
history, target = split.test.histories[j], int(split.test.targets[j])
trained = inspect_history(model, history, target=target)
print(f"user {data.user_ids[user]}, trained k = {model_config.num_experts}: ", end="")
print(f"held-out item at rank {trained.target_rank}")
print(f"{'k':>4} {'first slots':>24} {'top-10 shared with trained k':>30} {'held-out rank':>14}")
k_trained = model_config.num_experts
for k in [1, 2, k_trained // 2, k_trained, 2 * k_trained, MAX_K]:
    other = inspect_history(model, history, k, target=target)
    shared = len(set(other.top) & set(trained.top))
    n = min(k, k_trained)
    assert np.array_equal(other.slots[:n], trained.slots[:n])  # exact top k, best first
    print(f"{k:>4} {str(other.slots[:3].tolist()):>24} {shared:>30} {other.target_rank:>14}")

# %% [markdown]
# ## 4. The complexity explorer
#
# **paper**: self-attention costs O(N²) time and memory in the history length N, and ELASTIC's
# linear dispatcher attention is linear in N. **Ours** (`docs/DESIGN.md`): with k experts our layer
# costs O(N·k) per layer, and the explorer is our way to watch both. It builds two small models
# (SASRec with the naive attention that materialises the N×N map, and `elastic`, the causal
# ELASTIC, with the k printed below), runs one inference forward pass at the N you pick with the
# slider, and adds the point to the plot: latency (median of a few runs, `elastic_edu.profile.time_runs`)
# and **peak tensor memory**, the high-water mark of the bytes held by the tensors the forward pass
# allocates (`elastic_edu.profile.PeakMemory`, **our decision**: process-wide memory of a
# long-lived kernel says little about one forward pass). Points are small and measured on this
# machine, in this kernel, while you wait; `python -m elastic_edu bench` does the careful study.

# %%
explorer = ComplexityExplorer(lengths=LENGTHS)
for label, m in explorer.models.items():
    c = m.config
    print(
        f"{label}: {m.name}, d={c.dim}, {c.layers} layers, "
        + (f"{c.attention} attention" if c.model == "sasrec" else f"k={c.num_experts} experts")
    )
for n in MEASURE_AT:
    explorer.measure(n)  # the slider moves along: it shows the last N measured
explorer

# %% [markdown]
# The explorer's plot is a live widget, which a saved notebook does not store. The same figure as a
# plain plotly figure, with the points measured so far, is saved with the notebook (interactive
# and as a PNG):

# %%
print(explorer.status.value)
go.Figure(explorer.fig)


# %% [markdown]
# On a log-log plot a slope of 2 means "quadruples when N doubles" and a slope of 1 "doubles". At
# small N fixed costs (embedding, feed-forward, launching operations) hide the difference; the
# attention maps take over as N grows. The slopes between the measured points:


# %%
def slopes(metric):  # log-log slope of `metric` against N, per model
    return {
        name: viz.loglog_slope([p["n"] for p in pts], [p[metric] for p in pts])
        for name, pts in explorer.points.items()
    }


for metric in ("latency_ms", "peak_mb"):
    print(metric, {name: round(s, 2) for name, s in slopes(metric).items()})
assert slopes("peak_mb")["SASRec"] > slopes("peak_mb")["ELASTIC"] + 0.3

# %% [markdown]
# ## Exercises
#
# Write your answer in place of `None` and run the cell: `check` says whether it is right.
#
# **Exercise 1.** The strip shows each history item's expert: the argmax over experts of the
# dispatch weights. Compute it yourself for the user below, in **layer 1, head 0**, at the trained k,
# from `model.encode(items, return_weights=True).dispatch` (a list over layers of (b, h, n, e)
# tensors, n the positions of the window).

# %%
# (1, c + n): the older items, then the window, as the model reads them (one history: no padding)
items = model.prepare([history])
assignment = None  # your answer: an (n,) array or tensor of expert indices

expected = trained.assignment(1, 0)
hint = "take [0, 0] of dispatch[1] (user 0, head 0): (n, e), then argmax over e"
correct = check("expert assignment", assignment, expected, hint=hint)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# with torch.no_grad():
#     out = model.encode(items, return_weights=True)
# assignment = out.dispatch[1][0, 0].argmax(dim=-1)
# ```
# </details>
#
# **Exercise 2.** Which item is nearest to the user's best retrieved slot? Take the slot's value row
# from the memory (`model.memory.values.weight`, one row per slot), score it against every item
# embedding (`model.item_emb.weight`) with a dot product, and give the best item id (never 0, the
# padding id). Then look its title up in `data.item_titles`.

# %%
best_slot = int(trained.slots[0])
nearest_item = None  # your answer: an int item id

expected = int(trained.nearest[0, 0])
hint = "values[best_slot] @ item_emb.T, set column 0 to -inf, then argmax"
correct = check("nearest item", nearest_item, expected, hint=hint)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# with torch.no_grad():
#     sim = model.item_emb.weight @ model.memory.values.weight[best_slot]
# sim[0] = -float("inf")
# nearest_item = int(sim.argmax())
# print(data.item_titles[nearest_item])
# ```
# </details>
#
# **Exercise 3.** From `explorer.points` (a dict: model name -> list of measured points, each with
# `"n"` and `"peak_mb"`), compute how many times more peak memory SASRec needed than ELASTIC at
# the largest N measured. Move the slider further and compute it again: does it grow?

# %%
memory_ratio = None  # your answer: a float

largest = max(p["n"] for p in explorer.points["SASRec"])
at = {name: next(p for p in pts if p["n"] == largest) for name, pts in explorer.points.items()}
expected = at["SASRec"]["peak_mb"] / at["ELASTIC"]["peak_mb"]
hint = "the peak_mb of each model's point with the largest n, then divide"
correct = check("memory ratio", memory_ratio, expected, atol=1e-6, hint=hint)

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# memory_ratio = explorer.points["SASRec"][-1]["peak_mb"] / explorer.points["ELASTIC"][-1]["peak_mb"]
# ```
# (the points are kept sorted by N). It grows about linearly with N: SASRec's maps grow as N², the
# experts' maps as N·k.
# </details>
#
# ## Summary
#
# * A retrieved memory slot is a vector in the model's own space; the items whose embeddings point
#   the same way name it, and that is how a slot reads as an interest (sharper after longer training).
# * The aggregate weights say which history items each expert summarises; the argmax of the dispatch
#   weights assigns each item to an expert. Both come out of `model.encode(..., return_weights=True)`
#   per layer and head, and the inspector draws exactly those tensors.
# * The number k of retrieved experts can change at inference: the product-key search stays exact,
#   but the model was trained with one k, and its recommendations drift away from it.
# * With the causal ELASTIC the aggregate weights are each expert's summary after the whole window,
#   and the experts come from the items before it: users whose history fits in the window share
#   the default experts.
# * A control change updates the inspector in the times printed in section 2; the complexity
#   explorer measures SASRec's and ELASTIC's growth in latency and memory live (slopes above).
