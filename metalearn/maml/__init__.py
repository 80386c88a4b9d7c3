"""The MAML family and its baselines, with a learn2learn engine and a batched torch.func engine; its
meta-training loop and its evaluation protocol."""

from metalearn.maml.adaptation import accuracy, adaptation_curve, criterion, fine_tune, head_names
from metalearn.maml.capture import CAPTURES
from metalearn.maml.engines import (
    ENGINES,
    LEARN2LEARN_MISSING,
    functional_meta_loss,
    learn2learn_installed,
    learn2learn_meta_loss,
)
from metalearn.maml.evaluation import AdaptationCurve, adapted_predictions, evaluate
from metalearn.maml.imaml import implicit_meta_gradient, proximal_step
from metalearn.maml.learners import IMAML, GradientMetaLearner, MetaLearner, ProtoNet, Reptile
from metalearn.maml.registry import ALGORITHMS, can_capture, gradient_algorithms, learner_class, make_learner
from metalearn.maml.training import MetaTrainResult, meta_train
from metalearn.maml.variants import ANIL, FOANIL, FOMAML, MAML, META_SGD, MamlVariant

__all__ = [
    "ALGORITHMS",
    "ANIL",
    "CAPTURES",
    "ENGINES",
    "FOANIL",
    "FOMAML",
    "AdaptationCurve",
    "GradientMetaLearner",
    "IMAML",
    "LEARN2LEARN_MISSING",
    "MAML",
    "META_SGD",
    "MamlVariant",
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
    "gradient_algorithms",
    "head_names",
    "implicit_meta_gradient",
    "learn2learn_installed",
    "learn2learn_meta_loss",
    "learner_class",
    "make_learner",
    "meta_train",
    "proximal_step",
]
