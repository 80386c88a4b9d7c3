"""Episodes for many tasks at once, collected with a gymnasium vector environment.

One sub-environment per (task, episode) pair; each task's policy has its own parameters (the
adapted ones after an inner step), evaluated for all tasks at once with `torch.func.vmap`.
Environments run on the CPU; the policy runs where its parameters are, sees each step's
observations there, and its actions come back with noise drawn on the CPU (so a seed gives the
same episodes on any device, up to the policy's rounding). Episodes are returned on the policy's
device.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium
import numpy as np
import torch
from torch import Tensor

from metalearn.rl.policy import GaussianMLPPolicy, Params, task_action_distribution


class Episodes(NamedTuple):
    """A batch of fixed-horizon episodes, E per task for T tasks, padded after they end."""

    observations: Tensor  # (T, E, H, obs_dim) observation before each action
    actions: Tensor  # (T, E, H, act_dim) sampled (unclipped) actions
    rewards: Tensor  # (T, E, H), 0 after the episode ended
    mask: Tensor  # (T, E, H), 1.0 on steps that happened

    def returns(self) -> Tensor:
        """Undiscounted return of each episode: (T, E)."""
        return self.rewards.sum(-1)


class Sampler:
    """Collects `episodes` episodes for each of `n_tasks` tasks with a gymnasium vector env.

    The env's own vector implementation is used where it has one (`vector_entry_point`), else
    a `SyncVectorEnv` of copies.
    """

    def __init__(self, env_id: str, n_tasks: int, episodes: int):
        self.n_tasks, self.episodes = n_tasks, episodes
        self.env = gymnasium.make_vec(env_id, num_envs=n_tasks * episodes)
        self.horizon = self.env.spec.max_episode_steps
        self.obs_dim = self.env.single_observation_space.shape[0]
        self.act_dim = self.env.single_action_space.shape[0]

    def close(self) -> None:
        self.env.close()

    def sample(
        self, policy: GaussianMLPPolicy, params: Params, tasks: list[dict], generator: torch.Generator
    ) -> Episodes:
        """Run each task's policy (params with a leading task axis) for one episode per sub-env.

        Environment seeds and action noise both come from `generator` (a CPU generator).
        """
        if len(tasks) != self.n_tasks:
            raise ValueError(f"got {len(tasks)} tasks; this sampler holds {self.n_tasks}")
        T, E, H = self.n_tasks, self.episodes, self.horizon
        device = next(iter(params.values())).device
        self.env.set_attr("task", [task for task in tasks for _ in range(E)])
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        obs, _ = self.env.reset(seed=seed)
        observations = torch.zeros(T, E, H, self.obs_dim)
        actions = torch.zeros(T, E, H, self.act_dim)
        rewards, mask = torch.zeros(T, E, H), torch.zeros(T, E, H)
        alive = np.ones(T * E, dtype=bool)
        for t in range(H):
            o = torch.as_tensor(obs, dtype=torch.float32).view(T, E, -1)
            with torch.no_grad():
                mean, std = task_action_distribution(policy, params, o.to(device))
            a = mean.cpu() + std.cpu() * torch.randn(mean.shape, generator=generator)
            obs, reward, terminated, truncated, _ = self.env.step(a.view(T * E, -1).numpy())
            alive_t = torch.as_tensor(alive, dtype=torch.float32).view(T, E)
            observations[:, :, t], actions[:, :, t] = o, a
            rewards[:, :, t] = torch.as_tensor(reward, dtype=torch.float32).view(T, E) * alive_t
            mask[:, :, t] = alive_t
            alive &= ~(terminated | truncated)
            if not alive.any():
                break
        return Episodes(*(t.to(device) for t in (observations, actions, rewards, mask)))
