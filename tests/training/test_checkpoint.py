"""Checkpoints: every error names the file and says what is wrong; writes are atomic; output
paths are checked before any work."""

from __future__ import annotations

import errno
import json
import re
import tempfile

import pytest
import torch

from elastic_edu.config import TrainConfig
from elastic_edu.files import check_writable, write_json, write_or_keep
from elastic_edu.models import build_model
from elastic_edu.training.checkpoint import (
    CheckpointError,
    atomic_save,
    check_checkpoint_paths,
    data_fingerprint,
    last_path,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from tests.conftest import make_tiny_config


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(make_tiny_config("sasrec"))
    return save_checkpoint(tmp_path / "m.pt", model, TrainConfig()), model


def test_round_trip(saved):
    path, model = saved
    loaded = load_checkpoint(path, make_tiny_config("sasrec"))
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    assert read_checkpoint(path)["train_config"] == TrainConfig().to_dict()


def test_an_empty_file_is_named_and_called_empty(tmp_path):
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=re.escape(f"{path} is empty (0 bytes)")):
        load_checkpoint(path)


def test_a_bare_state_dict_is_told_apart(saved, tmp_path):
    path = tmp_path / "bare.pt"
    torch.save(saved[1].state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "lacks model_config, state_dict" in message
    assert "a bare state_dict loads with model.load_state_dict" in message


def test_another_config_is_refused_with_the_difference(saved):
    path, _ = saved
    other = make_tiny_config("sasrec", dim=32)
    with pytest.raises(CheckpointError, match=re.escape(f"{path} was made with another config")):
        load_checkpoint(path, other)
    with pytest.raises(CheckpointError, match=r"'dim': \(16, 32\)"):
        load_checkpoint(path, other)


@pytest.mark.parametrize(
    "content, says",
    [(b"not a torch file", "is not a readable torch file"), (None, "does not exist")],
)
def test_unreadable_or_missing_files(tmp_path, content, says):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=re.escape(f"{path} {says}")):
        read_checkpoint(path)


def test_a_stored_config_that_is_invalid_or_does_not_fit_its_weights(saved, tmp_path):
    path, model = saved
    payload = read_checkpoint(path)
    bad = tmp_path / "bad.pt"
    torch.save({**payload, "model_config": {**payload["model_config"], "dim": -1}}, bad)
    with pytest.raises(CheckpointError, match=f"{bad} holds an invalid model config: dim=-1"):
        load_checkpoint(bad)
    torch.save({**payload, "model_config": {**payload["model_config"], "num_items": 50}}, bad)
    with pytest.raises(CheckpointError, match=f"{bad} does not fit its own model"):
        load_checkpoint(bad)


def test_atomic_save_leaves_the_old_file_and_no_temporary_on_failure(saved, tmp_path):
    path, _ = saved
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - whatever pickle raises for a lambda
        atomic_save({"f": lambda: 0}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_last_path_sits_beside_the_checkpoint(tmp_path):
    assert last_path(tmp_path / "run.pt") == tmp_path / "run.last.pt"
    assert last_path(tmp_path / "run") == tmp_path / "run.last.pt"


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "a" / "b.json") == tmp_path / "a" / "b.json"
    assert (tmp_path / "a").is_dir() and not list((tmp_path / "a").iterdir())  # probe removed
    with pytest.raises(ValueError, match="is a folder"):
        check_writable(tmp_path)
    with pytest.raises(ValueError, match="new/ is a folder"):  # Path() would drop the /
        check_writable(f"{tmp_path}/new/")
    with pytest.raises(ValueError, match=r"--out /proc/x\.json cannot be written: its folder"):
        check_writable("/proc/x.json", "--out")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot be written"):
        check_writable(tmp_path / "file" / "x.json")


# ---- issue 22: whatever the file holds, one CheckpointError line naming it ----------------------
def _resume_like(saved) -> dict:
    """A payload with every key of a resume checkpoint (values do not matter to the reader)."""
    payload = read_checkpoint(saved[0])
    return {**payload, "optimizer": {}, "epoch": 1, "step": 1, "seconds": 0.0, "history": [],
            "best": {}, "rng": {}}  # fmt: skip


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)


