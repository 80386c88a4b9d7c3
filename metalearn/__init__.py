"""Meta-learning: few-shot task families, the MAML family with two engines, and its evaluation."""
from metalearn.evaluation import AdaptationCurve, evaluate, mean_ci95, summary_metrics
from metalearn.fewshot import Sine, TaskFamily, Tasks
from metalearn.maml import ALGORITHMS, ENGINES, GRADIENT_ALGORITHMS, IMAML, MetaLearner, make_learner

__all__ = [
    "ALGORITHMS", "AdaptationCurve", "ENGINES", "GRADIENT_ALGORITHMS", "IMAML", "MetaLearner", "Sine", "TaskFamily",
    "Tasks", "evaluate", "make_learner", "mean_ci95", "summary_metrics",
]
