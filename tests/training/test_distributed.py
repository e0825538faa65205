"""Data-parallel training on CPU (gloo, 2 processes): the ranks hold the same weights after a
step, a step averages the ranks' gradients, seeded runs repeat, resuming is exact, and
``torchrun -m elastic_edu train`` writes the usual JSON (with ``world_size``) with the metrics
of one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from elastic_edu.config import TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.evaluation import evaluate, ndcg_per_user
from elastic_edu.models import build_model
from elastic_edu.training import Callback, Run, distributed, fit, param_groups, seed_everything
from tests.conftest import make_tiny_config

ROOT = Path(__file__).resolve().parents[2]
WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _configs(split, dropout: float, epochs: int):
    mc = make_tiny_config("sasrec", num_items=split.num_items, max_len=8, layers=1,
                          dropout=dropout)  # fmt: skip
    tc = TrainConfig(objective="all", epochs=epochs, batch_size=8, device="cpu", seed=3)
    return mc, tc


def _fresh(mc):
    seed_everything(3)
    return build_model(mc)


class FirstStep(Callback):
    """Save the weights and the batch of this rank after the first step, then stop."""

    def __init__(self, path: Path):
        self.path = path

    def on_step_end(self, run: Run) -> None:
        state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        torch.save({"state": state, "batch": run.batch}, self.path)
        run.stop("one step")


def _worker(rank: int, port: int, data: str, out: str, everything: bool) -> None:
    """One rank: a 2-epoch fit; with `everything` also a one-step fit, 1 epoch + resume to 2,
    and two fits that diverge (as torchrun would run them)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))  # fmt: skip
    torch.set_num_threads(1)
    out = Path(out)
    split = leave_one_out(load_sequences(data))
    try:
        mc, tc = _configs(split, dropout=0.2, epochs=2)
        fits = {"straight": fit(_fresh(mc), split, tc, progress=False)}
        if everything:
            _, first = _configs(split, dropout=0.2, epochs=1)
            fit(_fresh(mc), split, first, progress=False, checkpoint=out / "c.pt")
            fits["resumed"] = fit(_fresh(mc), split, tc, progress=False, checkpoint=out / "c.pt",
                                  resume=True)  # fmt: skip
            mc, tc = _configs(split, dropout=0.0, epochs=1)
            fit(_fresh(mc), split, tc, progress=False,
                callbacks=[FirstStep(out / f"step-{rank}.pt")])  # fmt: skip
            for name, where in (("loss", [1]), ("validation", [0, 1])):
                _diverge(split, rank, where, name, out)
        for name, fitted in fits.items():
            torch.save({"history": [{k: v for k, v in r.items() if k != "seconds"}
                                    for r in fitted.history],
                        "state": fitted.model.state_dict(), "world_size": fitted.world_size,
                        "is_main": fitted.is_main}, out / f"{name}-{rank}.pt")  # fmt: skip
    finally:
        distributed.shutdown()
        (out / f"threads-{rank}.txt").write_text("\n".join(_thread_names()))


def _thread_names() -> list[str]:
    """The names of this process's threads (Linux), C++ ones included."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return ["(no /proc on this system)"]
    return sorted((task / "comm").read_text().strip() for task in tasks.iterdir())


def _diverge(split, rank: int, ranks: list[int], name: str, out: Path) -> None:
    """NaN weights after the first step on `ranks`: the loss of the next step (name 'loss'),
    or the validation after epoch 1 when every rank has them (steps_per_epoch = 1). Writes what
    this rank raised."""
    mc, tc = _configs(split, dropout=0.0, epochs=3)

    class NaN(Callback):
        def on_step_end(self, run: Run) -> None:
            if run.step == 1 and rank in ranks:
                with torch.no_grad():
                    run.model.item_emb.weight[3] = float("nan")

    sampler = _OneBatch(split.train, rank) if name == "validation" else None
    try:
        fit(_fresh(mc), split, tc, progress=False, callbacks=[NaN()], sampler=sampler)
        raised = "nothing"
    except FloatingPointError as err:
        raised = f"{type(err).__name__}: {err}"
    (out / f"{name}-{rank}.txt").write_text(raised)


class _OneBatch:
    """A sampler of one batch per epoch and rank (so that epoch 1 ends after step 1)."""

    def __init__(self, train, rank: int):
        self.train, self.rank = train, rank

    def epoch(self, rng):
        from elastic_edu.histories import pad_left

        seqs = self.train[self.rank * 4 : self.rank * 4 + 4]
        return [(pad_left([s[:-1] for s in seqs], 8), pad_left([s[1:] for s in seqs], 8))]


def _spawn(data: Path, out: Path, everything: bool, timeout: float = 240) -> Path:
    """Run `_worker` on WORLD processes; a hang (ranks waiting for each other) fails the test."""
    out.mkdir(parents=True)
    args = (_free_port(), str(data), str(out), everything)
    ctx = mp.spawn(_worker, args=args, nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for proc in ctx.processes:
                proc.kill()
            pytest.fail(f"the {WORLD} processes did not finish in {timeout} s (a hang)")
    return out


@pytest.fixture(scope="module")
def runs(small_dir, tmp_path_factory):
    """The worker's files from two 2-process launches (the second repeats the 2-epoch fit)."""
    base = tmp_path_factory.mktemp("ddp")
    return [_spawn(small_dir, base / f"launch{j}", everything=j == 0) for j in range(2)]


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def test_ranks_hold_identical_weights_after_a_step(runs):
    a, b = (_load(runs[0] / f"step-{rank}.pt") for rank in range(WORLD))
    assert not torch.equal(a["batch"][0], b["batch"][0])  # each rank trained on its own batch
    for k, v in a["state"].items():
        assert torch.equal(v, b["state"][k]), k
    for name in ("straight", "resumed"):
        x, y = (_load(runs[0] / f"{name}-{rank}.pt") for rank in range(WORLD))
        assert x["world_size"] == y["world_size"] == WORLD
        assert x["is_main"] and not y["is_main"]
        for k, v in x["state"].items():  # the same best weights: rank 0's validation decides
            assert torch.equal(v, y["state"][k]), k


