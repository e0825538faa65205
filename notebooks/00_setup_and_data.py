# %% [markdown]
# # 00 · Setup and data: sequences, leave-one-out and full-ranking metrics
#
# A *sequential recommender* reads what a user did, in order, and scores every item of the
# catalogue as the user's **next** item. Before any model, this notebook builds the ground the
# whole tutorial stands on: the data, how a user's history becomes a sequence, how we hold out
# targets, and how a ranking is scored.
#
# **Learning goals.** After this notebook you can
# 1. check the environment and load the data set (MovieLens 100K, or a synthetic stand-in).
# 2. see what the data looks like: history lengths and item popularity.
# 3. know exactly how sequences are built (time order, ties keep file order) and why ties matter.
# 4. apply the leave-one-out protocol and read one user's train / validation / test split.
# 5. compute HR@K, NDCG@K and MRR@K by hand on a toy full ranking, with ties counted against the
#    model, and check them against `elastic_edu.metrics`.
# 6. evaluate a popularity baseline, masked and unmasked, and ask it for recommendations.
#
# **Assumes.** Python, numpy and PyTorch tensors. No recommender-systems background.
#
# **Paper or our decision?** The ELASTIC paper (Deng et al., arXiv 2408.09380; only its abstract
# is at hand) says it is evaluated on public data sets against strong sequential recommenders.
# Everything in this notebook (every rating counts as an interaction, the tie rule, leave-one-out,
# full ranking, ties against the model, masking) is **our decision**, chosen to match common
# practice; where it matters we say so beside the cell. `docs/DESIGN.md` records every such
# decision. This is the one notebook that teaches the protocol; the others refer back here.

# %% [markdown]
# ## Parameters
# Every knob of this notebook and the seed live in this one cell, which ends with
# `setup_notebook(SEED)`: the same first cell in every notebook. It seeds python, numpy and
# torch, chooses the device once (CUDA, then Apple MPS, then CPU: never a hard-coded `.cuda()`),
# gives every plotly figure a static PNG beside the interactive one (so a saved notebook shows
# its figures anywhere), and in the quick mode (`ELASTIC_EDU_QUICK=1`, what CI runs) pins torch to
# one thread. Nothing here trains, so the quick mode changes nothing else in this notebook; later
# notebooks also use it to shrink their training runs.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode, switched on by ELASTIC_EDU_QUICK=1
SEED = 0  # seeds python, numpy and torch
DATASET = "ml-100k"  # MovieLens 100K when it is on disk, else the synthetic set
EXAMPLE_USER = 0  # user row whose split we print
SHOW_LAST = 5  # how many of the latest items to print per history
KS = (10, 20, 50)  # cut-offs K of HR@K, NDCG@K, MRR@K
TOP_K = 10  # recommendations to list
MADE_UP_TITLES = ("Star Wars", "Fargo", "Toy Story")  # a history of our own (MovieLens titles)

setup = setup_notebook(SEED)  # threads, seeds, device, figures; prints what it chose
device = setup.device

# %% [markdown]
# ## 1. Environment
# `setup_report()` lists the versions this notebook ran with and the device it chose.

# %%
import numpy as np
import torch

from elastic_edu.tutorial import setup_report

for key, value in setup_report().items():
    print(f"{key:>12}: {value}")

# %% [markdown]
# ## 2. The data set
# `tutorial_data` loads MovieLens 100K (GroupLens: 943 users rating 1,682 movies, 100,000
# ratings with timestamps) when it is on this machine. Otherwise it generates the synthetic
# *planted-interest* set and prints a note saying so: every later number then describes the
# synthetic data instead. **Our decision**: every rating counts as an interaction (implicit
# feedback), whatever its value; item ids are remapped to 1..I and 0 is reserved for padding.

# %%
from elastic_edu.tutorial import tutorial_data

data = tutorial_data(DATASET)

# %%
# NBVAL_CHECK_OUTPUT
summary = data.summary()
print(data.name, summary)
if data.name == "ml-100k":
    assert summary == {"users": 943, "items": 1682, "interactions": 100000}
lengths = data.lengths()
print(
    f"history length: min {lengths.min()}, median {np.median(lengths):.0f}, "
    f"mean {lengths.mean():.1f}, max {lengths.max()}"
)

# %% [markdown]
# Every user has a sequence of item ids (`data.sequences[u]`, a numpy array). Lengths are very
# uneven: a few users have hundreds of items and most have far fewer. The histogram comes from
# `elastic_edu.viz`, which takes arrays and returns plotly figures.

# %%
from elastic_edu import viz

