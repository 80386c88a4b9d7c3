"""Evaluation on fresh tasks: average return before and after 1..K adaptation steps.

As in Finn et al. 2017 (figure 5), each adaptation step is one policy-gradient step on fresh
episodes of the current (adapted) policy; a step's return is the mean over its episodes. Curves
are (steps + 1, tasks), steps first; their spread over tasks is
`metalearn.stats.mean_ci95(returns, dim=1)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metalearn.rl.advantages import advantages
from metalearn.rl.maml_rl import adapt
from metalearn.rl.policy import GaussianMLPPolicy, stack
from metalearn.rl.rollouts import Episodes, Sampler


def adaptation_curve(
    policy: GaussianMLPPolicy,
    sampler: Sampler,
    tasks: list[dict],
    steps: int,
    inner_lr: float,
    gamma: float,
    gae_lambda: float,
    generator: torch.Generator,
) -> tuple[Tensor, list[Episodes]]:
    """Per-task mean return after 0..`steps` adaptation steps, (steps + 1, n_tasks), and the
    episodes collected at each step."""
    params = stack({n: p.detach() for n, p in policy.named_parameters()}, len(tasks))
    returns, collected = [], []
    for step in range(steps + 1):
        episodes = sampler.sample(policy, params, tasks, generator)
        returns.append(episodes.returns().mean(1))
        collected.append(episodes)
        if step < steps:
            adv = advantages(episodes, gamma, gae_lambda)
            params = adapt(policy, params, episodes, adv, inner_lr, first_order=True)
            params = {n: p.detach() for n, p in params.items()}
    return torch.stack(returns), collected