@pytest.mark.parametrize(
    "content, says",
    [
        ("truncated", "is not a readable torch file (damaged or truncated?)"),  # case 10
        (b"{}\n", "is not a readable torch file: safe loading"),  # case 12
        ([1, 2, 3], "holds a list, not an elastic_edu checkpoint"),
        ({"model_config": 3, "state_dict": {}}, "holds no model config dict"),
        ({"model_config": {}, "state_dict": {"w": 1.0}}, "holds no state_dict of tensors"),
        ("nan", "holds NaN or infinite values in state_dict.item_emb.weight"),  # case 13
        ("inf in optimizer", "holds NaN or infinite values in optimizer.state.0.exp_avg"),
        ("best weights", "lacks optimizer, epoch, step, seconds, history, best, rng: it holds "
         "weights, not a resume checkpoint"),  # case 11
        ("folder", "is a folder, not a checkpoint file"),
    ],
)  # fmt: skip
def test_whatever_a_file_holds_reading_it_is_one_line_naming_it(saved, tmp_path, content, says):
    path = tmp_path / "c.last.pt"
    if content == "truncated":
        good = tmp_path / "good.pt"
        atomic_save(_resume_like(saved), good)
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 10])
    elif content == "nan":
        payload = _resume_like(saved)
        payload["state_dict"] = {**payload["state_dict"]}
        payload["state_dict"]["item_emb.weight"] = payload["state_dict"]["item_emb.weight"] * 0
        payload["state_dict"]["item_emb.weight"][3, 1] = float("nan")
        _write(path, payload)
    elif content == "inf in optimizer":
        _write(path, {**_resume_like(saved), "optimizer": {"state": {0: {
            "exp_avg": torch.tensor([1.0, float("inf")])}}}})  # fmt: skip
    elif content == "best weights":  # the best-weights file copied over the resume checkpoint
        path.write_bytes(saved[0].read_bytes())
    elif content == "folder":
        path.mkdir()
    else:
        _write(path, content)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path, resume=True)
    message = str(err.value)
    assert message.startswith(f"checkpoint {path} ") and says in message, message
    assert "\n" not in message and "weights_only" not in message


def test_a_file_that_cannot_be_read_is_named(saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(CheckpointError, match=f"{saved[0]} cannot be read: Permission denied"):
        read_checkpoint(saved[0])


def test_the_data_fingerprint_tells_the_same_counts_in_another_order_apart():
    from elastic_edu.data import leave_one_out, load_sequences

    data = load_sequences("synthetic", num_users=30, num_items=40, seq_len=12, seed=1)
    first = data_fingerprint(leave_one_out(data))
    assert first == data_fingerprint(leave_one_out(data))  # the same data, the same print
    assert set(first) == {"items", "users", "interactions", "sha256"}
    summary = data.summary()
    assert (first["items"], first["users"], first["interactions"]) == (
        summary["items"], summary["users"], summary["interactions"])  # fmt: skip
    data.sequences = [s[::-1].copy() for s in data.sequences]  # timestamps reversed
    reversed_ = data_fingerprint(leave_one_out(data))
    assert {k for k in first if first[k] != reversed_[k]} == {"sha256"}


def test_checkpoint_paths_are_checked_with_the_resume_file_beside(tmp_path):
    assert check_checkpoint_paths(tmp_path / "c.pt") == tmp_path / "c.pt"
    (tmp_path / "c.last.pt").mkdir()  # case 2: a folder where the resume checkpoint goes
    with pytest.raises(ValueError, match=r"writes its resume checkpoint to .*c\.last\.pt, which "
                       "is a folder: move that folder or choose another checkpoint"):  # fmt: skip
        check_checkpoint_paths(tmp_path / "c.pt")


def test_a_write_that_fails_is_kept_in_the_temporary_folder(tmp_path, monkeypatch):
    """A full disk at the end (case 3): the content goes to the temporary folder, and the
    message names the file, the reason and where the content is."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    full = tmp_path / "full"

    def write(path):
        if full in path.parents:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_json(path, {"ok": 1})

    assert write_or_keep(write, tmp_path / "r.json", "--out") == (tmp_path / "r.json", None)
    kept, error = write_or_keep(write, full / "r.json", "--out")
    assert kept.parent == tmp_path / "tmp" and kept.name.startswith("r-") and kept.suffix == ".json"
    assert error == f"--out {full / 'r.json'} could not be written (No space left on device): " \
        f"kept in {kept} instead"  # fmt: skip
    assert json.loads(kept.read_text()) == {"ok": 1}
    monkeypatch.setattr(tempfile, "tempdir", str(full))  # the temporary folder is full too
    full.mkdir()
    kept, error = write_or_keep(write, full / "r.json", "--out")
    assert kept is None and error.endswith(f"nor kept in {full} (No space left on device)")
    assert not list(full.iterdir())
