"""Experiments: train and evaluate one model with the JSON contract the CLI writes (`run`), and
the equal-budget hyperparameter search (`tune`, with Optuna).

    runs.py  configs from settings by section, run(): fit, then full-ranking evaluation
    tune.py  one Optuna study per model, data set and seed, resumable
"""

from elastic_edu.experiments.runs import configs, default_configs, print_metrics, run

__all__ = ["configs", "default_configs", "print_metrics", "run"]
