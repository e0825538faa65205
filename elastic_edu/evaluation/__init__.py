"""Evaluation: what a trained model scores, and what several runs say together.

metrics.py     full ranking through model.score: HR, NDCG, MRR at 10, 20, 50; sampled
               negatives for comparison only
statistics.py  mean and standard error over seeds, paired tests user by user, NDCG@10 by
               history length, the comparison table
analysis.py    inside a model: expert assignments, NMI with planted interests, slot usage
"""

from elastic_edu.evaluation.analysis import (
    assignment_entropy,
    expert_assignments,
    interest_stats,
    nmi,
    per_user_nmi,
    shuffled_nmi,
    shuffled_per_user_nmi,
    slot_assignments,
    slot_counts,
    usage_stats,
)
from elastic_edu.evaluation.metrics import (
    KS,
    evaluate,
    evaluate_sampled,
    history_mask,
    metrics_from_ranks,
    rank_targets,
    rank_targets_sampled,
    ranks_from_scores,
    scored_batches,
)
from elastic_edu.evaluation.statistics import (
    by_history_length,
    comparison,
    format_table,
    ndcg_per_user,
    paired_test,
    paired_tests,
    sign_test,
    summarise,
    user_ndcg,
)
from elastic_edu.models.base import NonFiniteScores, check_finite

__all__ = [
    "KS",
    "NonFiniteScores",
    "assignment_entropy",
    "by_history_length",
    "check_finite",
    "comparison",
    "evaluate",
    "evaluate_sampled",
    "expert_assignments",
    "format_table",
    "history_mask",
    "interest_stats",
    "metrics_from_ranks",
    "ndcg_per_user",
    "nmi",
    "paired_test",
    "paired_tests",
    "per_user_nmi",
    "rank_targets",
    "rank_targets_sampled",
    "ranks_from_scores",
    "scored_batches",
    "shuffled_nmi",
    "shuffled_per_user_nmi",
    "sign_test",
    "slot_assignments",
    "slot_counts",
    "summarise",
    "usage_stats",
    "user_ndcg",
]
