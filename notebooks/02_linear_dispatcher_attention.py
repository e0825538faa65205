# %% [markdown]
# # 02 · Linear dispatcher attention
#
# *About 20 minutes to read; runs in under a minute on a CPU in quick mode; no GPU needed.*
#
# Notebook 01 ended at a wall: self-attention compares every pair of positions, N² of them.
# ELASTIC (Deng et al., arXiv 2408.09380) puts a small panel of **k interest experts** between the
# positions. Picture k note-takers: each reads the whole history and writes one summary of what
# it cares about (*aggregate*); then every position reads the k summaries instead of the whole
# history (*dispatch*). No two positions are ever compared, so the cost is N·k instead of N².
#
# **Learning goals.** After this notebook you can
# 1. build aggregate and dispatch by hand with einops and check them against the library's
#    `DispatcherAttention` (same weights) and a float64 loop;
# 2. count the layer's FLOPs: doubling N doubles them (self-attention's: about four times);
# 3. say why the paper's layer is not causal, and build the causal form we train (**ours**);
# 4. run the causal layer as a recurrence, one event at a time.
#
# **Paper or ours?** The **paper** (abstract only) gives k experts and a linear dispatcher
# attention; the equations below, the causal form and its recurrence are **our decisions**
# (`docs/DESIGN.md` says why). Names: **ELASTIC** is the causal model `--model elastic` trains
# (`elastic-causal`); the paper's non-causal layer trains as **ELASTIC-bidir (non-causal)**
# (`elastic-bidir`). Without the memory of notebook 03 (k learned experts shared by every user)
# they are **LDA-only** (`lda-causal`) and `lda-bidir`.
# The long demonstrations (the leak, what the experts learn) are in notebook 08, off the core
# path.

# %%
from elastic_edu.tutorial import quick_mode, setup_notebook

QUICK = quick_mode()  # CI quick mode; nothing trains here, so it changes nothing
SEED = 0
TOY_BATCH, TOY_LEN, TOY_EXPERTS, TOY_DIM, TOY_HEADS = 2, 7, 3, 8, 2  # the hand-built checks
CAUSAL_LEN = 100  # the causal check: several of the library's chunks
FLOP_NS = [1024, 2048, 4096]  # FLOP counts of one layer
FLOP_DIM, FLOP_HEADS, FLOP_EXPERTS = 32, 2, 8
STREAM_LEN = 12  # events streamed through one causal block

setup = setup_notebook(SEED)  # threads, seeds, device, figures (notebook 00)

# %%
import copy
import math

import torch
from einops import einsum, rearrange

from elastic_edu.nn import DispatcherAttention, reference

# %% [markdown]
# ## 1. One layer: aggregate, then dispatch
# Input: history states $X$ (b, n, d) with a padding mask, and k experts $E$ (b, e, d) (e is the
# einops letter of the expert axis, k its size), h heads of width $d_h = d/h$.
#
# 1. **Aggregate**, experts ask and positions answer:
#    $A = \operatorname{softmax}_n\big((E W_q)(X W_k)^\top / \sqrt{d_h}\big)$, padding masked;
#    $E \leftarrow E + \big(A\,(X W_v)\big) W_o$.
# 2. **Dispatch**, positions ask and the updated experts answer:
#    $D = \operatorname{softmax}_e\big((X W_q')(E W_k')^\top / \sqrt{d_h}\big)$;
#    $X \leftarrow X + \big(D\,(E W_v')\big) W_o'$, then a feed-forward.
#
# Both score tensors hold b·h·n·k numbers, not b·h·n². In the library each step is a pre-norm
# residual update, $W_k, W_v$ are one layer `to_kv`, and the pattern strings below are the shape
# documentation.