viz.length_histogram(lengths, title=f"{data.name}: items per user")

# %% [markdown]
# Popularity is just as uneven: the popularity curve (interactions per item against the item's
# popularity rank, log-log) shows a short head of very popular items and a long tail. A model that
# ignores the user and recommends the head is the **popularity baseline** we evaluate at the end.

# %%
# NBVAL_CHECK_OUTPUT
counts_all = np.bincount(np.concatenate(data.sequences), minlength=data.num_items + 1)[1:]
top = int(np.ceil(0.1 * (counts_all > 0).sum()))
share = np.sort(counts_all)[::-1][:top].sum() / counts_all.sum()
print(f"the top 10% of items ({top}) hold {share:.1%} of all interactions")
print(f"items seen once: {(counts_all == 1).sum()}")

# %%
viz.popularity_curve(counts_all, title=f"{data.name}: item popularity")

# %% [markdown]
# ## 3. From a log to sequences
# The raw log is a table of (user, item, timestamp) rows in file order. `build_sequences` (called
# by `tutorial_data`) groups it by user and sorts each user's rows by timestamp. **Our decision**:
# ties in timestamp keep file order (a *stable* sort). That sounds like a detail; it is not, as
# the next cells count.
#
# First we rebuild one user's sequence by hand from the raw log and check that the library agrees.

# %%
from elastic_edu.data import load_interactions
from elastic_edu.tutorial import movielens_available

# the raw log behind `data` (the synthetic fallback regenerates the same log)
log = (
    load_interactions(DATASET, download=False)
    if movielens_available(DATASET)
    else load_interactions("synthetic")
)
raw_items = np.asarray(data.item_ids[1:].tolist())  # raw id of item j is raw_items[j - 1]


def remap(raw):
    """Raw item ids -> ids 1..I (the library numbers items in sorted raw-id order)."""
    return np.searchsorted(raw_items, raw) + 1


raw_user = data.user_ids[EXAMPLE_USER]
rows = np.flatnonzero(log.users == raw_user)  # this user's rows, in file order
by_time = rows[np.argsort(log.timestamps[rows], kind="stable")]  # stable: ties keep file order
by_hand = remap(log.items[by_time])
assert np.array_equal(by_hand, data.sequences[EXAMPLE_USER])
print(f"user {raw_user}: {len(by_hand)} items; hand-built sequence == library sequence")

# %% [markdown]
# Now the ties. Sort the whole log by (user, timestamp, file position) and look at consecutive
# events of the same user: how often do they share a timestamp? And for how many users are the
# **last two** events tied? For those users the tie rule alone decides which item is the test
# target and which the validation target (section 4).

# %%
# NBVAL_CHECK_OUTPUT
order = np.lexsort((np.arange(len(log)), log.timestamps, log.users))  # last key sorts first
users_sorted, times_sorted = log.users[order], log.timestamps[order]
same_user = users_sorted[1:] == users_sorted[:-1]
tied = same_user & (times_sorted[1:] == times_sorted[:-1])
print(
    f"consecutive same-user pairs: {same_user.sum()}, tied: {tied.sum()} "
    f"({tied.sum() / same_user.sum():.1%})"
)
is_last = np.r_[users_sorted[1:] != users_sorted[:-1], True]  # last event of each user
last = np.flatnonzero(is_last)
last_two_tied = (times_sorted[last] == times_sorted[last - 1]) & (
    users_sorted[last] == users_sorted[last - 1]
)
print(f"users whose last two events are tied: {last_two_tied.sum()} of {is_last.sum()}")
if data.name == "ml-100k":
    assert tied.sum() / same_user.sum() > 0.5 and last_two_tied.sum() == 415

# %% [markdown]
# MovieLens users often rated many movies in one sitting, so timestamps collide. Here is one user
# whose last two ratings share a timestamp: the one that comes later in the file becomes the test
# target. A different tie rule (say, sorting by item id) would change this user's targets, and the
# reported metrics with them.

# %%
# NBVAL_CHECK_OUTPUT
tied_users = users_sorted[last[last_two_tied]]
if len(tied_users):
    raw_user = tied_users[0]
    u = int(np.flatnonzero(data.user_ids == raw_user)[0])
    rows = np.flatnonzero(log.users == raw_user)
    rows = rows[np.argsort(log.timestamps[rows], kind="stable")][-3:]
    print(f"user {raw_user}, last three events:")
    for r in rows:
        j = int(remap(log.items[r : r + 1])[0])
        print(f"  file row {r:>6}  time {log.timestamps[r]:.0f}  item {j:>4} {data.item_titles[j]}")
    print("sequence ends with", data.sequences[u][-3:].tolist())
    # the tied pair: same timestamp, and the later file row became the test target
    assert log.timestamps[rows[-1]] == log.timestamps[rows[-2]] and rows[-1] > rows[-2]
    assert data.sequences[u][-1] == remap(log.items[rows[-1] : rows[-1] + 1])[0]

