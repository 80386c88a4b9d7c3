"""Meta-learning: few-shot task families, the MAML family with two engines, and its evaluation."""

from metalearn.fewshot import TASK_FAMILIES, Sine, TaskFamily, Tasks, make_task_family
from metalearn.maml import (
    ALGORITHMS,
    ENGINES,
    GRADIENT_ALGORITHMS,
    IMAML,
    AdaptationCurve,
    MetaLearner,
    MetaTrainResult,
    evaluate,
    make_learner,
    meta_train,
)
from metalearn.stats import mean_ci95

__all__ = [
    "ALGORITHMS",
    "AdaptationCurve",
    "ENGINES",
    "GRADIENT_ALGORITHMS",
    "IMAML",
    "MetaLearner",
    "MetaTrainResult",
    "Sine",
    "TASK_FAMILIES",
    "TaskFamily",
    "Tasks",
    "evaluate",
    "make_learner",
    "make_task_family",
    "mean_ci95",
    "meta_train",
]
