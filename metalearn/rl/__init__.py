"""Meta-reinforcement learning on gymnasium: task families and MAML-RL (Finn et al. 2017).

Importing this package registers our environments, so that
`gymnasium.make("metalearn/Navigation2D-v0")` works.
"""

from metalearn.rl.envs import (
    ENVIRONMENTS,
    EnvSpec,
    Navigation2D,
    Navigation2DVector,
    PendulumMassLength,
    env_id,
    env_spec,
    make_env,
    register_environments,
)
from metalearn.rl.evaluation import adaptation_curve
from metalearn.rl.maml_rl import (
    OUTER,
    MAMLRLSettings,
    MetaBatch,
    MetaTrainResult,
    OuterStep,
    adapt,
    make_outer,
    meta_train,
    outer_factory,
    reinforce_loss,
)
from metalearn.rl.policy import GaussianMLPPolicy
from metalearn.rl.rollouts import Episodes, Sampler
from metalearn.rl.trpo import trpo_step

register_environments()

__all__ = [
    "ENVIRONMENTS",
    "OUTER",
    "EnvSpec",
    "Episodes",
    "GaussianMLPPolicy",
    "MAMLRLSettings",
    "MetaBatch",
    "MetaTrainResult",
    "Navigation2D",
    "Navigation2DVector",
    "OuterStep",
    "PendulumMassLength",
    "Sampler",
    "adapt",
    "adaptation_curve",
    "env_id",
    "env_spec",
    "make_env",
    "make_outer",
    "meta_train",
    "outer_factory",
    "register_environments",
    "reinforce_loss",
    "trpo_step",
]
