"""Returns, the linear feature baseline, GAE and the REINFORCE surrogate, per task.

All tensors are (..., E, H): E episodes of horizon H for each task in the leading axes, with a
mask that is 1 on steps that happened. Rewards are 0 after an episode ends.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metalearn.rl.rollouts import Episodes


def _discount_matrix(horizon: int, factor: float, device: torch.device) -> Tensor:
    """M[k, t] = factor^(k - t) for k >= t, else 0, so that (x @ M)_t = sum_k factor^(k-t) x_k."""
    steps = torch.arange(horizon, dtype=torch.float64, device=device)
    power = steps[:, None] - steps[None, :]
    return torch.where(power >= 0, factor ** power.clamp(min=0), 0.0)


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """Reward to go G_t = sum_{k >= t} gamma^(k-t) r_k: (..., H) -> (..., H)."""
    return (rewards.double() @ _discount_matrix(rewards.shape[-1], gamma, rewards.device)).to(rewards.dtype)


def baseline_features(episodes: Episodes) -> Tensor:
    """phi(s, t) = [s, s^2, u, u^2, u^3, 1] with u = t / H (Duan et al. 2016, linear baseline)."""
    obs = episodes.observations.clamp(-10, 10)  # (..., E, H, obs_dim)
    horizon = obs.shape[-2]
    steps = torch.arange(horizon, dtype=obs.dtype, device=obs.device)
    u = (steps / horizon).expand(*obs.shape[:-1])[..., None]
    return torch.cat([obs, obs**2, u, u**2, u**3, torch.ones_like(u)], dim=-1)


def linear_baseline(episodes: Episodes, gamma: float, reg: float = 1e-5) -> Tensor:
    """V(s, t) = phi(s, t) . w, w the ridge least-squares fit of the returns, one w per task.

    w = (Phi^T M Phi + reg I)^(-1) Phi^T M G over each task's steps (M the mask); values (..., E, H).
    """
    phi = baseline_features(episodes).double().flatten(-3, -2)  # (..., E*H, F)
    mask = episodes.mask.double().flatten(-2)  # (..., E*H)
    targets = discounted_returns(episodes.rewards, gamma).double().flatten(-2)
    weighted = phi * mask[..., None]
    ridge = reg * torch.eye(phi.shape[-1], dtype=phi.dtype, device=phi.device)
    gram = weighted.transpose(-1, -2) @ phi + ridge
    w = torch.linalg.solve(gram, (weighted.transpose(-1, -2) @ targets[..., None]))
    values = (phi @ w)[..., 0].view(episodes.mask.shape) * episodes.mask.double()
    return values.to(episodes.rewards.dtype)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """A_t = sum_k (gamma lam)^k delta_(t+k), delta_t = r_t + gamma V_(t+1) - V_t (Schulman et al. 2016).

    V is 0 past the end of an episode and at the horizon; lam = 1 gives G_t - V_t.
    """
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * next_values - values) * mask
    discount = _discount_matrix(rewards.shape[-1], gamma * lam, rewards.device)
    return (deltas.double() @ discount).to(rewards.dtype) * mask


def normalize(advantages: Tensor, mask: Tensor) -> Tensor:
    """Centre and scale each task's advantages over its steps: (..., E, H)."""
    count = mask.sum((-1, -2), keepdim=True)
    mean = (advantages * mask).sum((-1, -2), keepdim=True) / count
    var = (((advantages - mean) * mask) ** 2).sum((-1, -2), keepdim=True) / count
    return (advantages - mean) / (var.sqrt() + 1e-8) * mask


def advantages(episodes: Episodes, gamma: float, gae_lambda: float, normalized: bool = True) -> Tensor:
    """GAE advantages of each task's episodes against its fitted linear baseline: (T, E, H)."""
    values = linear_baseline(episodes, gamma)
    adv = gae(episodes.rewards, values, episodes.mask, gamma, gae_lambda)
    return normalize(adv, episodes.mask) if normalized else adv
