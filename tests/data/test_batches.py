"""Training samplers: every target once, no target in its own inputs, masks that hide, shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.config import TrainConfig
from elastic_edu.data.batches import AllPositions, Cloze, RandomCuts, make_sampler
from elastic_edu.histories import PAD
from elastic_edu.models import build_model

TRAIN = [np.arange(1, 12), np.arange(50, 54), np.array([60, 61]), np.arange(100, 139)]
MASK = 1000


def rows(inputs: torch.Tensor) -> list[list[int]]:
    return [[int(v) for v in r if v != PAD] for r in inputs]


def test_all_positions_targets_every_item_but_the_first_once():
    sampler = AllPositions(TRAIN, window=5, batch_size=4)
    seen = []
    for inputs, targets in sampler.epoch(np.random.default_rng(0)):
        for x, y in zip(rows(inputs), rows(targets)):
            assert len(x) == len(y)
            seen.extend(y)
    expected = [int(v) for seq in TRAIN for v in seq[1:]]
    assert sorted(seen) == sorted(expected)


def test_all_positions_target_is_the_next_input():
    for inputs, targets in AllPositions(TRAIN, 5, 4).epoch(np.random.default_rng(1)):
        x, y = inputs[:, -targets.shape[1] :], targets
        real = (x != PAD) & (y != PAD)
        nxt = torch.cat([x[:, 1:], y[:, -1:]], dim=1)
        assert torch.equal(nxt[real], y[real])


def test_context_prepends_older_items_that_are_never_targets():
    sampler = AllPositions([np.arange(1, 30)], window=5, batch_size=10, context=4)
    for inputs, targets in sampler.epoch(np.random.default_rng(0)):
        assert inputs.shape[1] <= 9 and targets.shape[1] <= 5
        for x, y in zip(rows(inputs), rows(targets)):
            window = x[-len(y) :]
            assert window[1:] == y[:-1]
            assert len(x) <= len(y) + 4
            assert x[: len(x) - len(y)] == list(range(window[0] - (len(x) - len(y)), window[0]))


def test_random_cuts_never_put_the_target_in_its_history():
    for inputs, target in RandomCuts(TRAIN, 5, 8, cuts_per_user=6).epoch(np.random.default_rng(0)):
        for x, y in zip(rows(inputs), target.tolist()):
            seq = next(s for s in TRAIN if y in s)
            assert y not in x and x == list(seq[: list(seq).index(y)][-5:])


def test_cloze_hides_the_items_it_asks_for():
    sampler = Cloze(TRAIN, 8, 4, mask_token=MASK, mask_prob=0.3, last_prob=0.25)
    for inputs, targets in sampler.epoch(np.random.default_rng(0)):
        masked = inputs == MASK
        assert torch.equal(masked, targets != PAD)  # exactly the masked positions are targets
        assert masked.any(dim=1).all()  # every window asks for something


def test_a_masked_items_identity_reaches_no_output(tiny_config):
    """Give every masked item another identity: the answers change, the inputs and every
    output do not."""
    torch.manual_seed(0)
    model = build_model(tiny_config("lda-bidir", max_len=8)).eval()
    seq = np.arange(1, 20)
    make = lambda s: Cloze([s], 8, 4, mask_token=model.mask_token, mask_prob=0.4)  # noqa: E731
    inputs, targets = make(seq).epoch(np.random.default_rng(5))[0]
    asked = targets[targets != PAD].tolist()
    other = np.where(np.isin(seq, asked), seq + 20, seq)  # ids 21..39: not in the sequence
    inputs2, targets2 = make(other).epoch(np.random.default_rng(5))[0]
    assert not torch.equal(targets, targets2)
    assert torch.equal(inputs, inputs2)
    torch.testing.assert_close(model.encode(inputs).hidden, model.encode(inputs2).hidden)


def test_cloze_last_prob_one_masks_only_the_last_item():
    sampler = Cloze(TRAIN, 8, 4, mask_token=MASK, mask_prob=0.5, last_prob=1.0)
    for inputs, _ in sampler.epoch(np.random.default_rng(0)):
        assert ((inputs == MASK).sum(dim=1) == 1).all() and (inputs[:, -1] == MASK).all()


def test_shards_split_one_epoch_between_ranks():
    rng = lambda: np.random.default_rng(7)  # noqa: E731 - same epoch on every rank
    whole = AllPositions(TRAIN, 3, 2).epoch(rng())
    parts = [AllPositions(TRAIN, 3, 2, rank=r, world_size=2).epoch(rng()) for r in (0, 1)]
    assert len(parts[0]) == len(parts[1]) == len(whole) // 2
    for i, (x, _) in enumerate(parts[1]):
        assert torch.equal(x, whole[2 * i + 1][0])


def test_make_sampler_follows_the_objective_and_the_model(tiny_config):
    cfg = TrainConfig(objective="all", batch_size=4)
    causal = build_model(tiny_config("elastic-causal"))
    sampler = make_sampler("all", TRAIN, causal, cfg)
    assert isinstance(sampler, AllPositions) and sampler.context == 8
    cloze = make_sampler("cloze", TRAIN, build_model(tiny_config("lda-bidir")), cfg)
    assert isinstance(cloze, Cloze) and cloze.mask_token == 41
    with pytest.raises(ValueError, match="not trained with the cloze"):
        make_sampler("cloze", TRAIN, causal, cfg)


def test_random_cuts_draw_cuts_per_user_from_users_with_two_items():
    """Users with under two training items give no sample; the others `cuts_per_user` each,
    every row the history before its cut (left-padded, at most the window) and the item there."""
    train = [np.arange(1, 13), np.array([20]), np.arange(30, 37), np.arange(40, 65)]
    where = {int(i): (u, p) for u, s in enumerate(train) for p, i in enumerate(s)}
    batches = RandomCuts(train, 8, 4, cuts_per_user=5).epoch(np.random.default_rng(1))
    users = []
    for inputs, targets in batches:
        assert inputs.shape[1] <= 8 and inputs.shape[0] == targets.shape[0]
        for row, target in zip(inputs.tolist(), targets.tolist()):
            u, t = where[target]
            users.append(u)
            history = [i for i in row if i != PAD]
            assert t >= 1 and history == train[u][max(0, t - 8) : t].tolist()
            assert row[: len(row) - len(history)] == [PAD] * (len(row) - len(history))
    assert sorted(users) == sorted([0] * 5 + [2] * 5 + [3] * 5)


def test_all_positions_pads_inputs_and_targets_alike():
    for inputs, targets in AllPositions(TRAIN, 8, 3).epoch(np.random.default_rng(2)):
        assert inputs.shape == targets.shape and inputs.shape[1] <= 8
        assert torch.equal(inputs == PAD, targets == PAD)
