"""recommend(): the top-k items for one new history through the model's own score, with its
refusals (empty histories, ids that are not items, non-finite scores) and its warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from elastic_edu.models import NonFiniteScores, recommend
from tests.conftest import counted_popularity, diverged_sasrec, tiny_sasrec


def test_popularity_recommends_by_counts():
    pop = counted_popularity([np.array([1, 2, 2, 3]), np.array([2, 3, 3, 3])], num_items=5)
    recs = recommend(pop, [3], k=2)
    assert [i for i, _ in recs] == [2, 1]  # 3 is in the history and excluded
    assert [i for i, _ in recommend(pop, [3], k=2, exclude_history=False)] == [3, 2]


def test_recommend_errors():
    model = tiny_sasrec()
    with pytest.raises(ValueError, match="empty"):
        recommend(model, [], k=5)
    with pytest.raises(ValueError, match="outside 1..40"):
        recommend(model, [0, 41], k=5)
    with pytest.raises(ValueError, match="k=0"):
        recommend(model, [1], k=0)


@pytest.mark.parametrize(
    "history, shown",
    [
        ([3.7], "history[0]=3.7 (float)"),
        ([1, True], "history[1]=True (bool)"),
        ([2, "3"], "history[1]='3' (str)"),
        (np.array([1.0, 2.0]), "history[0]=np.float64(1.0)"),
        (torch.tensor([1.5]), "history[0]=np.float32(1.5)"),
        (np.array([True]), "history[0]=np.True_"),
    ],
)
def test_recommend_rejects_ids_that_are_not_integers(history, shown):
    # 3.7 used to become item 3 without a word
    with pytest.raises(ValueError, match="integer item ids") as err:
        recommend(tiny_sasrec(), history, k=5)
    assert shown in str(err.value)


def test_recommend_accepts_numpy_and_torch_integers():
    model = tiny_sasrec()
    expected = recommend(model, [3, 7], k=5)
    for history in (
        [np.int64(3), np.int32(7)],
        np.array([3, 7], dtype=np.int16),
        np.array([3, 7], dtype=np.uint8),
        torch.tensor([3, 7]),
        (3, 7),
    ):
        assert recommend(model, history, k=5) == expected
    with pytest.raises(ValueError, match="k=2.0 must be an integer"):
        recommend(model, [3], k=2.0)


def test_recommend_warns_when_fewer_than_k_items_are_left():
    pop = counted_popularity([np.array([1, 2, 2, 3, 4, 5])], num_items=5)
    with pytest.warns(UserWarning) as record:
        recs = recommend(pop, [2, 3, 2], k=4)
    assert {i for i, _ in recs} == {1, 4, 5}  # all that is left, best first
    assert [s for _, s in recs] == sorted((s for _, s in recs), reverse=True)
    message = str(record[0].message)
    assert (
        "only 3 of the 5 items are left" in message and "excluding the 2 in the history" in message
    )
    assert "not k=4" in message and record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(recommend(pop, [2, 3], k=3)) == 3  # exactly k left: no warning
        assert len(recommend(pop, [2, 3], k=5, exclude_history=False)) == 5


def test_recommend_refuses_non_finite_scores():
    with pytest.raises(NonFiniteScores, match="to this history"):
        recommend(diverged_sasrec(), [1, 2, 3], k=5)
    assert len(recommend(tiny_sasrec(), [1, 2, 3], k=5)) == 5
