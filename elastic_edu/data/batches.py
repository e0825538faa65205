"""Training batches for each objective, as samplers that `elastic_edu.training.fit` iterates.

A sampler turns the training sequences into (inputs, targets) batches of left-padded ids, one
epoch at a time, from a numpy Generator (so a seed repeats an epoch exactly):

    AllPositions  windows of up to N + 1 items; position t predicts the item after it
    RandomCuts    (history before a random cut, the item at the cut)
    Cloze         windows of up to N items with some items replaced by [MASK], which are the
                  targets; a fraction of the windows masks only its last item

N is the model's `window`; `context` > 0 (the model's `context`) prepends up to that many older
items before each window's inputs (ELASTIC-causal builds its retrieval query from them; they are
never targets). With `world_size` > 1 each rank
takes every world_size-th batch of the same shuffled epoch (`elastic_edu.training.distributed`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from elastic_edu.histories import PAD, pad_left

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Sampler:
    """Base: `epoch(rng)` lists one epoch's batches; `shard` keeps this rank's share."""

    train: Sequence[np.ndarray]
    window: int  # N, the positions a model reads (its `window`)
    batch_size: int
    context: int = 0
    rank: int = 0
    world_size: int = 1
    by_length: bool = False  # windows of similar length share a batch (less padding)

    def epoch(self, rng: np.random.Generator) -> list[Batch]:
        return self.shard(list(self.batches(rng)))

    def batches(self, rng: np.random.Generator) -> Iterator[Batch]:
        raise NotImplementedError

    def groups(self, count: int, lengths, rng: np.random.Generator) -> list[np.ndarray]:
        """One epoch's batches as index arrays: a random order, or with `by_length` samples of
        similar length together (sorted after shuffling, so ties are in random order) with the
        batches themselves in random order."""
        order = rng.permutation(count)
        if self.by_length:
            order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
        groups = [order[lo : lo + self.batch_size] for lo in range(0, count, self.batch_size)]
        return [groups[i] for i in rng.permutation(len(groups))] if self.by_length else groups

    def shard(self, batches: list[Batch]) -> list[Batch]:
        """This rank's batches: every world_size-th, the same count on every rank."""
        if self.world_size == 1:
            return batches
        per_rank = len(batches) // self.world_size
        if per_rank == 0:
            raise ValueError(f"{len(batches)} batches cannot feed {self.world_size} processes")
        return batches[self.rank :: self.world_size][:per_rank]


def windows(seq: np.ndarray, length: int, overlap: int) -> Iterator[tuple[int, int]]:
    """(start, end) of consecutive windows of `length` + `overlap` items ending at the last item.

    The windows step back by `length`, so with overlap 1 (next-item targets) every item but the
    first is a target exactly once.
    """
    for end in range(len(seq), overlap, -length):
        yield max(0, end - length - overlap), end


class AllPositions(Sampler):
    """Causal training on every position (objective ``all``).

    Inputs are the window minus its last item, targets the window minus its first item. A
    sequence longer than window + 1 is cut into consecutive windows, ending at its last item;
    the windows are shuffled. Yields (inputs (b, c + n), targets (b, n)), 0 where padded.
    """

    def batches(self, rng):
        found = []
        for seq in self.train:
            for start, end in windows(seq, self.window, 1):
                found.append((seq, start, end))
        lengths = [end - start for _, start, end in found]
        for group in self.groups(len(found), lengths, rng):
            chunk = [found[j] for j in group]
            inputs = [seq[max(0, start - self.context) : end - 1] for seq, start, end in chunk]
            targets = [seq[start + 1 : end] for seq, start, end in chunk]
            yield pad_left(inputs, self.window + self.context), pad_left(targets, self.window)


@dataclass
class RandomCuts(Sampler):
    """Random-cut training (objective ``cut``): history -> the next item.

    Cuts are uniform over 1..len-1 per user, so the history is never empty and the target never
    part of its own history. Samples of similar history length always share a batch (less
    padding); the batch order is shuffled. Yields (inputs (b, n), targets (b,)).
    """

    cuts_per_user: int = 8
    by_length: bool = True

    def batches(self, rng):
        samples = []
        for u, seq in enumerate(self.train):
            if len(seq) >= 2:
                samples.extend((u, int(t)) for t in rng.integers(1, len(seq), self.cuts_per_user))
        width = self.window + self.context
        lengths = [min(t, self.window) for _, t in samples]
        for group in self.groups(len(samples), lengths, rng):
            chunk = [samples[j] for j in group]
            history = [self.train[u][:t] for u, t in chunk]
            target = np.array([self.train[u][t] for u, t in chunk], dtype=np.int64)
            yield pad_left(history, width), torch.from_numpy(target)


@dataclass
class Cloze(Sampler):
    """Masked-item training (objective ``cloze``, BERT4Rec-style) for non-causal encoders.

    Each window of up to `window` items has each item replaced by `mask_token` with probability
    `mask_prob` (at least one per window); with probability `last_prob` a window masks only its
    last item instead, the way evaluation reads. Targets are the original items at the masked
    positions and 0 elsewhere. Yields (inputs (b, n), targets (b, n)).
    """

    mask_token: int = -1
    mask_prob: float = 0.2
    last_prob: float = 0.1

    def batches(self, rng):
        if self.mask_token <= PAD:
            raise ValueError("Cloze needs the model's mask_token")
        found = [seq[s:e] for seq in self.train for s, e in windows(seq, self.window, 0)]
        for group in self.groups(len(found), [len(f) for f in found], rng):
            inputs = pad_left([found[j] for j in group], self.window)
            real = inputs != PAD
            masked = (torch.from_numpy(rng.random(inputs.shape)) < self.mask_prob) & real
            last = torch.from_numpy(rng.random(len(inputs)) < self.last_prob)
            masked[last] = False
            empty = ~masked.any(dim=1)
            masked[last | empty, -1] = True  # the last item is never padding
            targets = torch.where(masked, inputs, torch.zeros_like(inputs))
            yield inputs.masked_fill(masked, self.mask_token), targets


def make_sampler(objective: str, train, model, config, rank: int = 0, world_size: int = 1):
    """The sampler for `objective` (a TrainConfig field) and `model` (its window and context)."""
    common = {"train": train, "window": model.window, "batch_size": config.batch_size,
              "context": model.context, "rank": rank, "world_size": world_size,
              "by_length": config.length_buckets}  # fmt: skip
    if objective == "all":
        return AllPositions(**common)
    if objective == "cut":
        return RandomCuts(**common | {"by_length": True}, cuts_per_user=config.cuts_per_user)
    if objective == "cloze":
        return Cloze(**common, mask_token=model.mask_token, mask_prob=config.mask_prob,
                     last_prob=config.last_prob)  # fmt: skip
    raise ValueError(f"objective={objective!r}: choose 'all', 'cut' or 'cloze'")
