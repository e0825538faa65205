"""One readable training loop: AdamW, full-softmax cross-entropy, validation, callbacks.

`fit` trains any registered model on a leave-one-out split: a sampler (`elastic_edu.data.batches`,
chosen by the objective) gives each epoch's batches; after every epoch the model is validated
(NDCG@10 on the validation targets) and the best weights are kept. Callbacks
(`elastic_edu.training.callbacks`) stop it early, on a time budget checked every step, or on
Ctrl-C / SIGTERM (after the current step, keeping the best weights so far), draw the progress
bar and write checkpoints. A NaN or infinite loss, or non-finite validation scores, stop it with
a message saying where. Under ``torchrun`` it trains with DistributedDataParallel
(`elastic_edu.training.distributed`): every rank stops at the same step (`agree_to_stop`).
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from elastic_edu.config import TrainConfig
from elastic_edu.data.batches import make_sampler
from elastic_edu.data.sequences import LOOSplit
from elastic_edu.device import choose_device
from elastic_edu.models import NonFiniteScores, check_objective
from elastic_edu.training import distributed
from elastic_edu.training.callbacks import (
    Callback,
    Checkpointing,
    EarlyStopping,
    ProgressBar,
    Run,
    TimeBudget,
)
from elastic_edu.training.checkpoint import (
    CheckpointError,
    check_checkpoint_paths,
    data_fingerprint,
    first_line,
    last_path,
    read_checkpoint,
)

FitResult = Run  # what `fit` returns: the finished run (model, history, best, time, where it ran)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU runs then repeat exactly)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(model: torch.nn.Module, config: TrainConfig) -> list[dict]:
    """AdamW groups: memory values (if any) at lr * memory_lr_scale, no weight decay on them."""
    memory = list(model.memory_parameters())
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
        in `write_errors`.
    resume: continue from `checkpoint`'s resume checkpoint (optimizer and random state too); it
        must have been made with the same settings on the same data.
    A model without objectives (popularity) is counted instead of trained. Returns the `Run`.
    """
    config = config or TrainConfig()
    if checkpoint is not None:
        check_checkpoint_paths(checkpoint)
    if not model.objectives:  # every process counts; rank 0 reports
        return _count(model, split, config)
    check_objective(model.name, config.objective)
    seed_everything(config.seed)
    dist = distributed.context(choose_device(config.device))
    model.to(dist.device)
    net = dist.wrap(model)
    sampler = sampler or make_sampler(config.objective, split.train, model, config,
                                      dist.rank, dist.world_size)  # fmt: skip
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr)
    run = Run(model=model, optimizer=optimizer, config=config, is_main=dist.is_main,
              rng=np.random.default_rng(config.seed), device=str(dist.device),
              world_size=dist.world_size)  # fmt: skip
    data = data_fingerprint(split) if checkpoint is not None else None
    if resume:
        _restore(run, checkpoint, dist, data)
    hooks = _hooks(run, progress and dist.is_main, callbacks, checkpoint, data)
    for hook in hooks:
        hook.on_fit_start(run)
    with interruptible(run):
        while run.epoch < config.epochs and not run.agreed:
            run.epoch += 1
            losses, complete = _train_epoch(run, net, sampler.epoch(run.rng), hooks, dist)
            _end_epoch(run, split, hooks, dist, losses, complete, checkpoint is not None)
    run.stopped = run.agreed or run.stopped or "epochs"
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    for hook in hooks:
        hook.on_fit_end(run)
    run.ended = time.perf_counter()
    return run


def _count(model, split: LOOSplit, config: TrainConfig) -> Run:
    """A model without objectives (popularity) counts the training items: no training time."""
    model.count(split.train)
    run = Run(model=model, config=config, stopped="counted", device=str(model.device),
              world_size=distributed.world_size_from_env(),
              is_main=distributed.is_main_from_env())  # fmt: skip
    run.ended = run.started
    return run


def _hooks(run: Run, progress: bool, callbacks, checkpoint, data) -> list[Callback]:
    """The callbacks `fit` always uses, from the TrainConfig, around the ones given."""
    config = run.config
    budget = [TimeBudget(config.max_minutes)] if config.max_minutes is not None else []
    saving = [Checkpointing(checkpoint, data)] if checkpoint is not None else []
    bar = ProgressBar(f"train {run.model.name}", progress)
    return [*budget, EarlyStopping(config.patience), bar, *callbacks, *saving]


def _agree(run: Run, dist: distributed.Context) -> bool:
    """Whether to stop now: every rank takes the first reason to stop that any rank has (a
    signal, the clock, early stopping), so that all stop at the same step."""
    run.agreed = dist.agree_to_stop(run)
    return bool(run.agreed)


def _train_epoch(run: Run, net, batches: list, hooks, dist) -> tuple[list[float], bool]:
    """One epoch's optimizer steps, after each the callbacks and the agreement to stop.
    Returns the losses and whether every batch was trained on."""
    config, device = run.config, torch.device(run.device)
    autocast = device.type == "cuda" and config.bf16
    run.steps_per_epoch, losses = len(batches), []
    run.model.train()
    for inputs, targets in batches:
        inputs, targets = inputs.to(device), targets.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = net(inputs, targets, config.objective)
        if not dist.all_finite(loss):  # checked on every rank: all stop together
            value = "not finite on another process" if torch.isfinite(loss) else loss.item()
            raise FloatingPointError(
                f"training loss is {value} at epoch {run.epoch}, step {run.step + 1}: lower the "
                f"learning rate (lr={config.lr}) or check the inputs"
            )
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.step += 1
        run.loss, run.batch = loss.item(), (inputs, targets)
        losses.append(run.loss)
        for hook in hooks:
            hook.on_step_end(run)
        if _agree(run, dist):
            break
    return losses, len(losses) == len(batches)


def _end_epoch(run: Run, split, hooks, dist, losses, complete: bool, saving: bool) -> None:
    """Validate a whole epoch (every `eval_every` epochs and the last), record it, call the
    callbacks, and agree whether to go on. An interrupted epoch is neither validated nor a
    point to resume from."""
    config = run.config
    run.partial = not complete or run.agreed == "interrupted"
    row = {"epoch": run.epoch, "loss": float(np.mean(losses)), "seconds": run.train_seconds}
    if run.agreed != "interrupted" and (
        run.epoch % config.eval_every == 0 or run.epoch == config.epochs
    ):
        valid = _validate(dist, run.model, split, config, run.epoch)
        row.update({f"valid_{k}": v for k, v in valid.items()})
        run.record_validation(valid)
    else:
        run.improved = False
    run.history.append(row)
    if saving:
        run.rank_rng = dist.rng_states()
    for hook in hooks:
        hook.on_epoch_end(run)
    _agree(run, dist)


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
