"""fit(): repeatable on CPU, stops on NaN (loss or validation scores), checkpoints, signals,
resuming exactly, no leakage."""

from __future__ import annotations

import errno
import os
import signal
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from elastic_edu.config import ModelConfig, TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.models import NonFiniteScores, build_model
from elastic_edu.training import Callback, Run, fit, seed_everything
from elastic_edu.training.checkpoint import (
    CheckpointError,
    data_fingerprint,
    last_path,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tests.conftest import make_tiny_config


@pytest.fixture(scope="module")
def split():
    data = load_sequences("synthetic", num_users=40, num_items=60, seq_len=20, seed=3)
    return leave_one_out(data)


def _configs(model, num_items, objective, **kw):
    mc = make_tiny_config(model, num_items=num_items, max_len=12, layers=1, dropout=0.1)
    tc = TrainConfig(objective=objective, epochs=kw.pop("epochs", 2), batch_size=16,
                     cuts_per_user=2, device="cpu", **kw)  # fmt: skip
    return mc, tc


def _model(mc: ModelConfig, seed: int = 7):
    seed_everything(seed)  # the weights' initialisation draws from the global generator
    return build_model(mc)


def _history(fitted) -> list[dict]:
    """The per-epoch history without the wall-clock times."""
    return [{k: v for k, v in row.items() if k != "seconds"} for row in fitted.history]


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x.cpu(), y.cpu()), k


class At(Callback):
    """Call `action(run)` once, after step `step` of epoch `epoch`."""

    def __init__(self, epoch: int, step: int, action):
        self.epoch, self.step, self.action, self.first = epoch, step, action, None

    def on_step_end(self, run: Run) -> None:
        if run.epoch == self.epoch:
            self.first = self.first or run.step
            if run.step - self.first + 1 == self.step:
                self.action(run)


@pytest.mark.parametrize(
    "model,objective", [("sasrec", "all"), ("elastic-bidir", "cut"), ("lda-bidir", "cloze")]
)
def test_same_seed_same_metrics(split, model, objective):
    results = []
    for _ in range(2):
        mc, tc = _configs(model, split.num_items, objective, seed=7)
        fitted = fit(_model(mc), split, tc, progress=False)
        results.append([(h["loss"], h["valid_NDCG@10"]) for h in fitted.history])
    assert results[0] == results[1] and len(results[0]) == 2


def test_stops_on_nan_with_message(split):
    mc, tc = _configs("sasrec", split.num_items, "all", lr=1e-3)
    model = build_model(mc)
    with torch.no_grad():
        model.item_emb.weight[1:] = float("nan")
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1, step 1"):
        fit(model, split, tc, progress=False)


def test_non_finite_validation_scores_stop_training(split):
    """Weights that diverge in an epoch's last step give a finite loss but NaN scores: the
    validation refuses them and training stops there (they used to rank every target first)."""
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=3)

    class Diverge(Callback):
        epochs = 0

        def on_step_end(self, run: Run) -> None:
            if run.step == run.steps_per_epoch:  # the last step of epoch 1
                with torch.no_grad():
                    run.model.item_emb.weight[5] = float("nan")

        def on_epoch_end(self, run: Run) -> None:
            self.epochs += 1

    hook = Diverge()
    with pytest.raises(NonFiniteScores, match="validation after epoch 1 stopped training") as err:
        fit(_model(mc), split, tc, progress=False, callbacks=[hook])
    assert "to 40 of 40 users and 60 of 60 items" in str(err.value) and hook.epochs == 0


def test_non_causal_model_refuses_all_positions(split):
    mc, tc = _configs("elastic-bidir", split.num_items, "all")
    with pytest.raises(ValueError, match="future"):
        fit(build_model(mc), split, tc, progress=False)


def test_checkpoint_roundtrip_and_mismatch(split, tmp_path):
    mc, tc = _configs("lda-bidir", split.num_items, "cut")
    result = fit(build_model(mc), split, tc, progress=False, checkpoint=tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt", mc)
    _assert_same_weights(result.model, loaded)
    other = ModelConfig(**{**mc.to_dict(), "dim": 32})
    with pytest.raises(CheckpointError, match="another config.*dim"):
        load_checkpoint(tmp_path / "m.pt", other)
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "again.pt", loaded, tc)
    assert not list(tmp_path.glob("*.tmp"))
    assert last_path(tmp_path / "m.pt").is_file()  # the resume checkpoint beside it