# %%
def aggregate(x, experts, pad, w_q, w_kv, w_out, b_out, heads):
    """Experts read the history: update (b, e, d), weights (b, h, e, n)."""
    q = rearrange(einsum(experts, w_q, "b e d, o d -> b e o"), "b e (h d) -> b h e d", h=heads)
    kv = einsum(x, w_kv, "b n d, o d -> b n o")
    k, v = rearrange(kv, "b n (two h d) -> two b h n d", two=2, h=heads)
    sim = einsum(q, k, "b h e d, b h n d -> b h e n") / math.sqrt(q.shape[-1])  # k x n scores
    weights = sim.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf")).softmax(dim=-1)
    out = rearrange(einsum(weights, v, "b h e n, b h n d -> b h e d"), "b h e d -> b e (h d)")
    return einsum(out, w_out, "b e d, o d -> b e o") + b_out, weights


def dispatch(x, experts, w_q, w_kv, w_out, b_out, heads):
    """Positions read the experts: update (b, n, d), weights (b, h, n, e). No mask needed."""
    q = rearrange(einsum(x, w_q, "b n d, o d -> b n o"), "b n (h d) -> b h n d", h=heads)
    kv = einsum(experts, w_kv, "b e d, o d -> b e o")
    k, v = rearrange(kv, "b e (two h d) -> two b h e d", two=2, h=heads)
    weights = (einsum(q, k, "b h n d, b h e d -> b h n e") / math.sqrt(q.shape[-1])).softmax(-1)
    out = rearrange(einsum(weights, v, "b h n e, b h e d -> b h n d"), "b h n d -> b n (h d)")
    return einsum(out, w_out, "b n d, o d -> b n o") + b_out, weights


def lda_layer(layer, x, experts, pad):
    """The whole layer from the two steps, with the layer's own norms and weights."""
    p, h = layer.aggregate_proj, layer.norm_x(x)  # the history, normalised once
    a, agg = aggregate(h, layer.norm_e1(experts), pad, p.to_q.weight, p.to_kv.weight,
                       p.to_out.weight, p.to_out.bias, layer.heads)  # fmt: skip
    experts = experts + a
    p = layer.dispatch_proj
    d, disp = dispatch(h, layer.norm_e2(experts), p.to_q.weight, p.to_kv.weight,
                       p.to_out.weight, p.to_out.bias, layer.heads)  # fmt: skip
    return x + d, experts, agg, disp


# %% [markdown]
# The check: the library's layer with its random weights, our function fed the same weights, and
# `reference.dispatcher_reference`, a float64 loop over users, heads and experts that shares
# nothing with our code but the weights. User 1 has three padding positions on the left.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
layer = DispatcherAttention(TOY_DIM, TOY_HEADS).eval()
x = torch.randn(TOY_BATCH, TOY_LEN, TOY_DIM)
experts = torch.randn(TOY_BATCH, TOY_EXPERTS, TOY_DIM)
pad = torch.zeros(TOY_BATCH, TOY_LEN, dtype=torch.bool)
pad[1, :3] = True
with torch.no_grad():
    our_x, our_e, our_agg, our_disp = lda_layer(layer, x, experts, pad)
    lib = layer(x, experts, pad, return_weights=True)  # the einsum path, weights returned
    fused = layer(x, experts, pad)  # torch's fused attention kernel
    ref_x, ref_e = reference.dispatcher_reference(layer, x, experts, pad)
for ours, theirs in ((our_x, lib.x), (our_e, lib.experts), (our_x, fused.x),
                     (our_agg, lib.aggregate), (our_disp, lib.dispatch)):  # fmt: skip
    torch.testing.assert_close(ours, theirs)
