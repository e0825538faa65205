# %% [markdown]
# # 00 · Setup and data: sequences, leave-one-out and full-ranking metrics
#
# *About 13 minutes to read; runs in under a minute on a CPU in quick mode; no GPU needed.*
#
# A *sequential recommender* reads what a user did, in order, and scores every item of the
# catalogue as the user's **next** item. This notebook builds the ground the tutorial stands on:
# the data, how a history becomes a sequence, which targets we hold out, and how a ranking is
# scored. After it you can load the data, apply leave-one-out, and compute HR@K, NDCG@K and MRR@K
# by hand on a full ranking, with ties counted against the model.
#
# **Paper or ours?** The ELASTIC paper (arXiv 2408.09380; only its abstract is at hand) evaluates
# on public data sets. Everything here (every rating is an interaction, the tie rule,
# leave-one-out, full ranking, ties against the model, masking) is **our decision**, chosen to
# match common practice and recorded in `docs/DESIGN.md`.

# %% [markdown]
# Every notebook starts with one parameters cell that ends with `setup_notebook(SEED)`: it seeds
# python, numpy and torch, chooses the device once (CUDA, then Apple MPS, then CPU), gives each
# plotly figure a static PNG beside the interactive one, and in the CI quick mode
# (`ELASTIC_EDU_QUICK=1`) pins torch to one thread. Nothing trains here.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0
DATASET = "ml-100k"  # MovieLens 100K when it is on disk, else the synthetic set
WINDOW = 50  # N, the history length the models read (ModelConfig.max_len)
EXAMPLE_USER = 0  # user row whose split we print
KS = (10, 20, 50)  # cut-offs K of HR@K, NDCG@K, MRR@K

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose

# %% [markdown]
# ## 1. The data set
# `tutorial_data` loads MovieLens 100K (943 users rating 1,682 movies, with timestamps) when it is
# on this machine, else a synthetic set, and says which. Every rating counts as an interaction;
# item ids become 1..I, and 0 is padding.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np
import torch

from elastic_edu import viz
from elastic_edu.data import leave_one_out
from elastic_edu.tutorial import tutorial_data

data = tutorial_data(DATASET)
split = leave_one_out(data)  # section 3
lengths = data.lengths()
print(data.name, data.summary())
print(f"history length: min {lengths.min()}, median {np.median(lengths):.0f}, "
      f"mean {lengths.mean():.1f}, max {lengths.max()}")  # fmt: skip
longer = sum(len(h) > WINDOW for h in split.test.histories)
print(f"test histories longer than the window N = {WINDOW}: {longer} of {len(split.test)}")
counts = np.bincount(np.concatenate(data.sequences), minlength=data.num_items + 1)[1:]
top = int(np.ceil(0.1 * (counts > 0).sum()))
print(f"the top 10% of items ({top}) hold {np.sort(counts)[::-1][:top].sum() / counts.sum():.1%}"
      " of all interactions")  # fmt: skip

# %% [markdown]
# These histories are not short: the median user has more items than the window N = 50 the
# models read, more than half of the test histories are longer than it (the counts above), and a
# few users have hundreds. A model sees only the last N items of each;
# reading long histories cheaply is what ELASTIC is for. Popularity is just as uneven: a short
# head of popular items and a long tail. The histogram comes from `elastic_edu.viz`, which takes
# arrays and returns plotly figures.

# %%
viz.length_histogram(lengths, title=f"{data.name}: items per user")

# %% [markdown]
# ## 2. From a log to sequences
# The raw log is a table of (user, item, timestamp) rows in file order. `build_sequences` (called
# by `tutorial_data`) sorts each user's rows by timestamp, and ties keep file order (a *stable*
# sort). A detail that is not one: `tie_statistics` counts how often timestamps tie, and for how
# many users the **last two** events tie, so that the tie rule alone decides which item becomes
# the test target and which the validation target.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.data import load_interactions
from elastic_edu.tutorial import movielens_available, tie_statistics

log = load_interactions(DATASET if movielens_available(DATASET) else "synthetic", download=False)
ties = tie_statistics(log.users, log.timestamps)
print(f"consecutive same-user pairs: {ties['pairs']}, tied: {ties['tied']} "
      f"({ties['tied'] / ties['pairs']:.1%})")  # fmt: skip
print(f"users whose last two events are tied: {len(ties['last_two_tied'])} of {ties['users']}")

# %% [markdown]
# MovieLens users often rated many movies in one sitting. A different tie rule (say, by item id)
# would change the targets of all those users, and every reported metric with them.
#
# ## 3. Leave-one-out
# For every user with at least three items the **last** item is the test target, the **second
# last** the validation target, and the rest trains. The test history includes the validation
# item: at test time a model may read everything before the test item.

# %%
# NBVAL_CHECK_OUTPUT
row = int(np.flatnonzero(split.test.users == EXAMPLE_USER)[0])
seq = data.sequences[EXAMPLE_USER]
print(f"evaluated users: {len(split.test)}; user {EXAMPLE_USER}: {len(seq)} items, "
      f"last five {seq[-5:].tolist()}")  # fmt: skip
