"""Checkpoints: every error names the file and says what is wrong; writes are atomic; output
paths are checked before any work."""

from __future__ import annotations

import re

import pytest
import torch

from elastic_edu.checkpoint import (
    CheckpointError,
    atomic_save,
    last_path,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from elastic_edu.config import TrainConfig
from elastic_edu.files import check_writable
from elastic_edu.models import build_model
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
