"""Seconds per training epoch with and without the work on padding, in one process.

Three ways to train on every position (objective ``all``), timed epoch by epoch in turn:

    every position   logits at every position of the window, padding included, which
                     cross-entropy then ignores (the loss as it was before this script's commit)
    targets only     logits only where a target exists (`SequentialRecommender.loss` today)
    + buckets        the same, with windows of similar length in one batch (--length-buckets)

on MovieLens-100K (the RecBole atomic copy: --atomic) and on a synthetic set of short histories
(planted interests, 3 to 20 items per user, as in review data sets). The share of target
positions that are padding is counted from the same batches. Writes JSON (--out).

    python scripts/padding_bench.py --atomic ../shared/data/ml-100k --threads 1 \
        --out results/padding-cpu-amd-epyc.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from einops import einsum, rearrange

from elastic_edu.bench.point import optimizer_step
from elastic_edu.config import TrainConfig
from elastic_edu.data import leave_one_out, load_sequences
from elastic_edu.data.batches import make_sampler
from elastic_edu.device import describe_device
from elastic_edu.experiments import default_configs
from elastic_edu.files import write_json
from elastic_edu.histories import PAD
from elastic_edu.models import build_model


def loss_at_every_position(model, inputs, targets):
    """The loss as it was: logits for every window position, padding dropped by ignore_index."""
    hidden = model.encode(inputs).hidden[:, -targets.shape[1] :]
    logits = einsum(hidden, model.item_repr(), "b n d, i d -> b n i").float()
    logits = rearrange(logits, "b n i -> (b n) i")
    logits[:, PAD] = float("-inf")
    return F.cross_entropy(logits, rearrange(targets, "b n -> (b n)"), ignore_index=PAD)


def epoch_seconds(model, batches, optimizer, old_loss: bool) -> float:
    """Seconds of one epoch of the bench's timed step (`optimizer_step`), batch by batch."""
    loss = loss_at_every_position if old_loss else lambda m, x, y: m.loss(x, y, "all")
    start = time.perf_counter()
    for inputs, targets in batches:
        optimizer_step(optimizer, lambda x=inputs, y=targets: loss(model, x, y))
    return time.perf_counter() - start


def measure(split, model_name: str, epochs: int, seed: int) -> dict:
    """Median seconds per epoch of each variant, the variants timed in turn each epoch."""
    mc, _ = default_configs(model_name, split.num_items)
    model = build_model(mc, seed=seed).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    variants = {"every position": (False, True), "targets only": (False, False),
                "targets only + buckets": (True, False)}  # fmt: skip
    seconds = {name: [] for name in variants}
    padding = {}
    for epoch in range(epochs):
        for name, (buckets, old_loss) in variants.items():
            config = TrainConfig(objective="all", length_buckets=buckets)
            sampler = make_sampler("all", split.train, model, config)
            batches = sampler.epoch(np.random.default_rng(seed + epoch))
            seconds[name].append(epoch_seconds(model, batches, optimizer, old_loss))
            targets = [t for _, t in batches]
            padding[name] = {
                "target_positions": int(sum(t.numel() for t in targets)),
                "padding_share": float(
                    sum((t == PAD).sum().item() for t in targets) / sum(t.numel() for t in targets)
                ),  # fmt: skip
                "input_positions": int(sum(x.numel() for x, _ in batches)),
            }
    median = {name: statistics.median(s) for name, s in seconds.items()}
    base = median["every position"]
    return {"model": mc.model, "seconds_per_epoch": median, "runs": seconds, "batches": padding,
            "speedup": {name: base / m for name, m in median.items()}}  # fmt: skip


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atomic", default="../shared/data/ml-100k", help="ML-100K, RecBole atomic")
    p.add_argument("--models", nargs="+", default=["sasrec", "elastic"])
    p.add_argument("--epochs", type=int, default=3, help="epochs timed per variant")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    sets = {
        "ml-100k": load_sequences(a.atomic),
        "synthetic-short": load_sequences(
            "synthetic", num_users=6000, num_items=2000, seq_len=20, min_len=3, seed=a.seed
        ),  # fmt: skip
    }
    command = "python scripts/padding_bench.py " + " ".join(argv or sys.argv[1:])
    out = {"device": describe_device(torch.device("cpu")), "threads": torch.get_num_threads(),
           "command": command, "sets": {}}  # fmt: skip
    for name, data in sets.items():
        split = leave_one_out(data)
        lengths = [len(s) for s in split.train]
        out["sets"][name] = {"users": len(lengths), "mean_train_length": float(np.mean(lengths)),
                             "models": []}  # fmt: skip
        for model in a.models:
            row = measure(split, model, a.epochs, a.seed)
            out["sets"][name]["models"].append(row)
            print(name, row["model"], {k: round(v, 2) for k, v in row["seconds_per_epoch"].items()},
                  {k: round(v["padding_share"], 3) for k, v in row["batches"].items()})  # fmt: skip
            write_json(a.out, out)


if __name__ == "__main__":
    main()