torch.testing.assert_close(our_x.double(), ref_x, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(our_e.double(), ref_e, rtol=1e-5, atol=1e-5)
assert torch.all(our_agg[1, :, :, :3] == 0)  # padding is never read
print("hand-built layer == DispatcherAttention (both paths) == float64 loop, to 1e-5")
print(
    "expert 0 of user 1 reads the positions with weights", lib.aggregate[1, 0, 0].numpy().round(3)
)

# %% [markdown]
# ## 2. The cost, counted
# Multiply-adds count 2 FLOPs. Aggregate: expert queries and outputs $4bkd^2$, history keys and
# values $4bnd^2$, scores and weighted values $4bnkd$; dispatch: the same with n and k swapped.
# Total $8bnd^2 + 8bkd^2 + 8bnkd$, linear in N; causal self-attention (notebook 01) costs
# $8bnd^2 + 4bn^2d$. `elastic_edu.nn.flops` holds both formulas, and the causal form's of
# section 4; `count_layer_flops` lets PyTorch count the matrix products of one call as they run
# (on the *meta* device: shapes only, nothing computed). Deep dive 08 plots these counts over
# more lengths.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.nn import CausalSelfAttention
from elastic_edu.nn.causal_dispatcher import CausalDispatcherAttention
from elastic_edu.nn.flops import causal_dispatcher_flops, dispatcher_flops, self_attention_flops
from elastic_edu.tutorial import count_layer_flops

print(f"{'N':>6}{'dispatcher':>14}{'causal dispatcher':>19}{'self-attention':>16}")
rows = []
for n in FLOP_NS:
    row = (count_layer_flops(DispatcherAttention, n, FLOP_DIM, FLOP_HEADS, FLOP_EXPERTS),
           count_layer_flops(CausalDispatcherAttention, n, FLOP_DIM, FLOP_HEADS, FLOP_EXPERTS),
           count_layer_flops(CausalSelfAttention, n, FLOP_DIM, FLOP_HEADS))  # fmt: skip
    assert row == (dispatcher_flops(1, n, FLOP_EXPERTS, FLOP_DIM),
                   causal_dispatcher_flops(1, n, FLOP_EXPERTS, FLOP_DIM, FLOP_HEADS),
                   self_attention_flops(1, n, FLOP_DIM))  # fmt: skip
    rows.append(row)
    print(f"{n:>6}" + "".join(f"{v:>{w},}" for v, w in zip(row, (14, 19, 16))))
growth = [b / a for a, b in zip(rows[-2], rows[-1])]
print("counted == formula; doubling N multiplies them by", " / ".join(f"{g:.2f}" for g in growth))


# %% [markdown]
# ## 3. The paper's layer is not causal
# Position t reads the experts, and the experts have read the whole history, items after t
# included: changing a later item changes earlier outputs (section 4 checks it). SASRec, which is
# causal, trains with the objective **`all`**: every position t of a window predicts item t+1 at
# once. The paper's layer may not: its position t has already seen item t+1 through the experts
# and can copy it. So the non-causal models train with objectives whose targets are not in the
# input: **`cut`** (the history before a random cut point predicts the item at the cut) or
# **`cloze`** (some items are replaced by a **[MASK]** token and predicted from both sides, as
# BERT4Rec does); they read their prediction at a [MASK] appended after the history. The
# library refuses `all` for them. Deep dive 08 trains a model the leaky way and shows what the
# leak does; notebook 05 compares the objectives. The price: `cut` gives one target per forward
# pass where `all` gives about N, which is why we made the dispatcher causal.
#
# ## 4. The causal dispatcher (**ours**, beyond the paper)
# **The idea.** Position t may read only items s ≤ t, so each expert needs a summary of every
# prefix, $A_e(t)$. Recomputed per prefix that is N² again; but if the expert's question (its
# query) is fixed for the window, a softmax average over s ≤ t is a ratio of two **running
# sums**, and a cumulative sum gives every t at once. Each summary also holds the expert's own
# entry (so it is never empty), and each expert has a learned **recency rate** λ: a large rate
# makes it summarise the last few items, rate 0 the whole prefix (this replaces a position table).
#
# **How a position picks its experts.** Three projections, in plain words:
# - the **route** $x_t W_r$ says what kind of item sits at t;
# - the **expert key** $E_e W_c$ says what kind of item expert e stands for, fixed for the
#   window; route · key is a standing preference, blind to the history;
# - the **gate** $x_t W_g$ is a question put to each expert's summary so far: gate · $A_e(t)$ is
#   high when what expert e has gathered up to t matches this position.
#
# Then, per head, with item keys $k_s$, values $v_s$ and the expert's own entry $(k_{e0}, v_{e0})$:
#
# $$A_e(t) = \frac{e^{a_{e0}} v_{e0} + \sum_{s \le t} e^{a_{es}} v_s}{e^{a_{e0}} + \sum_{s \le t} e^{a_{es}}},\quad
# a_{es} = \frac{q_e \cdot k_s}{\sqrt{d_h}} + \lambda_e \tau_s,\quad
# D_{te} = \operatorname{softmax}_e \frac{(x_t W_r)\cdot(E_e W_c) + (x_t W_g)\cdot A_e(t)}{\sqrt{d_h}},$$
#
# with $\tau_s$ the number of items up to s, and output $W_o \sum_e D_{te} A_e(t)$.
#
# **By hand.** `expert_terms` gives what stays fixed for the window ($q_e$, the own entry,
# $\lambda_e$, $E_e W_c$); `reference.prefix_softmax_average` forms every $A_e(t)$ with cumulative
# sums, the readable way that holds all n·k summaries. The library's `CausalDispatcherAttention`
# never holds them: it works through chunks of up to 32 positions and carries a small state from
# chunk to chunk (`elastic_edu/nn/chunkwise.py`). We compute ours in float64 on a window of
# `CAUSAL_LEN` positions (several chunks) and ask the float32 library to agree to 1e-5.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(SEED)
causal = CausalDispatcherAttention(TOY_DIM, TOY_HEADS).eval()
torch.nn.init.normal_(causal.to_rate.weight, std=0.5)  # spread the rates, as training does
x = torch.randn(TOY_BATCH, CAUSAL_LEN, TOY_DIM)
experts = torch.randn(TOY_BATCH, TOY_EXPERTS, TOY_DIM)
pad = torch.zeros(TOY_BATCH, CAUSAL_LEN, dtype=torch.bool)
pad[1, :3] = True
c64 = copy.deepcopy(causal).double()  # a float64 copy: same weights
x64, e64, dh = x.double(), experts.double(), TOY_DIM // TOY_HEADS
with torch.no_grad():
    terms = c64.expert_terms(e64)  # query, own_score, own_value, key (W_c), rate: (b, h, e, ...)
    k, v = rearrange(c64.to_kv(x64), "b n (two h d) -> two b h n d", two=2, h=TOY_HEADS)
    tau = (~pad).cumsum(dim=1).double()  # (b, n): items up to s, padding not counted
    a = einsum(terms.query, k, "b h e d, b h n d -> b h e n") / math.sqrt(dh)
    a = a + einsum(terms.rate, tau, "b h e, b n -> b h e n")  # + recency
    a = a.masked_fill(rearrange(pad, "b n -> b 1 1 n"), float("-inf"))
    summary = reference.prefix_softmax_average(a, v, terms.own_score, terms.own_value)
    route, gate = rearrange(c64.to_route(x64), "b n (two h d) -> two b h n d", two=2, h=TOY_HEADS)
    sim = einsum(route, terms.key, "b h n d, b h e d -> b h n e")  # standing preference
    sim = sim + einsum(gate, summary, "b h n d, b h n e d -> b h n e")  # what each has read
    our_d = (sim / math.sqrt(dh)).softmax(dim=-1)  # (b, h, n, e)
    ours = c64.to_out(rearrange(einsum(our_d, summary, "b h n e, b h n e d -> b h n d"),
                                "b h n d -> b n (h d)"))  # fmt: skip
    lib = causal(x, experts, pad, return_weights=True)  # chunkwise, float32
real = ~pad  # padding reads nothing in the library (its output there is unused)
torch.testing.assert_close(lib.x.double()[real], ours[real], rtol=1e-5, atol=1e-5)
torch.testing.assert_close(
    rearrange(lib.dispatch.double(), "b h n e -> b n h e")[real],
    rearrange(our_d, "b h n e -> b n h e")[real],
    rtol=1e-5,
    atol=1e-5,
)
print(f"summaries held by hand: {tuple(summary.shape)} (b, h, n, e, d_h)")
print("hand-built (float64) == chunkwise CausalDispatcherAttention (float32), to 1e-5")

# %% [markdown]
# Causal, and the paper's layer not: change every input after position 3 and count the earlier
# outputs that move, in both layers.

# %%
# NBVAL_CHECK_OUTPUT
bidir = DispatcherAttention(TOY_DIM, TOY_HEADS).eval()
later = x.clone()
later[:, 4:] = torch.randn_like(later[:, 4:])
with torch.no_grad():
    for name, f in (("paper's layer (ELASTIC-bidir, non-causal)", lambda z: bidir(z, experts, pad).x),
                    ("causal layer", lambda z: causal(z, experts, pad).x)):  # fmt: skip
        moved = (f(x) - f(later)).abs().amax(dim=-1)[:, :4] > 1e-6  # (b, 4)
        print(
            f"{name}: outputs at positions 0..3 that moved: {int(moved.sum())} of {moved.numel()}"
        )

# %% [markdown]
# ## 5. One event at a time
# Running sums can be carried forward: per expert and head a running maximum `top`, a sum of
# weights `den` and a weighted sum of values `num`, $k(d_h + 2)$ numbers, are all the layer needs
# to know about the past, and a new event updates them in O(k d) however long the history is.
# `CausalDispatcherBlock` (the layer with its norms and feed-forward) has `start(experts)` and
# `step(x_t, state, time)`; stepped event by event it must give what it gives for the whole window.

# %%
# NBVAL_CHECK_OUTPUT
from elastic_edu.nn.causal_dispatcher import CausalDispatcherBlock

torch.manual_seed(SEED)
block = CausalDispatcherBlock(TOY_DIM, TOY_HEADS).eval()
events, stream_experts = torch.randn(1, STREAM_LEN, TOY_DIM), torch.randn(1, TOY_EXPERTS, TOY_DIM)
with torch.no_grad():
    whole = block(events, stream_experts, torch.zeros(1, STREAM_LEN, dtype=torch.bool)).x
    state, stepped = block.start(stream_experts), []
    for t in range(STREAM_LEN):
        out_t, state = block.step(events[:, t], state, torch.tensor([t + 1]))  # (1, d)
        stepped.append(out_t)
torch.testing.assert_close(rearrange(stepped, "n b d -> b n d"), whole, rtol=1e-5, atol=1e-5)
numbers = sum(getattr(state, name).numel() for name in ("top", "den", "num"))
print(f"{STREAM_LEN} steps == the whole window; the state holds {numbers} numbers at any length")

# %% [markdown]
# ## Summary
# - One dispatcher layer is two small attentions: k experts read the n positions (aggregate),
#   then the positions read the experts (dispatch). Our einops version equals the library's
#   `DispatcherAttention` and a float64 loop. The form is **ours**; linear cost through a fixed k
#   is the **paper**'s claim, and the FLOP counts confirm it: doubling N doubles the cost.
# - The paper's layer is not causal, so `elastic-bidir` trains with `cut` or `cloze`, never `all`
#   (the leak: deep dive 08).
# - **Ours**: the causal dispatcher. Each expert's summary of every prefix is a softmax average of
#   running sums; a position picks experts by route · key and gate · summary. Built by hand it
#   equals the chunkwise `CausalDispatcherAttention`; it is causal, linear in N, and runs as a
#   recurrence with a fixed-size state. ELASTIC (`elastic-causal`) and LDA-only use it and train
#   on every position.
#
# Next, notebook 03: where the full model's experts come from, a product-key memory. Deep dive
# 08: the leak in full, and what the experts learn on data with planted interests.