# %% [markdown]
# ## 4. Leave-one-out
# **Our decision** (the common protocol for these data sets): for every user with at least three
# items, the **last** item is the test target, the **second last** the validation target, and the
# rest trains. The test history includes the validation item: at test time the model may read
# everything the user did before the test item. Models read only the last N items of a history
# (left-truncated) — the long-history problem ELASTIC is about.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.data import leave_one_out

split = leave_one_out(data)
print(f"evaluated users: {len(split.test)}, users too short to evaluate: {split.skipped_users}")
row = int(np.flatnonzero(split.test.users == EXAMPLE_USER)[0])
seq = data.sequences[EXAMPLE_USER]
print(f"user row {EXAMPLE_USER}: {len(seq)} items, last {SHOW_LAST}: {seq[-SHOW_LAST:].tolist()}")
print(
    f"  train      ({len(split.train[EXAMPLE_USER])} items) ends {split.train[EXAMPLE_USER][-SHOW_LAST:].tolist()}"
)
print(
    f"  validation history ends {split.valid.histories[row][-SHOW_LAST:].tolist()} -> target {split.valid.targets[row]}"
)
print(
    f"  test       history ends {split.test.histories[row][-SHOW_LAST:].tolist()} -> target {split.test.targets[row]}"
)
# the claims above, checked
assert np.array_equal(
    split.test.histories[row], np.r_[split.valid.histories[row], split.valid.targets[row]]
)
assert split.test.targets[row] == seq[-1] and split.valid.targets[row] == seq[-2]
assert np.array_equal(split.train[EXAMPLE_USER], seq[:-2])

# %% [markdown]
# ## 5. Full ranking and the metrics, by hand
# A model gives every item a score; the target's **rank** is its position when all items are
# sorted by score (1 = best). **Our decision**: we rank against *all* items, and ties count
# against the model:
#
# $$\text{rank} = 1 + \#\{\,j \ne \text{target} : s_j \ge s_\text{target}\,\}.$$
#
# A model that gives every item the same score therefore ranks the target last, not first. (Many
# papers rank the target against 100 sampled items instead of all of them; notebook 04 measures,
# on trained models, how much that flatters them.)
# With one relevant item per user, the metrics at cut-off K are
#
# $$\text{HR@K} = [r \le K],\qquad \text{NDCG@K} = \frac{[r \le K]}{\log_2(r+1)},\qquad
# \text{MRR@K} = \frac{[r \le K]}{r},$$
#
# averaged over users. A toy: three users, a catalogue of six items (ids 1..6; column 0 is the
# padding id and never counts).

# %%
# NBVAL_CHECK_OUTPUT
toy_scores = torch.tensor(
    [
        # pad  1    2    3    4    5    6
        [0.0, 0.9, 0.1, 0.5, 0.3, 0.8, 0.2],  # user 0: target 5, only item 1 scores higher
        [0.0, 0.4, 0.4, 0.4, 0.9, 0.1, 0.4],  # user 1: target 2, ties with 1, 3, 6; item 4 higher
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # user 2: target 1, the worst score
    ]
)
toy_targets = torch.tensor([5, 2, 1])

hand_ranks = []
for s, t in zip(toy_scores.tolist(), toy_targets.tolist()):
    beaten_by = [j for j in range(1, len(s)) if j != t and s[j] >= s[t]]
    hand_ranks.append(1 + len(beaten_by))
print("ranks by hand:", hand_ranks)


def hand_metrics(ranks, k):
    r = np.asarray(ranks, dtype=float)
    hit = r <= k
    return {
        f"HR@{k}": hit.mean(),
        f"NDCG@{k}": np.where(hit, 1 / np.log2(r + 1), 0).mean(),
        f"MRR@{k}": np.where(hit, 1 / r, 0).mean(),
    }


for k in (1, 3, 5):
    print({name: round(float(v), 4) for name, v in hand_metrics(hand_ranks, k).items()})

# %% [markdown]
# The library computes the same thing with tensors: `ranks_from_scores` counts, for a whole batch
# at once, how many items beat each target; `metrics_from_ranks` averages the metrics.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.evaluation import metrics_from_ranks, ranks_from_scores

