"""The MAML family and its baselines, with a learn2learn engine and a batched torch.func engine; its
meta-training loop and its evaluation protocol."""

from metalearn.maml.adaptation import accuracy, adaptation_curve, criterion, fine_tune, head_names
from metalearn.maml.capture import CAPTURES
from metalearn.maml.engines import ENGINES, functional_meta_loss, learn2learn_meta_loss
from metalearn.maml.evaluation import AdaptationCurve, adapted_predictions, evaluate
from metalearn.maml.imaml import implicit_meta_gradient, proximal_step
from metalearn.maml.learners import (
    ALGORITHMS,
    GRADIENT_ALGORITHMS,
    IMAML,
    GradientMetaLearner,
    MetaLearner,
    ProtoNet,
    Reptile,
    can_capture,
    learner_factory,
    make_learner,
)
from metalearn.maml.training import MetaTrainResult, meta_train

__all__ = [
    "ALGORITHMS",
    "CAPTURES",
    "ENGINES",
    "GRADIENT_ALGORITHMS",
    "AdaptationCurve",
    "GradientMetaLearner",
    "IMAML",
    "MetaLearner",
    "MetaTrainResult",
    "ProtoNet",
    "Reptile",
    "accuracy",
    "adaptation_curve",
    "adapted_predictions",
    "can_capture",
    "criterion",
    "evaluate",
    "fine_tune",
    "functional_meta_loss",
    "head_names",
    "implicit_meta_gradient",
    "learn2learn_meta_loss",
    "learner_factory",
    "make_learner",
    "meta_train",
    "proximal_step",
]
