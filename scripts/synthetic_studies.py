"""Two studies on synthetic data, for the ELASTIC issue and notebook 2.

1. planted: train ELASTIC (and LDA-only) on planted-interest histories of N >= 1024 items and
   measure how well the expert assignments (argmax over experts of the dispatch weights)
   recover the planted interests: NMI against the planted labels, beside the NMI of shuffled
   labels (chance).
2. long-context: the long-range recall task (the only signal for a user's last item lies
   `distance` events back). ELASTIC reads N = 2048; SASRec gets the longest N whose training
   step is no slower than ELASTIC's on this machine; both train for the same wall-clock budget,
   on random cuts drawn at answer events (the other targets are noise and carry no signal),
   with the same curriculum over distance (`elastic_edu.training.DistanceCurriculum`): each
   model's
   own window of N events, its noise thinned to 1/32, 1/16, ... of the events, moving on at 90%
   training accuracy, then in full (for at least the second half of the budget).
   `--ablation` also trains ELASTIC without the curriculum (the full task from the start).

    python scripts/synthetic_studies.py --device auto --out results/synthetic-<machine>.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from elastic_edu.bench.point import step_seconds
from elastic_edu.config import MemoryConfig, ModelConfig, TrainConfig
from elastic_edu.data import item_interest_array, leave_one_out, load_sequences, thin_noise
from elastic_edu.device import choose_device, describe_device
from elastic_edu.evaluation import (
    evaluate,
    expert_assignments,
    nmi,
    per_user_nmi,
    rank_targets,
    shuffled_nmi,
    shuffled_per_user_nmi,
    slot_assignments,
)
from elastic_edu.histories import pad_left
from elastic_edu.models import build_model, get_spec
from elastic_edu.training import DistanceCurriculum, fit

MEMORY = MemoryConfig(subkeys=16, candidates=16)


def planted(args, device) -> dict:
    data = load_sequences(
        "synthetic",
        num_users=args.users,
        num_items=800,
        num_interests=8,
        seq_len=args.planted_len + 2,
        seed=args.seed,
    )
    split = leave_one_out(data)
    out = {"n": args.planted_len, "users": args.users, "interests": 8}
    for model_name in args.planted_models:
        spec = get_spec(model_name)
        mc = ModelConfig(
            model=spec.name,
            num_items=data.num_items,
            max_len=args.planted_len,
            dim=64,
            heads=2,
            layers=2,
            dropout=0.1,
            num_experts=16,
            memory=MEMORY,
        )
        tc = TrainConfig(
            objective=spec.default_objective,
            cuts_per_user=8,
            batch_size=32,
            lr=2e-3,
            epochs=args.planted_epochs,
            patience=100,
            max_minutes=args.minutes,
            device=str(device),
            seed=args.seed,
        )
        model = build_model(mc, seed=args.seed)
        result = fit(model, split, tc, progress=not args.quiet)
        hist = split.test.histories[: args.eval_users]
        users = split.test.users[: args.eval_users]
        assign = expert_assignments(model, hist)
        planted_labels = [
            data.labels[u][: len(h)][-len(a) :] for u, h, a in zip(users, hist, assign)
        ]
        a, p = np.concatenate(assign), np.concatenate(planted_labels)
        out[model_name] = {
            "model": spec.name,
            "objective": tc.objective,
            "nmi": nmi(a, p),
            "nmi_shuffled": shuffled_nmi(a, p),
            "nmi_per_user": per_user_nmi(assign, planted_labels),
            "nmi_per_user_shuffled": shuffled_per_user_nmi(assign, planted_labels),
            "experts_used": int(len(np.unique(a))),
            "test": evaluate(model, split.test),
            "train_seconds": result.train_seconds,
            "epochs": len(result.history),
        }
        if model.has_memory:  # slot ids name the same memory row for every user
            slots = np.concatenate(slot_assignments(model, hist))
            out[model_name]["nmi_slots"] = nmi(slots, p)
            out[model_name]["nmi_slots_shuffled"] = shuffled_nmi(slots, p)
        r = out[model_name]
        print(
            f"planted N={args.planted_len} {model_name}: NMI by expert {r['nmi']:.3f} (shuffled "
            f"{r['nmi_shuffled']:.3f}), per user {r['nmi_per_user']:.3f} (shuffled "
            f"{r['nmi_per_user_shuffled']:.3f}), by slot {r.get('nmi_slots', float('nan')):.3f}",
            flush=True,
        )
    return out


def long_context(args, device) -> dict:
    data = load_sequences(
        "long-range",
        num_users=args.users,
        num_pairs=16,
        distance=args.distance,
        episodes=3,
        seed=args.seed,
    )
    split = leave_one_out(data)
    base = dict(num_items=data.num_items, dim=64, heads=2, layers=2, dropout=0.1)
    elastic = ModelConfig(
        model=get_spec(args.elastic_model).name, max_len=args.elastic_len, num_experts=16,
        memory=MEMORY, **base,
    )  # fmt: skip
    budget = step_seconds(elastic, args.batch, device)  # the bench's timed training step
    timings = {}
    chosen = None
    for n in (256, 512, 1024, 2048, 4096):
        if n > 2 * elastic.max_len:
            break
        mc = ModelConfig(model="sasrec", max_len=n, attention="sdpa", **base)
        timings[n] = step_seconds(mc, args.batch, device)
        if timings[n] > budget:
            break  # longer N only gets slower
        chosen = mc
    chosen = chosen or ModelConfig(model="sasrec", max_len=256, attention="sdpa", **base)
    out = {
        "distance": args.distance,
        "elastic_model": elastic.model,  # the form `elastic` names below (viz.study_runs)
        "elastic_step_s": budget,
        "sasrec_step_s": {str(k): v for k, v in timings.items()},
        "sasrec_len": chosen.max_len,
        "elastic_len": elastic.max_len,
        "minutes": args.minutes,
    }
    answers = answer_positions(data, split, num_pairs=16)
    is_noise = item_interest_array(data.item_genres) < 0  # keys and answers have a pair index
    runs = [("elastic", elastic, args.curriculum), ("sasrec", chosen, args.curriculum)]
    if args.ablation:
        runs.append(("elastic_no_curriculum", elastic, [1.0]))
    for label, mc, stages in runs:
        model = build_model(mc, seed=args.seed).to(device)
        # every model spends at least the second half of its budget on the full task
        curriculum = DistanceCurriculum(tuple(stages), full_after=30 * args.minutes)
        sampler = AnswerCuts(split.train, answers, is_noise, mc.max_len, args.batch, curriculum)
        fitted = fit(model, split, answer_config(args, device), sampler=sampler,
                     callbacks=[curriculum], progress=False)  # fmt: skip
        steps, seconds = len(fitted.history), fitted.train_seconds
        ranks = rank_targets(model, split.test)
        out[label] = {
            "test": evaluate(model, split.test),
            "HR@1": float((ranks == 1).mean()),
            "chance_HR@1": 1 / 16,  # a model that knows an answer is due, but not which
            "steps": steps,
            "train_seconds": seconds,
            "max_len": mc.max_len,
            "curriculum": list(stages),
            "stage_changes": curriculum.log,
        }
        print(
            f"long-range distance {args.distance}: {label} N={mc.max_len} test HR@10 "
            f"{out[label]['test']['HR@10']:.3f}, HR@1 {out[label]['HR@1']:.3f} (chance 1/16; "
            f"{steps} steps, final keep {curriculum.keep})",
            flush=True,
        )
    return out


def answer_positions(data, split, num_pairs: int) -> list[tuple[int, int]]:
    """(user, t) for every answer event in the training part: the only learnable targets."""
    raw = np.array([-1] + [int(r) for r in data.item_ids[1:]])
    pairs = []
    for u, seq in enumerate(split.train):
        is_answer = (raw[seq] >= num_pairs) & (raw[seq] < 2 * num_pairs)
        pairs.extend((u, int(t)) for t in np.flatnonzero(is_answer) if t > 0)
    return pairs


@dataclass
class AnswerCuts:
    """Random cuts drawn only at answer events (noise targets carry no signal), one batch per
    fit epoch so that the curriculum can move between batches. Each history is the model's own
    window of max_len events, its noise thinned to the curriculum's current keep fraction."""

    train: list
    answers: list[tuple[int, int]]
    is_noise: np.ndarray
    max_len: int
    batch_size: int
    curriculum: DistanceCurriculum

    def epoch(self, rng: np.random.Generator) -> list:
        picks = [self.answers[j] for j in rng.integers(0, len(self.answers), self.batch_size)]
        windows = [self.train[u][:t][-self.max_len :] for u, t in picks]
        keep = self.curriculum.keep
        hist = pad_left([thin_noise(w, self.is_noise[w], keep, rng) for w in windows], self.max_len)
        target = torch.tensor([self.train[u][t] for u, t in picks])
        return [(hist, target)]


