"""The MAML family and its baselines, with a learn2learn engine and a batched torch.func engine."""
from metalearn.maml.adaptation import accuracy, adaptation_curve, criterion, fine_tune, head_names
from metalearn.maml.engines import ENGINES, functional_meta_loss, learn2learn_meta_loss
from metalearn.maml.learners import (
    ALGORITHMS,
    GRADIENT_ALGORITHMS,
    GradientMetaLearner,
    MetaLearner,
    ProtoNet,
    Reptile,
    make_learner,
)

__all__ = [
    "ALGORITHMS", "ENGINES", "GRADIENT_ALGORITHMS", "GradientMetaLearner", "MetaLearner", "ProtoNet",
    "Reptile", "accuracy", "adaptation_curve", "criterion", "fine_tune", "functional_meta_loss",
    "head_names", "learn2learn_meta_loss", "make_learner",
]
