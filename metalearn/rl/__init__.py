"""Meta-reinforcement learning on gymnasium: task families and MAML-RL (Finn et al. 2017).

Importing this package registers our environments, so that
`gymnasium.make("metalearn/Navigation2D-v0")` works.
"""
from metalearn.rl.envs import (ENVIRONMENTS, Navigation2D, Navigation2DVector, PendulumMassLength, env_id,
                               register_environments)
from metalearn.rl.evaluation import adaptation_curve, mean_ci95
from metalearn.rl.maml_rl import (OUTER, MAMLRLSettings, MetaBatch, adapt, meta_step, meta_train,
                                  reinforce_loss)
from metalearn.rl.policy import GaussianMLPPolicy
from metalearn.rl.rollouts import Episodes, Sampler
from metalearn.rl.trpo import conjugate_gradient, trpo_step

register_environments()

__all__ = ["ENVIRONMENTS", "OUTER", "Episodes", "GaussianMLPPolicy", "MAMLRLSettings", "MetaBatch",
           "Navigation2D", "Navigation2DVector", "PendulumMassLength", "Sampler", "adapt",
           "adaptation_curve", "conjugate_gradient", "env_id", "mean_ci95", "meta_step", "meta_train",
           "register_environments", "reinforce_loss", "trpo_step"]