def answer_config(args, device) -> TrainConfig:
    """`fit` for a wall-clock budget: one batch per epoch, no validation, AdamW 2e-3 (memory
    values at 10x, `TrainConfig.memory_lr_scale`)."""
    return TrainConfig(objective="cut", epochs=10**9, eval_every=10**9, patience=10**9,
                       lr=2e-3, weight_decay=0.01, max_minutes=args.minutes, seed=args.seed,
                       device=str(device))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--study", choices=["planted", "long-context", "both"], default="both")
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--planted-len", type=int, default=1024)
    p.add_argument("--planted-epochs", type=int, default=30)
    p.add_argument("--distance", type=int, default=1500)
    p.add_argument("--elastic-len", type=int, default=2048)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--minutes", type=float, default=3.0, help="training budget per model")
    p.add_argument(
        "--curriculum",
        type=float,
        nargs="+",
        default=list(DistanceCurriculum().stages),
        help="long-context: keep fractions of the noise, rising to 1.0 (1.0 alone: none)",
    )
    p.add_argument(
        "--ablation", action="store_true", help="long-context: also ELASTIC without curriculum"
    )
    p.add_argument("--eval-users", type=int, default=64)
    p.add_argument(
        "--planted-models",
        nargs="+",
        default=["elastic", "lda"],
        help="planted: the models whose expert assignments are measured",
    )
    p.add_argument(
        "--elastic-model",
        default="elastic-bidir",
        help="long-context: the ELASTIC form that reads the long window",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = choose_device(args.device)
    result = {
        "device": str(device),
        "device_name": describe_device(device),
        "torch": torch.__version__,
        "settings": vars(args),
    }
    if args.study in ("planted", "both"):
        result["planted"] = planted(args, device)
    if args.study in ("long-context", "both"):
        result["long_context"] = long_context(args, device)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
