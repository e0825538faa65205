"""The CLI contract: `train` writes the documented JSON; `compare` summarises seeds."""

from __future__ import annotations

import json

import pytest

from elastic_edu.cli import main

SMALL = ["--epochs", "1", "--dim", "16", "--max-len", "8", "--quiet", "--device", "cpu"]


def test_train_writes_contract(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "train",
                "--model",
                "sasrec",
                "--dataset",
                str(tiny_dir),
                "--seed",
                "0",
                "--out",
                str(out),
                *SMALL,
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    for key in ("test", "test_masked", "valid", "config", "device", "train_seconds"):
        assert key in result
    for split in ("test", "test_masked", "valid"):
        assert {"HR@10", "NDCG@10", "MRR@10", "HR@50"} <= set(result[split])
    assert result["config"]["model"]["model"] == "sasrec"
    assert "NDCG@10" in capsys.readouterr().out


def test_compare_and_bad_model(tiny_dir, tmp_path):
    out = tmp_path / "t.json"
    assert (
        main(
            [
                "compare",
                "--models",
                "popularity",
                "elastic",
                "--seeds",
                "0",
                "1",
                "--dataset",
                str(tiny_dir),
                "--out",
                str(out),
                *SMALL,
            ]
        )
        == 0
    )
    table = json.loads(out.read_text())
    assert table["summary"]["elastic"]["test"]["NDCG@10"]["n"] == 2
    with pytest.raises(SystemExit, match="unknown model"):
        main(["compare", "--models", "bert4rec", "--dataset", str(tiny_dir), *SMALL])


def test_elastic_all_positions_is_refused(tiny_dir):
    with pytest.raises(ValueError, match="leak"):
        main(
            [
                "train",
                "--model",
                "elastic",
                "--objective",
                "all",
                "--dataset",
                str(tiny_dir),
                *SMALL,
            ]
        )
