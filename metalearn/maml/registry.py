"""The meta-learners by name (see `registration`): a factory (model, kind, **options) ->
`MetaLearner`. A member of the MAML family is a `MamlVariant` and one line here; any other
algorithm a class and one line; a user's own is `module:factory`, from the user's module."""

from __future__ import annotations

from functools import partial
from typing import Any

from torch import nn

from metalearn.maml.learners import IMAML, GradientMetaLearner, MetaLearner, ProtoNet, Reptile
from metalearn.maml.variants import ANIL, FOANIL, FOMAML, MAML, META_SGD
from registration import Registry

ALGORITHMS = Registry("algo", returns=MetaLearner, given=("model", "kind"))
ALGORITHMS.register("maml", partial(GradientMetaLearner, variant=MAML, algo="maml"))
ALGORITHMS.register("fomaml", partial(GradientMetaLearner, variant=FOMAML, algo="fomaml"))
ALGORITHMS.register("anil", partial(GradientMetaLearner, variant=ANIL, algo="anil"))
ALGORITHMS.register("metasgd", partial(GradientMetaLearner, variant=META_SGD, algo="metasgd"))
ALGORITHMS.register("reptile", Reptile)
ALGORITHMS.register("protonet", ProtoNet)
ALGORITHMS.register("pretrain", MetaLearner)
ALGORITHMS.register("imaml", IMAML)
ALGORITHMS.register("foanil", partial(GradientMetaLearner, variant=FOANIL, algo="foanil"))


def learner_class(algo: str) -> type[MetaLearner] | None:
    """The class `algo`'s factory builds: the factory itself if it is a class, the class of a
    `functools.partial` of one; None for any other function, whose class is known once called."""
    factory = ALGORITHMS.factory(algo)
    cls = factory.func if isinstance(factory, partial) else factory
    return cls if isinstance(cls, type) else None


def gradient_algorithms() -> tuple[str, ...]:
    """The registered names of the MAML family (`GradientMetaLearner`s): those whose meta-gradient
    flows through the inner loop, in either engine."""
    return tuple(
        name for name in ALGORITHMS if issubclass(learner_class(name) or object, GradientMetaLearner)
    )


def can_capture(algo: str, engine: str) -> bool:
    """Whether `algo`'s meta-step in `engine` can be compiled or recorded (a capture other than
    `none`): where its learner class is `capturable` (the MAML family), in the functional engine."""
    cls = learner_class(algo)
    return cls is not None and cls.capturable and engine == "functional"


def make_learner(algo: str, model: nn.Module, kind: str, **options: Any) -> MetaLearner:
    """The learner `algo` (a name or `module:factory`) for `model` and `kind`, with `options`:
    those its factory takes (an option it does not take is refused, naming those it does)."""
    return ALGORITHMS.make(algo, model, kind, **options)