lib_ranks = ranks_from_scores(toy_scores, toy_targets)
assert lib_ranks.tolist() == hand_ranks
lib = metrics_from_ranks(lib_ranks, ks=(1, 3, 5))
for k in (1, 3, 5):
    for name, value in hand_metrics(hand_ranks, k).items():
        assert abs(lib[name] - value) < 1e-12, name
print("library ranks:", lib_ranks.tolist(), "- metrics agree with the hand computation")

# %% [markdown]
# ### Masked or unmasked?
# Some papers remove the items a user already has from the ranking before scoring ("masking the
# history"): a movie is rarely watched twice, so why let it compete? Masking only ever lowers ranks,
# so masked metrics are higher. **Our decision**: report both, and say which beside every number;
# compare a number only with a peer that used the same choice. `ranks_from_scores` takes an
# `exclude` mask (the target itself is never excluded).

# %%
# NBVAL_CHECK_OUTPUT
toy_histories = [[1], [1, 3], [6, 5, 4]]  # items each toy user already has
exclude = torch.zeros_like(toy_scores, dtype=torch.bool)
for b, h in enumerate(toy_histories):
    exclude[b, h] = True
masked_ranks = ranks_from_scores(toy_scores, toy_targets, exclude=exclude)
print("unmasked ranks:", lib_ranks.tolist(), " masked ranks:", masked_ranks.tolist())
assert (masked_ranks <= lib_ranks).all()

# %% [markdown]
# On MovieLens a user rates a movie once, so a test target never appears in its own history:
# masking removes only competitors. We count that directly.

# %%
# NBVAL_CHECK_OUTPUT
in_history = np.mean(
    [t in set(h.tolist()) for h, t in zip(split.test.histories, split.test.targets)]
)
print(f"test targets already in their own history: {in_history:.1%}")

# %% [markdown]
# ## 6. A popularity baseline
# The popularity model (`"popularity"` in the model registry, `elastic_edu.models.REGISTRY`) is
# built like every other model, from a `ModelConfig`; instead of training, `count(split.train)`
# counts every item in the training sequences, and each item then scores its count, the same
# ranking for every user. It is the floor any sequential model must clear.
# `evaluate(model, eval_set)` ranks every target against all items (in item chunks, so memory stays
# bounded) and averages the metrics; `mask_history=True` masks each user's history.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu import ModelConfig
from elastic_edu.evaluation import evaluate
from elastic_edu.models import build_model

popularity_config = ModelConfig(model="popularity", num_items=data.num_items)
popularity = build_model(popularity_config).count(split.train).to(device)
unmasked = evaluate(popularity, split.test, ks=KS)
masked = evaluate(popularity, split.test, ks=KS, mask_history=True)
print(f"{'test, all items ranked':<28}" + "".join(f"{m:>9}" for m in unmasked))
print(f"{'unmasked':<28}" + "".join(f"{v:>9.4f}" for v in unmasked.values()))
print(f"{'history masked':<28}" + "".join(f"{v:>9.4f}" for v in masked.values()))
if data.name == "ml-100k":
    assert abs(unmasked["NDCG@10"] - 0.022) < 0.001
assert all(masked[m] >= unmasked[m] for m in unmasked)

# %% [markdown]
# The same numbers by hand: for popularity, a target's rank is one plus the number of other items
# whose training count is at least the target's. We compute every test user's rank with numpy and
# check it against the library's `rank_targets` (what `evaluate` averages).

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.evaluation import rank_targets

train_counts = np.bincount(np.concatenate(split.train), minlength=data.num_items + 1)
train_counts[0] = -1  # padding never competes
target_counts = train_counts[split.test.targets]  # (users,)
at_least = (train_counts[None, :] >= target_counts[:, None]).sum(axis=1)  # counts the target too
pop_ranks = 1 + (at_least - 1)  # rank = 1 + the other items scoring >= the target
assert np.array_equal(pop_ranks, rank_targets(popularity, split.test))
print(
    f"hand ranks == library ranks; median rank of a test target: {np.median(pop_ranks):.0f} "
    f"of {data.num_items}"
)
print(f"NDCG@10 from the hand ranks: {metrics_from_ranks(pop_ranks)['NDCG@10']:.4f}")

# %% [markdown]
# ### Recommendations for a new history
# `recommend(model, history, k)` returns the top-k (item id, score) pairs for any history you make
# up, by default without the items already in it. Popularity ignores the history, except that the
# history's items are dropped from the list.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.models import recommend