def test_a_step_averages_the_gradients_of_the_ranks(runs, small_dir):
    """One DDP step equals one single-process step on the mean of the two ranks' losses."""
    split = leave_one_out(load_sequences(str(small_dir)))
    mc, tc = _configs(split, dropout=0.0, epochs=1)
    model = _fresh(mc)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    steps = [_load(runs[0] / f"step-{rank}.pt") for rank in range(WORLD)]
    optimizer = torch.optim.AdamW(param_groups(model, tc), lr=tc.lr)
    loss = sum(model.loss(*s["batch"], "all") for s in steps) / WORLD
    loss.backward()
    optimizer.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(steps[0]["state"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    assert not torch.equal(init["item_emb.weight"], steps[0]["state"]["item_emb.weight"])


def test_seeded_runs_repeat_for_a_given_number_of_processes(runs):
    first, second = (_load(run / "straight-0.pt") for run in runs)
    assert first["history"] == second["history"] and len(first["history"]) == 2
    for k, v in first["state"].items():
        assert torch.equal(v, second["state"][k]), k


def test_two_epochs_equal_one_epoch_and_a_resume(runs):
    """The resume checkpoint holds every rank's dropout generator, so resuming is exact."""
    straight, resumed = (_load(runs[0] / f"{n}-0.pt") for n in ("straight", "resumed"))
    assert resumed["history"] == straight["history"]
    for k, v in straight["state"].items():
        assert torch.equal(v, resumed["state"][k]), k
    last = torch.load(runs[0] / "c.last.pt", weights_only=True)
    assert len(last["rng"]["torch_ranks"]) == WORLD


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_shutdown_ends_the_communication_threads(runs):
    """After `distributed.shutdown` no gloo thread is left for interpreter exit to tear down
    (where it now and then aborted a finished run). DDP's import of torch.distributed.nn
    after the group existed kept the group alive: see `distributed.context`."""
    for run in runs:
        for rank in range(WORLD):
            names = (run / f"threads-{rank}.txt").read_text().split()
            assert not [n for n in names if "gloo" in n], (run.name, rank, names)


def test_divergence_on_one_rank_stops_every_rank(runs):
    """A NaN loss on rank 1 only, or NaN validation scores (rank 0 validates): both ranks
    raise, none waits for the other forever."""
    for rank in range(WORLD):
        loss = (runs[0] / f"loss-{rank}.txt").read_text()
        assert loss.startswith("FloatingPointError: training loss is") and "step 2" in loss
        assert ("on another process" in loss) == (rank == 0), loss
        valid = (runs[0] / f"validation-{rank}.txt").read_text()
        assert valid.startswith("NonFiniteScores: validation after epoch 1"), valid


def _cli(cmd: list[str], out: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("data:") == 1 and done.stdout.count("wrote") == 1, done.stdout
    return json.loads(out.read_text())


def test_torchrun_writes_the_contract_with_world_size_and_one_process_metrics(small_dir, tmp_path):
    """Two processes of batch 16 against one of batch 32 (the same batch per step): the test
    NDCG@10 agree within the noise of the 60 users, and both beat popularity."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun is installed with torch"
    args = ["train", "--model", "sasrec", "--dataset", str(small_dir), "--dim", "16",
            "--layers", "1", "--max-len", "8", "--epochs", "6", "--device", "cpu",
            "--quiet", "--seed", "0"]  # fmt: skip
    launch = [torchrun, "--nproc_per_node=2", "--master_port", str(_free_port()), "-m"]
    two = _cli([*launch, "elastic_edu", *args, "--batch-size", "16", "--out",
                str(tmp_path / "two.json"), "--checkpoint", str(tmp_path / "two.pt")],
               tmp_path / "two.json", tmp_path)  # fmt: skip
    one = _cli([sys.executable, "-m", "elastic_edu", *args, "--batch-size", "32", "--out",
                str(tmp_path / "one.json")], tmp_path / "one.json", tmp_path)  # fmt: skip
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert set(two) == set(one)  # the same JSON contract
    assert two["config"] == {**one["config"], "train": {**one["config"]["train"],
                                                        "batch_size": 16}}  # fmt: skip
    a, b = ndcg_per_user(two["ranks"]["test"]), ndcg_per_user(one["ranks"]["test"])
    noise = 3 * np.std(a - b, ddof=1) / np.sqrt(len(a))
    assert abs(a.mean() - b.mean()) <= noise + 0.01, (a.mean(), b.mean(), noise)
    split = leave_one_out(load_sequences(str(small_dir)))
    pop = build_model(make_tiny_config("popularity", num_items=split.num_items))
    assert min(a.mean(), b.mean()) > evaluate(pop.count(split.train), split.test)["NDCG@10"]
    assert (tmp_path / "two.pt").is_file() and (tmp_path / "two.last.pt").is_file()
