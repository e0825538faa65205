"""Histories: left padding and truncation, the [MASK] id."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.histories import PAD, mask_id, pad_left


def test_pad_left():
    out = pad_left([np.array([1, 2, 3, 4, 5]), np.array([7])], keep=3)
    assert out.dtype == torch.int64
    assert out.tolist() == [[3, 4, 5], [PAD, PAD, 7]]
    assert pad_left([np.array([1, 2])], keep=3, width=4).tolist() == [[0, 0, 1, 2]]
    assert pad_left([[1, 2, 3]], keep=5, width=2).tolist() == [[2, 3]]  # width cuts too
    with pytest.raises(ValueError, match="empty"):
        pad_left([np.array([1]), np.array([], dtype=np.int64)], keep=3)
    with pytest.raises(ValueError, match="no histories"):
        pad_left([], keep=3)
    with pytest.raises(ValueError, match="keep=0"):
        pad_left([[1]], keep=0)


def test_mask_id_is_one_past_the_catalogue():
    assert mask_id(40) == 41 and PAD == 0
