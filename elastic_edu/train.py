"""One readable training loop: AdamW, full-softmax cross-entropy, validation, callbacks.

`fit` trains any registered model on a leave-one-out split: a sampler (`elastic_edu.data.batches`,
chosen by the objective) gives each epoch's batches; after every epoch the model is validated
(NDCG@10 on the validation targets) and the best weights are kept. Callbacks
(`elastic_edu.callbacks`) stop it early, on a time budget checked every step, or on Ctrl-C /
SIGTERM (after the current step, keeping the best weights so far), draw the progress bar and
write checkpoints. A NaN or infinite loss, or non-finite validation scores, stop it with a
message saying where. Under ``torchrun`` it trains with DistributedDataParallel
(`elastic_edu.distributed`).
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from elastic_edu import distributed
from elastic_edu.callbacks import (
    Callback,
    Checkpointing,
    EarlyStopping,
    ProgressBar,
    Run,
    TimeBudget,
)
from elastic_edu.checkpoint import (
    CheckpointError,
    check_checkpoint_paths,
    data_fingerprint,
    first_line,
    last_path,
    read_checkpoint,
)
from elastic_edu.config import TrainConfig
from elastic_edu.data.batches import make_sampler
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device
from elastic_edu.metrics import NonFiniteScores
from elastic_edu.models.registry import check_objective


@dataclass
class FitResult:
    """What `fit` returns: the (best) model, per-epoch history, timing and why it stopped."""

    model: torch.nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    stopped: str = "epochs"
    device: str = "cpu"
    world_size: int = 1
    is_main: bool = True
    write_errors: list[str] = field(default_factory=list)  # checkpoints kept elsewhere or lost


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU runs then repeat exactly)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: memory values (if any) at lr * memory_lr_scale, no weight decay on them."""
    memory = list(model.memory_parameters()) if hasattr(model, "memory_parameters") else []
    ids = {id(p) for p in memory}
    rest = [p for p in model.parameters() if id(p) not in ids and p.requires_grad]
    groups = [{"params": rest, "lr": config.lr, "weight_decay": config.weight_decay}]
    if memory:
        groups.append(
            {"params": memory, "lr": config.lr * config.memory_lr_scale, "weight_decay": 0.0}
        )
    return groups


