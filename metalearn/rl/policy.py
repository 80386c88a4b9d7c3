"""Gaussian MLP policy, used functionally so that each task can carry its own adapted weights.

pi_theta(a | s) = N(a; mu_theta(s), diag(exp(log_std))^2), mu an MLP with ReLU hidden layers
(100-100 in Finn et al. 2017) and a state-independent log standard deviation, initially 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Params = dict[str, Tensor]


class GaussianMLPPolicy(nn.Module):
    """mu(s) = MLP(s), std = exp(log_std); `forward` returns (mean, std)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (100, 100), init_std: float = 1.0
    ):
        super().__init__()
        layers, width = [], obs_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.mean = nn.Sequential(*layers, nn.Linear(width, act_dim))
        self.log_std = nn.Parameter(torch.full((act_dim,), float(torch.log(torch.tensor(init_std)))))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.mean(obs), self.log_std.exp().expand(*obs.shape[:-1], -1)


def params_of(policy: nn.Module) -> Params:
    """The policy's parameters as a name -> tensor dict (the tensors themselves, still trainable)."""
    return dict(policy.named_parameters())


def gaussian_log_prob(mean: Tensor, std: Tensor, actions: Tensor) -> Tensor:
    """log N(a; mean, diag(std^2)), summed over the last (action) axis.

    Written out rather than through torch.distributions, whose argument checks raise on the
    non-finite values of a diverging run (a result to record, not an error).
    """
    z = (actions - mean) / std
    return (-0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def log_prob(policy: nn.Module, params: Params, obs: Tensor, actions: Tensor) -> Tensor:
    """log pi(a | s) summed over action dimensions: (..., obs_dim), (..., act_dim) -> (...)."""
    mean, std = functional_call(policy, params, (obs,))
    return gaussian_log_prob(mean, std, actions)


def task_log_prob(policy: nn.Module, params: Params, obs: Tensor, actions: Tensor) -> Tensor:
    """`log_prob` with one set of params per task: params and tensors carry a leading task axis."""
    return vmap(lambda p, o, a: log_prob(policy, p, o, a))(params, obs, actions)


def task_action_distribution(policy: nn.Module, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
    """(mean, std) of each task's policy: params (T, ...), obs (T, ..., obs_dim)."""
    return vmap(lambda p, o: functional_call(policy, p, (o,)))(params, obs)


def stack(params: Params, n_tasks: int) -> Params:
    """The same params for each of `n_tasks` tasks, with a leading task axis (no copy)."""
    return {name: p.expand(n_tasks, *p.shape) for name, p in params.items()}