@pytest.mark.parametrize("model,objective", [("sasrec", "all"), ("elastic-bidir", "cut")])
def test_two_epochs_then_resume_to_four_equals_four_epochs(split, tmp_path, model, objective):
    """The resume checkpoint carries the optimizer, the history, the best weights and every
    random generator (sampler and dropout): stopping and resuming changes nothing."""
    mc, tc = _configs(model, split.num_items, objective, epochs=4, eval_every=1)
    straight = fit(_model(mc), split, tc, progress=False)
    ckpt = tmp_path / "m.pt"
    _, first = _configs(model, split.num_items, objective, epochs=2, eval_every=1)
    fit(_model(mc), split, first, progress=False, checkpoint=ckpt)
    resumed = fit(_model(mc, seed=99), split, tc, progress=False, checkpoint=ckpt, resume=True)
    assert _history(resumed) == _history(straight) and len(resumed.history) == 4
    assert resumed.best_epoch == straight.best_epoch
    assert resumed.best_valid == straight.best_valid
    _assert_same_weights(resumed.model, straight.model)


def test_resume_refuses_other_settings_and_a_missing_checkpoint(split, tmp_path):
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=1)
    fit(_model(mc), split, tc, progress=False, checkpoint=tmp_path / "m.pt")
    _, other = _configs("sasrec", split.num_items, "all", epochs=2, lr=0.01)
    with pytest.raises(CheckpointError, match=r"m\.last\.pt was made with other settings.*lr"):
        fit(_model(mc), split, other, progress=False, checkpoint=tmp_path / "m.pt", resume=True)
    with pytest.raises(CheckpointError, match=r"none\.last\.pt does not exist"):
        fit(_model(mc), split, tc, progress=False, checkpoint=tmp_path / "none.pt", resume=True)
    with pytest.raises(ValueError, match="needs the checkpoint"):
        fit(_model(mc), split, tc, progress=False, resume=True)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_finishes_the_step_and_keeps_the_best_weights(split, tmp_path, sig):
    """Ctrl-C or SIGTERM in epoch 3: the step ends, nothing is validated after it, the best
    weights are restored and saved, and the resume checkpoint stays at the last whole epoch."""
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=50, patience=50)
    steps = []

    class Steps(Callback):
        def on_step_end(self, run: Run) -> None:
            steps.append((run.epoch, run.step))

    kill = At(3, 1, lambda run: os.kill(os.getpid(), sig))
    ckpt, before = tmp_path / "m.pt", signal.getsignal(sig)
    fitted = fit(_model(mc), split, tc, progress=False, checkpoint=ckpt, callbacks=[kill, Steps()])
    assert fitted.stopped == "interrupted" and steps[-1][0] == 3  # the step after the signal ran
    assert [row["epoch"] for row in fitted.history] == [1, 2, 3]
    assert "valid_NDCG@10" not in fitted.history[-1]
    assert fitted.best_epoch in (1, 2)
    assert fitted.best_valid == {
        k[6:]: v for k, v in fitted.history[fitted.best_epoch - 1].items() if k.startswith("valid_")
    }
    _assert_same_weights(load_checkpoint(ckpt, mc), fitted.model)
    assert torch.load(last_path(ckpt), weights_only=True)["epoch"] == 2
    assert signal.getsignal(sig) == before  # the handler is given back


def test_resume_after_an_interrupted_epoch_repeats_it(split, tmp_path):
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=4)
    straight = fit(_model(mc), split, tc, progress=False)
    ckpt = tmp_path / "m.pt"
    kill = At(3, 2, lambda run: os.kill(os.getpid(), signal.SIGINT))
    fit(_model(mc), split, tc, progress=False, checkpoint=ckpt, callbacks=[kill])
    resumed = fit(_model(mc), split, tc, progress=False, checkpoint=ckpt, resume=True)
    assert _history(resumed) == _history(straight)
    _assert_same_weights(resumed.model, straight.model)


def test_a_second_signal_stops_at_once(split):
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=5)

    def twice(run):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit(_model(mc), split, tc, progress=False, callbacks=[At(1, 1, twice)])


def test_training_never_sees_eval_targets(split):
    """Leave-one-out: train[u] is the test history minus the validation target (its last item)."""
    valid = dict(zip(split.valid.users.tolist(), split.valid.targets.tolist()))
    for u, hist in zip(split.test.users.tolist(), split.test.histories):
        train = split.train[u]
        assert len(train) == len(hist) - 1
        np.testing.assert_array_equal(train, hist[:-1])
        assert valid[u] == hist[-1]  # the validation target follows the training part


