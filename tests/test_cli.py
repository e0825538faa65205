"""The CLI contract: `train` writes the documented JSON; `compare` summarises seeds; mistakes
are one line and status 2, before any training; a diverged run is status 1 with no metrics;
Ctrl-C writes the best weights' results, status 130; `--resume` continues exactly; `tune`
writes a best config that `train --config` and `compare --config` read, and resumes."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from elastic_edu.cli import main
from elastic_edu.experiments import runs as experiment
from elastic_edu.models import build_model
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--epochs", "1", "--dim", "16", "--max-len", "8", "--quiet", "--device", "cpu"]
TINY_MODEL = ["--model", "sasrec", "--dim", "16", "--layers", "1", "--max-len", "8",
              "--batch-size", "32", "--device", "cpu", "--quiet"]  # fmt: skip


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """(status, stdout, stderr) of the CLI, in this process."""
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_train_writes_contract(tiny_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = ["train", "--model", "sasrec", "--dataset", str(tiny_dir), "--seed", "0", "--out",
            str(out), *SMALL]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    for key in ("test", "test_masked", "valid", "config", "device", "train_seconds", "stopped"):
        assert key in result
    for split in ("test", "test_masked", "valid"):
        assert {"HR@10", "NDCG@10", "MRR@10", "HR@50"} <= set(result[split])
    assert result["config"]["model"]["model"] == "sasrec"
    assert result["world_size"] == 1 and result["stopped"] == "epochs"
    assert "NDCG@10" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.tmp"))


def test_compare_and_bad_model(tiny_dir, tmp_path, capsys):
    out = tmp_path / "t.json"
    argv = ["compare", "--models", "popularity", "elastic", "--seeds", "0", "1", "--dataset",
            str(tiny_dir), "--out", str(out), *SMALL]  # fmt: skip
    assert main(argv) == 0
    table = json.loads(out.read_text())
    assert table["summary"]["elastic"]["test"]["NDCG@10"]["n"] == 2
    capsys.readouterr()
    status, _, err = run_main(["compare", "--models", "bert4rec", "--dataset", str(tiny_dir),
                               *SMALL], capsys)  # fmt: skip
    assert status == 2 and err.startswith("error: --models bert4rec: model='bert4rec'")


def test_compare_checks_every_spec_before_training(tiny_dir, capsys):
    # the old compare trained sasrec (both seeds) before it found elastic:all wrong
    argv = ["compare", "--models", "sasrec", "elastic-bidir:all", "--seeds", "0", "1",
            "--dataset", str(tiny_dir), *SMALL]  # fmt: skip
    status, out, err = run_main(argv, capsys)
    assert status == 2 and "seed 0" not in out and "data:" not in out
    assert err.startswith("error: --models elastic-bidir:all:") and "leak the future" in err


def test_elastic_all_positions_is_refused_and_debug_shows_the_traceback(tiny_dir, capsys):
    argv = ["train", "--model", "elastic-bidir", "--objective", "all", "--dataset", str(tiny_dir),
            *SMALL]  # fmt: skip
    status, _, err = run_main(argv, capsys)
    assert status == 2 and err.count("\n") == 1 and "leak the future" in err
    with pytest.raises(ValueError, match="leak"):
        main([*argv, "--debug"])


@pytest.mark.parametrize(
    "args, names",
    [
        (["--model", "bert4rec"], "argument --model: invalid choice: 'bert4rec'"),
        (["--kcore", "-1"], "argument --kcore: -1 must not be negative"),
        (["--lr", "nan"], "lr=nan must be a finite number"),
        (["--lr", "-1"], "lr=-1.0 must be a finite number"),
        (["--weight-decay", "-0.1"], "weight_decay=-0.1 must be a finite number"),
        (["--memory-lr-scale", "-1"], "memory_lr_scale=-1.0 must be a finite number"),
        (["--eval-batch-size", "0"], "eval_batch_size=0 must be an integer of at least 1"),
        (["--dropout", "inf"], "dropout=inf must be a finite number"),
        (["--objective", "bogus"], "argument --objective: invalid choice: 'bogus'"),
        (["--resume"], "--resume needs the --checkpoint"),
        (["--subkeys", "100000"], "lower subkeys to at most 4096"),
        (["--max-len", "1000000000"], "max_len=1,000,000,000: lower it to at most 1,048,576"),
        (["--dataset", "/nonexistent/folder"], "/nonexistent/folder"),
        (["--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
        (["--device", "tpu"], "device='tpu' is not a device: choose one of auto"),  # case 8
        (["--device", "xla"], "device='xla': elastic_edu runs on cpu, cuda or mps only"),
        (["--device", "meta"], "device='meta': elastic_edu runs on cpu, cuda or mps only"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(args, names, tiny_dir, capsys):
    argv = ["train", "--dataset", str(tiny_dir), *SMALL, *args]
    started = time.perf_counter()
    status, out, err = run_main(argv, capsys)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert names in err and "Traceback" not in err
    assert "data:" not in out  # refused before any training
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "args, setting",
    [
        (["--max-len", "1000000", "--batch-size", "256"], "lower --batch-size, --max-len"),
        (["--model", "elastic", "--subkeys", "4096", "--dim", "16384"], "lower --subkeys"),
        (["--model", "elastic", "--key-dim", "1000000000"], "or --key-dim"),  # case 6
    ],
)
def test_the_memory_estimate_refuses_runs_that_cannot_fit(args, setting, tiny_dir, capsys):
    argv = ["train", "--dataset", str(tiny_dir), "--quiet", "--device", "cpu", *args]
    status, out, err = run_main(argv, capsys)
    assert status == 2 and err.startswith("error: this run needs about") and setting in err
    assert "GiB is free" in err and "data:" not in out


@pytest.mark.parametrize(
    "flag, path",
    [
        ("--out", "/proc/x.json"),
        ("--checkpoint", "/proc/x.pt"),
        ("--out", "{tmp}/"),
        ("--out", "{tmp}/new/"),
        ("--checkpoint", "{tmp}"),
    ],
)
def test_output_paths_are_checked_before_anything_runs(flag, path, tiny_dir, tmp_path, capsys):
    path = path.format(tmp=tmp_path)
    argv = ["train", "--dataset", str(tiny_dir), *SMALL, flag, path]
    started = time.perf_counter()
    status, out, err = run_main(argv, capsys)
    assert status == 2 and err.startswith(f"error: {flag} ") and err.count("\n") == 1, err
    assert "cannot be written" in err or "is a folder" in err
    assert "data:" not in out and time.perf_counter() - started < 10
    assert not [p for p in tmp_path.rglob("*") if p.suffix == ".tmp" or "probe" in p.name]
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def _nan_model(config, seed=None):
    model = build_model(config, seed)
    with torch.no_grad():
        model.item_emb.weight[1] = float("nan")
    return model


def _nan_at_validation(config, seed=None):
    """A model that trains normally and gives NaN scores when evaluated (diverged late)."""
    model = build_model(config, seed)
    score = model.score

    def diverged(histories):
        scores = score(histories)
        return scores if model.training else torch.full_like(scores, float("nan"))

    model.score = diverged
    return model


@pytest.mark.parametrize("make", [_nan_model, _nan_at_validation], ids=["loss", "validation"])
def test_a_diverged_run_exits_1_and_writes_no_metrics(make, small_dir, tmp_path, monkeypatch,
                                                      capsys):  # fmt: skip
    monkeypatch.setattr(experiment, "build_model", make)
    out = tmp_path / "r.json"
    status, stdout, err = run_main(["train", "--dataset", str(small_dir), *TINY_MODEL,
                                    "--epochs", "2", "--out", str(out)], capsys)  # fmt: skip
    assert status == 1 and err.startswith("error: training diverged, no metrics written")
    assert ("loss is nan at epoch 1, step 1" in err) == (make is _nan_model)
    assert ("validation after epoch 1" in err) == (make is _nan_at_validation)
    assert not out.exists() and "wrote" not in stdout and not list(tmp_path.iterdir())


def test_resume_from_the_command_line_equals_a_straight_run(small_dir, tmp_path, capsys):
    common = ["train", "--dataset", str(small_dir), *TINY_MODEL, "--dropout", "0.1"]
    assert main([*common, "--epochs", "4", "--out", str(tmp_path / "straight.json")]) == 0
    ckpt = str(tmp_path / "c.pt")
    assert main([*common, "--epochs", "2", "--checkpoint", ckpt]) == 0
    out = tmp_path / "resumed.json"
    assert (
        main([*common, "--epochs", "4", "--checkpoint", ckpt, "--resume", "--out", str(out)]) == 0
    )
    straight, resumed = (json.loads((tmp_path / f"{n}.json").read_text())
                         for n in ("straight", "resumed"))  # fmt: skip
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(resumed["history"]) == drop(straight["history"]) and resumed["epochs"] == 4
    for key in ("valid", "test", "test_masked", "ranks", "best_epoch"):
        assert resumed[key] == straight[key], key
    capsys.readouterr()
    status, _, err = run_main([*common, "--checkpoint", str(tmp_path / "x.pt"), "--resume"],
                              capsys)  # fmt: skip
    assert status == 2 and "x.last.pt does not exist" in err


def test_sigint_writes_the_best_epoch_and_exits_130(small_dir, tmp_path):
    """End to end: Ctrl-C after the first epoch's checkpoint; the run ends its step, and writes
    its JSON with the best epoch's validation metrics, marked interrupted."""
    ckpt, out = tmp_path / "c.pt", tmp_path / "r.json"
    cmd = [sys.executable, "-m", "elastic_edu", "train", "--dataset", str(small_dir), *TINY_MODEL,
           "--epochs", "100000", "--patience", "100000", "--checkpoint", str(ckpt),
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    result = json.loads(out.read_text())
    assert result["stopped"] == "interrupted" and "interrupted" in stdout
    best = result["history"][result["best_epoch"] - 1]
    assert result["best_epoch"] >= 1 and result["epochs"] < 100000
    assert result["valid"] == {k[6:]: v for k, v in best.items() if k.startswith("valid_")}
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("command", [[], ["train"], ["compare"], ["tune"], ["bench"]])
def test_help_shows_no_raw_markup_and_every_default(command, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = capsys.readouterr().out
    assert "**" not in text and "``" not in text and "`" not in text
    if command == ["train"]:
        options = [line for line in text.splitlines() if line.strip().startswith("--")]
        described = text.split("options:", 1)[1]
        for flag in ("--dim", "--lr", "--max-minutes", "--patience", "--subkeys", "--objective"):
            assert flag in described
        assert described.count("(default:") >= len(options) - 6  # -h and bare flags excepted


# the command, on synthetic data small enough for seconds (small_dir: planted interests)
TUNE = ["tune", "--model", "sasrec", "--epochs", "1", "--device", "cpu"]


def test_tune_resumes_and_train_reads_its_best_config(small_dir, tmp_path, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "best.json"
    tune = [*TUNE, "--dataset", str(small_dir), "--out", str(out)]
    # a study cut short after one trial, then the command as given: exactly one more trial
    assert main([*tune, "--trials", "1"]) == 0
    first = json.loads(out.read_text())
    assert (tmp_path / "best.study.db").exists() and first["trials"]["complete"] == 1
    assert main([*tune, "--trials", "2"]) == 0
    text = capsys.readouterr().out
    assert text.count("trial 1/1 (#0): dim=") == 1 and text.count("trial 2/2 (#1): dim=") == 1
    assert "trial 1/2" not in text and "valid NDCG@10" in text
    result = json.loads(out.read_text())
    assert result["trials"] == {"budget": 2, "complete": 2, "pruned": 0, "failed": 0,
                                "running": 0}  # fmt: skip
    assert result["all_trials"][0] == first["all_trials"][0] and result["finished"]
    assert [c.split()[-1] for c in result["commands"]] == ["1", "2"]
    values = [row["valid_NDCG@10"] for row in result["all_trials"]]
    assert result["best"]["valid_NDCG@10"] == max(values) and result["device_name"]
    assert all(row["seconds"] > 0 for row in result["all_trials"])
    trained = tmp_path / "trained.json"
    assert main(["train", "--config", str(out), "--quiet", "--out", str(trained)]) == 0
    config = json.loads(trained.read_text())["config"]
    assert config == result["config"] and config["dataset"] == str(small_dir)


@pytest.mark.parametrize(
    "args, names",
    [
        (["--model", "popularity"], "argument --model: invalid choice: 'popularity'"),
        (["--trials", "-1"], "argument --trials: -1 must not be negative"),
        (["--storage", "/proc/x.db"], "--storage /proc/x.db cannot be written"),
        (["--heads", "3"], "dim=64 is not divisible by heads=3"),
    ],
)
def test_tune_user_errors_are_one_line(args, names, small_dir, tmp_path, capsys):
    pytest.importorskip("optuna")
    argv = [*TUNE, "--dataset", str(small_dir), "--out", str(tmp_path / "b.json"), *args]
    status, out, err = run_main(argv, capsys)
    assert status == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert names in err and "data:" not in out and not (tmp_path / "b.json").exists()


def test_tune_without_optuna_says_how_to_install_it(small_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    argv = [*TUNE, "--dataset", str(small_dir), "--out", str(tmp_path / "b.json")]
    status, out, err = run_main(argv, capsys)
    assert status == 2 and err.count("\n") == 1 and "pip install 'elastic_edu[tune]'" in err


def _write(path: Path, payload: dict) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_train_from_a_config_file_with_options_over_it(tiny_dir, tmp_path):
    config = _write(tmp_path / "c.json", {
        "model": {"model": "sasrec", "dim": 16, "heads": 4, "layers": 1, "num_experts": 4,
                  "max_len": 8, "memory": {"subkeys": 8}},
        "train": {"lr": 0.003, "epochs": 3, "batch_size": 32, "device": "cpu"},
    })  # fmt: skip
    out = tmp_path / "r.json"
    argv = ["train", "--config", str(config), "--dataset", str(tiny_dir), "--epochs", "1",
            "--dropout", "0.1", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    model, train = result["config"]["model"], result["config"]["train"]
    assert model["model"] == "sasrec" and model["memory"]["subkeys"] == 8
    assert (model["dim"], model["heads"], model["num_experts"], model["max_len"]) == (16, 4, 4, 8)
    assert model["dropout"] == 0.1 and train["lr"] == 0.003 and train["batch_size"] == 32
    assert train["epochs"] == 1 and result["epochs"] == 1  # the command line wins
    # a train result is a config file too: its model, settings and data set, the same run
    again = tmp_path / "again.json"
    assert main(["train", "--config", str(out), "--quiet", "--out", str(again)]) == 0
    repeat = json.loads(again.read_text())
    assert repeat["config"] == result["config"] and repeat["valid"] == result["valid"]


@pytest.mark.parametrize(
    "payload, names",
    [
        ({"model": {"colour": "red"}}, "unknown key model.'colour'"),
        ({"config": {"train": {"lr": 0.01, "epoch": 2}}}, "unknown key train.'epoch'"),
        ({"model": {"memory": {"slots": 4}}}, "unknown key model.memory.'slots'"),
        ({"modle": {}}, "unknown key 'modle'"),
        ([1, 2], "expected an object with 'model' and 'train' settings"),
        ("{", "not a readable JSON file"),
    ],
)
def test_train_refuses_a_config_file_it_cannot_read(payload, names, tiny_dir, tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    status, out, err = run_main(["train", "--config", str(path), "--dataset", str(tiny_dir),
                                 *SMALL], capsys)  # fmt: skip
    assert status == 2 and err.count("\n") == 1 and f"--config {path}: " in err, err
    assert names in err and "data:" not in out
    status, _, err = run_main(["train", "--config", str(tmp_path / "none.json"), *SMALL], capsys)
    assert status == 2 and "none.json: no such file" in err


def test_compare_trains_each_model_from_its_config_file(tiny_dir, tmp_path, capsys):
    tiny = {"dim": 16, "layers": 1, "max_len": 8}
    sasrec = _write(tmp_path / "sasrec.json", {"config": {
        "model": {"model": "sasrec", "heads": 4, **tiny}, "train": {"lr": 0.004, "batch_size": 32},
        "dataset": str(tiny_dir)}})  # fmt: skip
    lda = _write(tmp_path / "lda.json", {"model": {"model": "lda-causal", "num_experts": 2, **tiny},
                                         "dataset": str(tiny_dir)})  # fmt: skip
    out = tmp_path / "t.json"
    argv = ["compare", "--models", "lda", "sasrec", "gru4rec", "--config", f"lda={lda}",
            f"sasrec={sasrec}", "--seeds", "0", "1", "--epochs", "1", "--device", "cpu",
            "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    table = json.loads(out.read_text())
    runs = table["runs"]
    assert list(runs) == ["lda", "sasrec", "gru4rec"] and table["dataset"] == str(tiny_dir)
    assert table["configs"] == {"lda": str(lda), "sasrec": str(sasrec)}
    model = lambda label: runs[label][0]["config"]["model"]  # noqa: E731
    assert model("lda")["model"] == "lda-causal" and model("lda")["num_experts"] == 2
    assert model("sasrec")["heads"] == 4 and runs["sasrec"][1]["config"]["train"]["lr"] == 0.004
    assert model("gru4rec")["dim"] == 64  # no file: the defaults
    assert [r["config"]["train"]["seed"] for r in runs["sasrec"]] == [0, 1]
    assert len(runs["lda"][0]["ranks"]["test"]) == runs["lda"][0]["evaluated_users"]
    assert set(table["paired"]) == {"lda vs sasrec", "lda vs gru4rec", "sasrec vs gru4rec"}
    assert set(table["by_history_length"]) == {"lda", "sasrec", "gru4rec"}
    capsys.readouterr()
    for args, names in [
        (["--models", "gru4rec", "--config", f"sasrec={sasrec}"], "sasrec is not one of --models"),
        (["--config", f"gru4rec={sasrec}"], "the file configures sasrec, not gru4rec"),
        (["--config", str(sasrec)], "give MODEL=FILE"),
    ]:
        status, stdout, err = run_main(["compare", *args, *SMALL], capsys)
        assert status == 2 and names in err and err.count("\n") == 1 and "data:" not in stdout


# ---- issue 22 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "out, says",
    [
        ("c.pt", "--out {tmp}/c.pt is the --checkpoint too: the results would overwrite the "
         "weights; give --out another file"),  # case 1
        ("c.last.pt", "--out {tmp}/c.last.pt is where --checkpoint {tmp}/c.pt keeps its resume "
         "checkpoint; give --out another file"),
        ("folder", "--checkpoint {tmp}/c.pt writes its resume checkpoint to {tmp}/c.last.pt, "
         "which is a folder: move that folder or choose another --checkpoint"),  # case 2
    ],
)  # fmt: skip
def test_out_and_checkpoint_are_checked_against_each_other_first(out, says, tiny_dir, tmp_path,
                                                                 capsys):  # fmt: skip
    argv = ["train", "--dataset", str(tiny_dir), *SMALL, "--checkpoint", str(tmp_path / "c.pt")]
    if out == "folder":
        (tmp_path / "c.last.pt").mkdir()
    else:
        argv += ["--out", str(tmp_path / out)]
    status, stdout, err = run_main(argv, capsys)
    assert status == 2 and err == f"error: {says.format(tmp=tmp_path)}\n"
    assert "data:" not in stdout and not (tmp_path / "c.pt").exists()


def _full_disk_under(folder, monkeypatch, tmp_path):
    """Every write into `folder` fails with ENOSPC; the temporary folder is tmp_path/tmp."""
    import elastic_edu.files as files
    import elastic_edu.training.checkpoint as checkpoint

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    save, replace = torch.save, files.os.replace

    def full(path):
        if Path(path).parent == folder:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", lambda obj, path: full(path) or save(obj, path))
    monkeypatch.setattr(files.os, "replace", lambda a, b: full(b) or replace(a, b))


def test_a_full_disk_under_checkpoint_keeps_weights_and_results(tiny_dir, tmp_path, monkeypatch,
                                                                capsys):  # fmt: skip
    """Case 3: it was a traceback after training, and the results were lost."""
    disk = tmp_path / "disk"
    _full_disk_under(disk, monkeypatch, tmp_path)
    out, ckpt = tmp_path / "r.json", disk / "c.pt"
    status, stdout, err = run_main(["train", "--model", "sasrec", "--dataset", str(tiny_dir),
                                    *SMALL, "--checkpoint", str(ckpt), "--out", str(out)],
                                   capsys)  # fmt: skip
    kept = {p.name.split("-")[0]: p for p in (tmp_path / "tmp").glob("*.pt")}
    assert status == 2 and sorted(kept) == ["c", "c.last"] and f"wrote {out}" in stdout
    assert err.endswith(
        f"error: checkpoint {ckpt} could not be written (No space left on device): kept in "
        f"{kept['c']} instead; resume checkpoint {disk / 'c.last.pt'} could not be written "
        f"(No space left on device): kept in {kept['c.last']} instead; the results are in {out}\n"
    )
    assert len(json.loads(out.read_text())["write_errors"]) == 2


def test_a_full_disk_under_out_keeps_the_results_elsewhere(tiny_dir, tmp_path, monkeypatch,
                                                          capsys):  # fmt: skip
    disk = tmp_path / "disk"
    _full_disk_under(disk, monkeypatch, tmp_path)
    out = disk / "r.json"
    status, stdout, err = run_main(["train", "--model", "sasrec", "--dataset", str(tiny_dir),
                                    *SMALL, "--out", str(out)], capsys)  # fmt: skip
    (kept,) = (tmp_path / "tmp").glob("*.json")
    assert status == 2 and err == (f"error: --out {out} could not be written (No space left on "
                                   f"device): kept in {kept} instead\n")  # fmt: skip
    assert json.loads(kept.read_text())["config"]["model"]["model"] == "sasrec"
    monkeypatch.setattr(tempfile, "tempdir", str(disk))  # nowhere on disk: stdout has the JSON
    status, stdout, err = run_main(["train", "--model", "sasrec", "--dataset", str(tiny_dir),
                                    *SMALL, "--out", str(out)], capsys)  # fmt: skip
    assert status == 2 and err.endswith("; the results JSON is printed on stdout\n")
    assert json.loads(stdout.splitlines()[-1])["config"]["model"]["model"] == "sasrec"


@pytest.fixture(scope="module")
def made_checkpoint(tmp_path_factory):
    """A one-epoch run's checkpoint and resume checkpoint (module-wide, read-only)."""
    folder = tmp_path_factory.mktemp("made")
    argv = ["train", "--model", "sasrec", "--dataset", str(FIXTURES / "tiny"), *SMALL,
            "--checkpoint", str(folder / "c.pt")]  # fmt: skip
    assert main(argv) == 0
    return folder


@pytest.mark.parametrize(
    "make, says",
    [
        ("truncated", "is not a readable torch file (damaged or truncated?): "),  # case 10
        ("best weights", "lacks optimizer, epoch, step, seconds, history, best, rng: it holds "
         "weights, not a resume checkpoint"),  # case 11
        ("{}", "is not a readable torch file: safe loading (tensors and plain values only) "
         "refused it (Unsupported operand 123)"),  # case 12
        ("nan", "holds NaN or infinite values in state_dict.item_emb.weight"),  # case 13
    ],
)  # fmt: skip
def test_resume_from_a_bad_file_is_one_line_naming_it(make, says, made_checkpoint, tiny_dir,
                                                      tmp_path, capsys):  # fmt: skip
    good = (made_checkpoint / "c.last.pt").read_bytes()
    last = tmp_path / "c.last.pt"
    if make == "truncated":
        last.write_bytes(good[: len(good) // 10])
    elif make == "best weights":
        last.write_bytes((made_checkpoint / "c.pt").read_bytes())
    elif make == "{}":
        last.write_text("{}\n")
    else:
        payload = torch.load(made_checkpoint / "c.last.pt", weights_only=True)
        payload["state_dict"]["item_emb.weight"][2] = float("nan")
        torch.save(payload, last)
    argv = ["train", "--model", "sasrec", "--dataset", str(tiny_dir), *SMALL, "--epochs", "2",
            "--checkpoint", str(tmp_path / "c.pt"), "--resume"]  # fmt: skip
    status, stdout, err = run_main(argv, capsys)
    assert status == 2 and err.startswith(f"error: checkpoint {last} ") and says in err, err
    assert err.count("\n") == 1 and "weights_only" not in err and "data:" not in stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (["--seeds", "0", "0"], "--seeds 0 0: seed 0 is given twice; give each seed once"),
        (["--models", "sasrec", "sasrec"], "--models: sasrec is given twice (same model, "
         "objective and settings); give each model once"),
        (["--models", "sasrec", "sasrec:all"], "--models: sasrec and sasrec:all are one model"),
    ],
)  # fmt: skip
def test_compare_refuses_a_seed_or_a_model_given_twice(args, says, tiny_dir, capsys):
    """Case 16: the table showed a standard error of 0 over repeats of one run."""
    argv = ["compare", "--dataset", str(tiny_dir), "--models", "sasrec", "--seeds", "0", "1",
            *SMALL, *args]  # fmt: skip
    status, stdout, err = run_main(argv, capsys)
    assert status == 2 and err.startswith(f"error: {says}") and err.count("\n") == 1, err
    assert "data:" not in stdout
