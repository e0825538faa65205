"""fit(): repeatable on CPU, stops on NaN, checkpoints refuse a mismatched config, no leakage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.models import build_model
from elastic_edu.train import fit, load_checkpoint, save_checkpoint, seed_everything


@pytest.fixture(scope="module")
def split():
    data = load_sequences("synthetic", num_users=40, num_items=60, seq_len=20, seed=3)
    return leave_one_out(data)


def _configs(model, num_items, objective, **kw):
    mc = ModelConfig(
        model=model,
        num_items=num_items,
        max_len=12,
        dim=16,
        heads=2,
        layers=1,
        dropout=0.1,
        experts=4,
        subkeys=4,
        candidates=4,
        key_dim=8,
    )
    tc = TrainConfig(
        objective=objective, epochs=2, batch_size=16, cuts_per_user=2, device="cpu", **kw
    )
    return mc, tc


@pytest.mark.parametrize("model,objective", [("sasrec", "all"), ("elastic", "cut")])
def test_same_seed_same_metrics(split, model, objective):
    results = []
    for _ in range(2):
        mc, tc = _configs(model, split.num_items, objective, seed=7)
        seed_everything(7)  # the weights' initialisation draws from the global generator
        fitted = fit(build_model(mc), split, tc, progress=False)
        results.append([(h["loss"], h["valid_NDCG@10"]) for h in fitted.history])
    assert results[0] == results[1]


def test_stops_on_nan_with_message(split):
    mc, tc = _configs("sasrec", split.num_items, "all", lr=1e-3)
    model = build_model(mc)
    with torch.no_grad():
        model.item_emb.weight[1:] = float("nan")
    with pytest.raises(FloatingPointError, match="epoch 1, step 0"):
        fit(model, split, tc, progress=False)


def test_non_causal_model_refuses_all_positions(split):
    mc, tc = _configs("elastic", split.num_items, "all")
    with pytest.raises(ValueError, match="future"):
        fit(build_model(mc), split, tc, progress=False)


def test_checkpoint_roundtrip_and_mismatch(split, tmp_path):
    mc, tc = _configs("lda", split.num_items, "cut")
    result = fit(build_model(mc), split, tc, progress=False, checkpoint=tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt", mc)
    for (k, a), b in zip(result.model.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(a.cpu(), b, msg=k)
    other = ModelConfig(**{**mc.to_dict(), "dim": 32})
    with pytest.raises(ValueError, match="another config.*dim"):
        load_checkpoint(tmp_path / "m.pt", other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "again.pt", loaded, tc)
    assert not list(tmp_path.glob("*.tmp"))


def test_training_never_sees_eval_targets(split):
    """Leave-one-out: train[u] is the test history minus the validation target (its last item)."""
    valid = dict(zip(split.valid.users.tolist(), split.valid.targets.tolist()))
    for u, hist in zip(split.test.users.tolist(), split.test.histories):
        train = split.train[u]
        assert len(train) == len(hist) - 1
        np.testing.assert_array_equal(train, hist[:-1])
        assert valid[u] == hist[-1]  # the validation target follows the training part