@contextlib.contextmanager
def interruptible(run: Run):
    """While training, SIGINT and SIGTERM ask the loop to stop after the current step; a second
    signal raises KeyboardInterrupt at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}

    def handler(signum, frame):
        if run.stopped == "interrupted":  # a second Ctrl-C: stop now, without the step's end
            raise KeyboardInterrupt
        run.stop("interrupted")

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def fit(
    model: torch.nn.Module,
    split: LOOSplit,
    config: TrainConfig | None = None,
    *,
    sampler=None,
    callbacks: list[Callback] | tuple = (),
    progress: bool = True,
    checkpoint: str | Path | None = None,
    resume: bool = False,
) -> FitResult:
    """Train `model` on `split.train`, keeping the weights with the best validation NDCG@10.

    sampler: gives each epoch's (inputs, targets) batches from a numpy Generator (default: the
        one `config.objective` names). callbacks: more `Callback` objects.
    checkpoint: save the best weights there (and a resume checkpoint beside it every epoch),
        both paths checked before training; a write that fails is kept elsewhere and reported
        in `FitResult.write_errors`.
    resume: continue from `checkpoint`'s resume checkpoint (optimizer and random state too); it
        must have been made with the same settings on the same data.
    A model without objectives (popularity) is counted instead of trained.
    """
    config = config or TrainConfig()
    if checkpoint is not None:
        check_checkpoint_paths(checkpoint)
    if not model.objectives:  # every process counts; rank 0 reports
        model.count(split.train)
        return FitResult(model=model, stopped="counted", device=str(model.device),
                         world_size=distributed.world_size_from_env(),
                         is_main=distributed.is_main_from_env())  # fmt: skip
    check_objective(model.name, config.objective)
    seed_everything(config.seed)
    dist = distributed.context(choose_device(config.device))
    device = dist.device
    model.to(device)
    net = dist.wrap(model)
    sampler = sampler or make_sampler(config.objective, split.train, model, config,
                                      dist.rank, dist.world_size)  # fmt: skip
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    run = Run(model=model, optimizer=optimizer, config=config,
              rng=np.random.default_rng(config.seed), is_main=dist.is_main)  # fmt: skip
    data = data_fingerprint(split) if checkpoint is not None else None
    if resume:
        _restore(run, checkpoint, dist, data)
    hooks = [EarlyStopping(config.patience), ProgressBar(f"train {model.name}", progress
             and dist.is_main), *callbacks]  # fmt: skip
    if config.max_minutes is not None:
        hooks.insert(0, TimeBudget(config.max_minutes))
    if checkpoint is not None:
        hooks.append(Checkpointing(checkpoint, data))
    autocast = device.type == "cuda" and config.bf16
    for hook in hooks:
        hook.on_fit_start(run)
    with interruptible(run):
        agreed = None  # the reason to stop that every rank has seen (see agree_to_stop)
        while run.epoch < config.epochs and not agreed:
            run.epoch += 1
            model.train()
            batches = sampler.epoch(run.rng)
            run.steps_per_epoch, losses = len(batches), []
            for inputs, targets in batches:
                inputs, targets = inputs.to(device), targets.to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = net(inputs, targets, config.objective)
                if not dist.all_finite(loss):  # checked on every rank: all stop together
                    value = "not finite on another process" if torch.isfinite(loss) else loss.item()
                    raise FloatingPointError(
                        f"training loss is {value} "
                        f"at epoch {run.epoch}, step {run.step + 1}: lower the learning rate "
                        f"(lr={config.lr}) or check the inputs"
                    )
                run.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                run.optimizer.step()
                run.step += 1
                run.loss, run.batch = loss.item(), (inputs, targets)
                losses.append(run.loss)
                for hook in hooks:
                    hook.on_step_end(run)
                agreed = dist.agree_to_stop(run)
                if agreed:
                    break
            agreed = dist.agree_to_stop(run)  # a signal may have come after the last step
            # an interrupted epoch is neither validated nor a point to resume from
            run.partial = len(losses) < len(batches) or agreed == "interrupted"
            row = {"epoch": run.epoch, "loss": float(np.mean(losses)), "seconds": run.seconds}
            if agreed != "interrupted" and (
                run.epoch % config.eval_every == 0 or run.epoch == config.epochs
            ):
                valid = _validate(dist, model, split, config, run.epoch)
                row.update({f"valid_{k}": v for k, v in valid.items()})
                run.record_validation(valid)
            else:
                run.improved = False
            run.history.append(row)
            if checkpoint is not None:
                run.rank_rng = dist.rng_states()
            for hook in hooks:
                hook.on_epoch_end(run)
            agreed = dist.agree_to_stop(run)
    run.stopped = agreed or run.stopped or "epochs"
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    for hook in hooks:
        hook.on_fit_end(run)
    return FitResult(model=model, history=run.history, best_epoch=run.best_epoch,
                     best_valid=run.best_valid, train_seconds=run.seconds,
                     stopped=run.stopped, device=str(device), world_size=dist.world_size,
                     is_main=dist.is_main, write_errors=run.write_errors)  # fmt: skip


def _validate(dist, model, split: LOOSplit, config: TrainConfig, epoch: int) -> dict:
    """Validation metrics; non-finite scores stop training, saying when."""
    try:
        return dist.validate(model, split.valid, config.eval_batch_size)
    except NonFiniteScores as err:
        raise NonFiniteScores(
            f"validation after epoch {epoch} stopped training: {err} (lr={config.lr})"
        ) from None


def _restore(run: Run, checkpoint, dist: distributed.Context, data: dict) -> None:
    """Load `checkpoint`'s resume state into `run` (weights, optimizer, history, generators),
    refusing one made for another model, with other settings or on other `data`."""
    if checkpoint is None:
        raise ValueError("resume=True needs the checkpoint path whose run it continues")
    path = last_path(checkpoint)
    state = read_checkpoint(path, resume=True)
    if state.get("model_config") != run.model.config.to_dict():
        raise CheckpointError(f"resume checkpoint {path} was made for another model config")
    if not isinstance(state["train_config"], dict):
        raise CheckpointError(f"resume checkpoint {path} holds no train config dict: it is damaged")
    stored = {k: v for k, v in state["train_config"].items()
              if k not in ("epochs", "max_minutes")}  # fmt: skip
    given = {k: v for k, v in run.config.to_dict().items() if k not in ("epochs", "max_minutes")}
    if stored != given:
        diff = {k: (v, given.get(k)) for k, v in stored.items() if given.get(k) != v}
        raise CheckpointError(f"resume checkpoint {path} was made with other settings: {diff}")
    if not isinstance(state.get("data"), dict):
        raise CheckpointError(
            f"resume checkpoint {path} records no data fingerprint (an older "
            "format): its data cannot be checked; train again without --resume"
        )
    if state["data"] != data:
        diff = {k: (state["data"].get(k), v) for k, v in data.items() if state["data"].get(k) != v}
        raise CheckpointError(f"resume checkpoint {path} was made on other data (stored, given): "
                              f"{diff}")  # fmt: skip
    try:
        _apply(run, state, dist)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        raise CheckpointError(
            f"resume checkpoint {path} is damaged: {type(err).__name__}: {first_line(err)}"
        ) from None


def _apply(run: Run, state: dict, dist: distributed.Context) -> None:
    """Put a resume checkpoint's state into `run`."""
    run.model.load_state_dict(state["state_dict"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.epoch, run.step, run.history = int(state["epoch"]), int(state["step"]), state["history"]
    run.seconds_before = float(state["seconds"])
    best = state["best"]
    run.best_score, run.best_epoch = best["score"], best["epoch"]
    run.best_valid, run.best_state = best["valid"], best["state_dict"]
    own = run.model.state_dict()
    if run.best_state is not None and (  # loaded into the model at the end: must fit it now
        set(run.best_state) != set(own)
        or any(own[k].shape != v.shape for k, v in run.best_state.items())
    ):
        raise ValueError("its best weights do not fit the model")
    ranks = state["rng"].get("torch_ranks")
    same_world = ranks is not None and len(ranks) == dist.world_size
    torch.set_rng_state(ranks[dist.rank] if same_world else state["rng"]["torch"])
    run.rng.bit_generator.state = state["rng"]["numpy"]
    run.started = time.perf_counter()