def _reversed(split):
    """The same users, items and counts, every sequence in reverse (timestamps reversed)."""
    data = load_sequences("synthetic", num_users=40, num_items=60, seq_len=20, seed=3)
    data.sequences = [s[::-1].copy() for s in data.sequences]
    other = leave_one_out(data)
    assert other.num_items == split.num_items and len(other.train) == len(split.train)
    return other


def test_resume_refuses_other_data_with_the_same_counts(split, tmp_path):
    """Case 9: the checkpoint records the data; resuming on the same counts in another order
    was silent."""
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=1)
    ckpt = tmp_path / "m.pt"
    fit(_model(mc), split, tc, progress=False, checkpoint=ckpt)
    stored = torch.load(last_path(ckpt), weights_only=True)["data"]
    assert stored == data_fingerprint(split)
    assert torch.load(ckpt, weights_only=True)["data"] == stored  # the best weights' file too
    _, more = _configs("sasrec", split.num_items, "all", epochs=2)
    with pytest.raises(CheckpointError, match=r"m\.last\.pt was made on other data \(stored, "
                       r"given\): \{'sha256': \('[0-9a-f]{64}', '[0-9a-f]{64}'\)\}$"):  # fmt: skip
        fit(_model(mc), _reversed(split), more, progress=False, checkpoint=ckpt, resume=True)
    payload = torch.load(last_path(ckpt), weights_only=True)
    del payload["data"]  # a checkpoint of the older format
    torch.save(payload, last_path(ckpt))
    with pytest.raises(CheckpointError, match="records no data fingerprint"):
        fit(_model(mc), split, more, progress=False, checkpoint=ckpt, resume=True)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p["optimizer"]["param_groups"].pop(),
        lambda p: p.update(epoch="three"),
        lambda p: p["rng"].update(numpy={"state": 1}),
        lambda p: p["best"].update(state_dict={"item_emb.weight": torch.zeros(2, 2)}),
        lambda p: p.update(best=[]),
    ],
    ids=["optimizer", "epoch", "numpy-generator", "best-weights", "best"],
)
def test_a_resume_checkpoint_damaged_inside_is_one_checkpoint_error(split, tmp_path, damage):
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=1)
    ckpt = tmp_path / "m.pt"
    fit(_model(mc), split, tc, progress=False, checkpoint=ckpt)
    payload = torch.load(last_path(ckpt), weights_only=True)
    damage(payload)
    torch.save(payload, last_path(ckpt))
    _, more = _configs("sasrec", split.num_items, "all", epochs=2)
    with pytest.raises(CheckpointError, match=r"m\.last\.pt is damaged: \w+") as err:
        fit(_model(mc), split, more, progress=False, checkpoint=ckpt, resume=True)
    assert "\n" not in str(err.value)


def test_checkpoint_writes_that_fail_keep_training_and_the_weights(split, tmp_path, monkeypatch,
                                                                   capsys):  # fmt: skip
    """Case 3, a full disk under the checkpoint: training goes on, the files are kept in the
    temporary folder at the end, and the result says where (it was a traceback, results lost)."""
    import elastic_edu.training.checkpoint as checkpoint

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    save = torch.save

    def full_disk(payload, path):
        if Path(path).parent != tmp_path / "tmp":
            raise OSError(errno.ENOSPC, "No space left on device")
        save(payload, path)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    mc, tc = _configs("sasrec", split.num_items, "all", epochs=2)
    ckpt = tmp_path / "m.pt"
    fitted = fit(_model(mc), split, tc, progress=False, checkpoint=ckpt)
    assert len(fitted.history) == 2 and not ckpt.exists()
    warned = capsys.readouterr().err
    assert warned.count(f"warning: {ckpt} could not be written (No space left on device)") == 1
    kept = {p.name.split("-")[0]: p for p in (tmp_path / "tmp").glob("*.pt")}
    assert sorted(kept) == ["m", "m.last"]
    assert fitted.write_errors == [
        f"checkpoint {ckpt} could not be written (No space left on device): kept in "
        f"{kept['m']} instead",
        f"resume checkpoint {last_path(ckpt)} could not be written (No space left on device): "
        f"kept in {kept['m.last']} instead",
    ]
    _assert_same_weights(load_checkpoint(kept["m"], mc), fitted.model)
    assert read_checkpoint(kept["m.last"], resume=True)["epoch"] == 2  # the latest whole epoch
