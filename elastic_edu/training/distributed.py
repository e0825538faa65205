"""Data-parallel training under ``torchrun`` with PyTorch's DistributedDataParallel.

    torchrun --nproc_per_node=2 -m elastic_edu train --model sasrec --device cpu ...

Every process builds the same model and draws the same shuffled epoch; each takes every P-th
batch (`elastic_edu.data.batches.Sampler.shard`), and DDP averages the gradients, so one step
sees P batches. Rank 0 validates, checkpoints and writes the results; it sends the validation
metrics and any reason to stop to the other ranks, so that every rank keeps the same best
weights and stops at the same step. Backend: gloo on CPU, nccl on CUDA (one GPU per process).
Without torchrun (WORLD_SIZE unset or 1) `context` returns a single-process no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from elastic_edu.evaluation.metrics import evaluate
from elastic_edu.models import NonFiniteScores


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_from_env() -> bool:
    """Whether this process is rank 0 (or the only one), before any process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class Context:
    """Where this process stands: rank, world size, and what differs between ranks."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the loop calls: DDP around `model` when there are several processes."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        torch.manual_seed(torch.initial_seed() + self.rank)  # dropout differs between ranks
        return net

    def validate(self, model, eval_set, batch_size: int) -> dict:
        """Rank 0 evaluates; every rank gets its metrics (so they keep the same best weights).

        Non-finite scores raise NonFiniteScores on every rank, not only on rank 0 (the others
        would wait for its metrics forever).
        """
        metrics: list = [None]
        if self.is_main:
            try:
                metrics = [evaluate(model, eval_set, batch_size=batch_size)]
            except NonFiniteScores as err:
                if not self.active:
                    raise
                metrics = [("NonFiniteScores", str(err))]
        if self.active:
            dist.broadcast_object_list(metrics, src=0)
        if isinstance(metrics[0], tuple):
            raise NonFiniteScores(metrics[0][1])
        return metrics[0]

    def all_finite(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every rank (all raise together, none waits)."""
        bad = (~torch.isfinite(loss.detach())).float().reshape(1)
        if self.active:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return not bool(bad.item())

    def rng_states(self) -> list[torch.Tensor] | None:
        """Every rank's torch generator state (ranks draw different dropout), for resuming."""
        if not self.active:
            return None
        states = [None] * self.world_size
        dist.all_gather_object(states, torch.get_rng_state())
        return states

    def agree_to_stop(self, run) -> str | None:
        """Every rank takes the first reason to stop that any rank has (a signal, the clock).

        Returns the agreed reason: the loop decides with it, not with `run.stopped`, which a
        signal may set on one rank between two agreements (the ranks would then part ways and
        wait for each other forever).
        """
        if not self.active:
            return run.stopped
        reasons = [None] * self.world_size
        dist.all_gather_object(reasons, run.stopped)
        agreed = next((r for r in reasons if r), None)
        run.stopped = run.stopped or agreed
        return agreed


def context(device: torch.device) -> Context:
    """The distributed context of this process, starting the process group under torchrun."""
    size = world_size_from_env()
    if size <= 1:
        return Context(device=device)
    if not dist.is_initialized():
        # DDP imports torch.distributed.nn, whose functions take `group=group.WORLD` as a
        # default argument: imported after the group exists, they hold it for good, so
        # destroy_process_group cannot free it, and its communication threads are torn down
        # at interpreter exit, which now and then aborts the process ("terminate called
        # without an active exception") after the results are written. Imported first,
        # the defaults are None.
        import torch.distributed.nn  # noqa: F401

        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    return Context(rank=rank, world_size=dist.get_world_size(), device=device)


def shutdown() -> None:
    """End the process group, if this process started one, once every rank gets here.

    The barrier keeps the other ranks alive while rank 0 evaluates and writes the results:
    a rank that left first made torchrun stop the whole job, rank 0 included. Once the group
    is destroyed its communication threads end here, not at interpreter exit (see `context`).
    """
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
