"""Returns, baseline and GAE against independent loops and lstsq; the inner policy-gradient step
against the exact gradient of a Gaussian bandit (unbiased without a baseline, (1 - 1/E) times it
with a baseline fitted on the same E episodes)."""

import numpy as np
import pytest
import torch

from metalearn.rl import Episodes, GaussianMLPPolicy
from metalearn.rl.advantages import advantages, baseline_features, discounted_returns, gae, linear_baseline
from metalearn.rl.maml_rl import adapt
from metalearn.rl.policy import params_of, stack

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metalearn/conftest.py


def _random_episodes(seed, tasks=2, episodes=3, horizon=6, obs_dim=2):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(tasks, episodes, horizon)
    mask[0, 1, 4:] = 0  # one episode ends early
    return Episodes(
        torch.randn(tasks, episodes, horizon, obs_dim, generator=g),
        torch.randn(tasks, episodes, horizon, 2, generator=g),
        torch.randn(tasks, episodes, horizon, generator=g) * mask,
        mask,
    )


def test_discounted_returns_match_backward_recursion():
    rewards = torch.randn(3, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected, running = torch.zeros_like(rewards), torch.zeros(3, dtype=torch.float64)
    for t in reversed(range(7)):
        running = rewards[:, t] + 0.9 * running
        expected[:, t] = running
    torch.testing.assert_close(discounted_returns(rewards, 0.9), expected)


def test_gae_matches_backward_recursion_and_lambda_one_is_return_minus_value():
    ep = _random_episodes(1)
    values = torch.randn(ep.mask.shape, generator=torch.Generator().manual_seed(2)) * ep.mask
    gamma, lam = 0.95, 0.8
    expected, running = torch.zeros_like(values), torch.zeros(values.shape[:-1])
    for t in reversed(range(values.shape[-1])):
        next_value = values[..., t + 1] if t + 1 < values.shape[-1] else 0.0
        delta = ep.rewards[..., t] + gamma * next_value - values[..., t]
        running = (delta + gamma * lam * running) * ep.mask[..., t]
        expected[..., t] = running
    torch.testing.assert_close(gae(ep.rewards, values, ep.mask, gamma, lam), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        gae(ep.rewards, values, ep.mask, gamma, 1.0),
        (discounted_returns(ep.rewards, gamma) - values) * ep.mask,
        rtol=1e-5,
        atol=1e-5,
    )


def test_linear_baseline_is_ridge_least_squares_per_task():
    ep = _random_episodes(3)
    values = linear_baseline(ep, gamma=0.9, reg=1e-5)
    for task in range(2):
        keep = ep.mask[task].flatten().bool().numpy()
        phi = baseline_features(ep)[task].flatten(0, 1).double().numpy()[keep]
        target = discounted_returns(ep.rewards[task], 0.9).flatten().double().numpy()[keep]
        w = np.linalg.solve(phi.T @ phi + 1e-5 * np.eye(phi.shape[1]), phi.T @ target)
        np.testing.assert_allclose(values[task].flatten().numpy()[keep], phi @ w, rtol=1e-4, atol=1e-4)
    assert (values[0, 1, 4:] == 0).all()


def _bandit_gradient_estimates(estimates, episodes, baseline):
    """K policy-gradient estimates on a one-step bandit r(a) = -|a - goal|^2, and the exact one."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(1, 2, hidden=(16,), init_std=0.7).double()
    goal = torch.tensor([0.3, -0.2], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    obs = torch.full((estimates, episodes, 1, 1), 0.5, dtype=torch.float64)
    with torch.no_grad():
        mean, std = policy(obs)
    actions = mean + std * torch.randn(mean.shape, generator=g, dtype=torch.float64)
    rewards = -((actions - goal) ** 2).sum(-1)
    ep = Episodes(obs, actions, rewards, torch.ones_like(rewards))
    adv = advantages(ep, gamma=1.0, gae_lambda=1.0, normalized=False) if baseline else rewards
    params = stack({n: p.detach() for n, p in params_of(policy).items()}, estimates)
    stepped = adapt(policy, params, ep, adv, inner_lr=1.0)  # theta' - theta = grad J estimate
    est = torch.cat([(stepped[n] - params[n]).flatten(1) for n in params], dim=1)  # (K, P)
    mean0, std0 = policy(obs[0, 0, 0])
    exact_j = -((mean0 - goal) ** 2).sum() - (std0**2).sum()  # E[r] in closed form
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(exact_j, list(policy.parameters()))])
    return est, exact


@pytest.mark.parametrize("baseline", [False, True])
def test_policy_gradient_estimate_is_unbiased(baseline):
    estimates, episodes = 2000, 10
    est, exact = _bandit_gradient_estimates(estimates, episodes, baseline)
    factor = 1 - 1 / episodes if baseline else 1.0  # E[grad log pi (r - mean r)] = (1 - 1/E) grad J
    standard_error = est.std(0) / estimates**0.5
    live = standard_error > 0  # parameters behind a dead ReLU get exactly zero, like their gradient
    assert live.sum() >= 10 and (est[:, ~live] == 0).all() and (exact[~live] == 0).all()
    z = (est.mean(0) - factor * exact)[live] / standard_error[live]
    assert z.abs().max() < 4.5, z  # per component, 4.5 sigma over the live components
    scale = est @ exact / (exact @ exact)  # each estimate's length along the exact gradient
    scale_error = scale.std() / estimates**0.5
    assert abs(scale.mean() - factor) < 3 * scale_error
    wrong = 1.0 if baseline else 0.5  # the test can tell the baseline's bias, or a halved step
    assert abs(scale.mean() - wrong) > 4 * scale_error
