"""Meta-learning: few-shot task families, the MAML family with two engines, and its evaluation."""

from metalearn.fewshot import TASK_FAMILIES, Sine, TaskFamily, Tasks, make_task_family
from metalearn.maml import (
    ALGORITHMS,
    ENGINES,
    IMAML,
    AdaptationCurve,
    MamlVariant,
    MetaLearner,
    MetaTrainResult,
    evaluate,
    gradient_algorithms,
    learner_class,
    make_learner,
    meta_train,
)
from metalearn.stats import mean_ci95

__all__ = [
    "ALGORITHMS",
    "AdaptationCurve",
    "ENGINES",
    "IMAML",
    "MamlVariant",
    "MetaLearner",
    "MetaTrainResult",
    "Sine",
    "TASK_FAMILIES",
    "TaskFamily",
    "Tasks",
    "evaluate",
    "gradient_algorithms",
    "learner_class",
    "make_learner",
    "make_task_family",
    "mean_ci95",
    "meta_train",
]