print(
    f"  train ends {split.train[EXAMPLE_USER][-3:].tolist()}, "
    f"validation target {split.valid.targets[row]}, test target {split.test.targets[row]}"
)
assert split.test.targets[row] == seq[-1] and split.valid.targets[row] == seq[-2]
assert np.array_equal(split.test.histories[row], seq[:-1])  # includes the validation item

# %% [markdown]
# ## 4. Full ranking and the metrics, by hand
# A model scores every item; the target's **rank** is its place when all items are sorted by
# score. We rank against *all* items (many papers rank against 100 sampled items instead, which
# flatters every model; notebook 05 measures by how much), and ties count against the model:
#
# $$\text{rank} = 1 + \#\{\,j \ne \text{target} : s_j \ge s_\text{target}\,\},\qquad
# \text{HR@K} = [r \le K],\quad \text{NDCG@K} = \frac{[r \le K]}{\log_2(r+1)},\quad
# \text{MRR@K} = \frac{[r \le K]}{r},$$
#
# averaged over users. A toy: three users, six items (column 0 is padding and never counts).

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.evaluation import metrics_from_ranks, ranks_from_scores

toy_scores = torch.tensor([
    [0.0, 0.9, 0.1, 0.5, 0.3, 0.8, 0.2],  # user 0: target 5, only item 1 scores higher
    [0.0, 0.4, 0.4, 0.4, 0.9, 0.1, 0.4],  # user 1: target 2, ties with 1, 3, 6; item 4 higher
    [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # user 2: target 1, the worst score
])  # fmt: skip
toy_targets = torch.tensor([5, 2, 1])
hand_ranks = [1 + sum(s[j] >= s[t] for j in range(1, len(s)) if j != t)
              for s, t in zip(toy_scores.tolist(), toy_targets.tolist())]  # fmt: skip
r = np.asarray(hand_ranks, dtype=float)
hand = {"HR@3": np.mean(r <= 3), "NDCG@3": np.mean(np.where(r <= 3, 1 / np.log2(r + 1), 0)),
        "MRR@3": np.mean(np.where(r <= 3, 1 / r, 0))}  # fmt: skip
lib_ranks = ranks_from_scores(toy_scores, toy_targets)
lib = metrics_from_ranks(lib_ranks, ks=(3,))
assert lib_ranks.tolist() == hand_ranks and all(abs(lib[m] - v) < 1e-12 for m, v in hand.items())
print("ranks", hand_ranks, {m: round(float(v), 4) for m, v in hand.items()}, "== library")

# %% [markdown]
# ### Masked or unmasked?
# Some papers drop the items a user already has from the ranking ("masking the history"). That only
# lowers ranks, so masked metrics are higher: we report both and say which beside every number.
# `ranks_from_scores` takes an `exclude` mask (the target itself is never excluded).
#
# ## 5. A popularity baseline
# The popularity model (`"popularity"` in the model registry) scores each item by its count in the
# training sequences: the same ranking for every user, the floor any sequential model must
# clear. `evaluate(model, eval_set)` ranks every target against all items and averages the
# metrics; `mask_history=True` masks each user's history.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu import ModelConfig
from elastic_edu.evaluation import evaluate
from elastic_edu.models import build_model

popularity = build_model(ModelConfig(model="popularity", num_items=data.num_items))
popularity = popularity.count(split.train).to(setup.device)
unmasked = evaluate(popularity, split.test, ks=KS)
masked = evaluate(popularity, split.test, ks=KS, mask_history=True)
print(f"{'test, all items ranked':<24}" + "".join(f"{m:>9}" for m in unmasked))
for name, metrics in (("unmasked", unmasked), ("history masked", masked)):
    print(f"{name:<24}" + "".join(f"{v:>9.4f}" for v in metrics.values()))
assert all(masked[m] >= unmasked[m] for m in unmasked)

# %% [markdown]
# **Exercise.** A user's test target is ranked 3rd of all items. What is their NDCG@10? And at
# rank 11? (Replace the `None`s and run the cell; `check` tells you.)

# %%
from elastic_edu.tutorial import check

answer_rank3, answer_rank11 = None, None  # your answers, floats
ok = check(
    "NDCG@10 at rank 3", answer_rank3, metrics_from_ranks([3])["NDCG@10"], hint="1 / log2(4)"
)
ok = check("NDCG@10 at rank 11", answer_rank11, metrics_from_ranks([11])["NDCG@10"], hint="11 > K")

# %% [markdown]
# *Solution:* $1/\log_2 4 = 0.5$ at rank 3; 0 at rank 11, which is outside the top 10.
#
# ## Summary
# - One time-ordered item sequence per user; ties keep file order, and on ML-100K that rule
#   decides the targets of the users counted in section 2. Histories are long: many test users
#   have more items than the window N = 50 a model reads.
# - Leave-one-out: last item tests, second last validates, the rest trains.
# - Metrics rank the target against **all** items, ties against the model; masked and unmasked
#   metrics differ, so we always say which.
# - Popularity is the floor (its test numbers above).
#
# Next, `01_sasrec_quadratic_wall`: the causal self-attention baseline, and why its cost grows as
# the square of the history length.