titles = data.item_titles
made_up = [next((j for j, t in enumerate(titles) if t == name), None) for name in MADE_UP_TITLES]
made_up = [j for j in made_up if j is not None] or [1, 2, 3]  # synthetic data: plain ids
print("history:", [(j, titles[j]) for j in made_up])
for j, score in recommend(popularity, made_up, k=TOP_K):
    print(f"  item {j:>4}  count {score:>5.0f}  {titles[j]}")
with_history = [j for j, _ in recommend(popularity, made_up, k=TOP_K, exclude_history=False)]
print("without exclusion, the history items in the list:", sorted(set(with_history) & set(made_up)))

# %% [markdown]
# ## Exercises
# Replace each `None` with your answer (a number), run the cell, then run the check cell below it.
# A solution follows each check.
#
# **Exercise 1.** A user's test target is ranked 3rd of all items. What is their NDCG@10? And if it
# were ranked 11th?

# %%
answer_ndcg_rank3 = None  # your answer, e.g. a float
answer_ndcg_rank11 = None

# %%
from elastic_edu.tutorial import check

ok = check(
    "NDCG@10 at rank 3",
    answer_ndcg_rank3,
    metrics_from_ranks([3])["NDCG@10"],
    hint="NDCG@K = 1 / log2(rank + 1) when rank <= K.",
)
ok = check(
    "NDCG@10 at rank 11",
    answer_ndcg_rank11,
    metrics_from_ranks([11])["NDCG@10"],
    hint="What happens when the rank is larger than K?",
)

# %% [markdown]
# *Solution 1.*

# %%
# NBVAL_CHECK_OUTPUT
assert check("NDCG@10 at rank 3", 1 / np.log2(3 + 1), metrics_from_ranks([3])["NDCG@10"])
assert check("NDCG@10 at rank 11", 0.0, metrics_from_ranks([11])["NDCG@10"])

# %% [markdown]
# **Exercise 2.** How many test targets are the single most popular item of the training data?
# (Use `split.train` and `split.test.targets`.) Each of those users gets a perfect rank 1 from
# the popularity baseline.

# %%
answer_most_popular = None  # an int

# %%
expected = int((split.test.targets == np.argmax(np.bincount(np.concatenate(split.train)))).sum())
ok = check(
    "test targets that are the top item",
    answer_most_popular,
    expected,
    hint="np.bincount over np.concatenate(split.train), then np.argmax, then compare.",
)

# %% [markdown]
# *Solution 2.*

# %%
# NBVAL_CHECK_OUTPUT
counts = np.bincount(np.concatenate(split.train))  # index = item id; id 0 never occurs
top_item = int(np.argmax(counts))
solution = int((split.test.targets == top_item).sum())
print(f"top item {top_item} {titles[top_item]!r}: {solution} test targets")
assert solution == int((pop_ranks == 1).sum())  # exactly the users popularity ranks first
assert check("test targets that are the top item", solution, expected)

# %% [markdown]
# **Exercise 3.** Ties. A model scores five real items `[0.7, 0.7, 0.7, 0.2, 0.9]` (ids 1..5)
# and the target is item 2. What is the target's rank?

# %%
answer_tie_rank = None  # an int

# %%
tie_scores = torch.tensor([[float("-inf"), 0.7, 0.7, 0.7, 0.2, 0.9]])  # column 0: padding
ok = check(
    "rank with ties",
    answer_tie_rank,
    int(ranks_from_scores(tie_scores, torch.tensor([2]))[0]),
    hint="Count every other item whose score is >= the target's, then add one.",
)

# %% [markdown]
# *Solution 3.* Items 1, 3 (tied) and 5 (higher) all count against the target: rank 4.

# %%
# NBVAL_CHECK_OUTPUT
assert check("rank with ties", 1 + 3, int(ranks_from_scores(tie_scores, torch.tensor([2]))[0]))

# %% [markdown]
# ## Summary
# - MovieLens 100K (or the synthetic stand-in) becomes one time-ordered item sequence per user;
#   ties in timestamp keep file order, and on ML-100K this rule decides the targets of 415 users.
# - Leave-one-out: last item tests, second last validates, the rest trains; the test history
#   includes the validation item.
# - Metrics rank the target against **all** items, with ties against the model; HR, NDCG and MRR
#   follow from the rank alone, and the library's `ranks_from_scores` / `metrics_from_ranks`
#   agree with the hand computation.
# - Masked and unmasked metrics differ; always say which one a number is.
# - Popularity, the floor: test NDCG@10 of about 0.022 on ML-100K unmasked (computed above).
#
# Next, `01_sasrec_quadratic_wall`: the causal self-attention baseline, and why its cost grows as
# the square of the history length.
