"""Evaluation: the confidence interval by hand, and the adaptation curve's bookkeeping."""

import pytest
import torch

from metalearn.rl import GaussianMLPPolicy, Sampler, adaptation_curve
from metalearn.rl.policy import stack
from metalearn.stats import mean_ci95

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metalearn/conftest.py


def test_mean_ci95_by_hand():
    mean, half_width = mean_ci95(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5
    assert float(half_width) == pytest.approx(1.96 * (5 / 3) ** 0.5 / 2)  # sample std sqrt(5/3), n = 4


def test_adaptation_curve_step_zero_is_the_unadapted_policys_return():
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=3, episodes=2)
    tasks = [{"goal": (0.1, 0.2)}, {"goal": (-0.4, 0.0)}, {"goal": (0.3, -0.3)}]
    returns, episodes = adaptation_curve(
        policy, sampler, tasks, 2, 0.1, 0.99, 1.0, torch.Generator().manual_seed(5)
    )
    assert returns.shape == (3, 3) and len(episodes) == 3
    params = stack({n: p.detach() for n, p in policy.named_parameters()}, 3)
    again = sampler.sample(policy, params, tasks, torch.Generator().manual_seed(5))
    torch.testing.assert_close(returns[0], again.returns().mean(1), rtol=0, atol=0)
    assert not torch.equal(returns[1], returns[0])


def test_adaptation_curve_is_steps_first():
    """(steps + 1, tasks): one adaptation step on four tasks is (2, 4), each row a step."""
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=4, episodes=2)
    tasks = [{"goal": (0.1, 0.2)}, {"goal": (-0.4, 0.0)}, {"goal": (0.3, -0.3)}, {"goal": (0.0, 0.5)}]
    returns, episodes = adaptation_curve(
        policy, sampler, tasks, 1, 0.1, 0.99, 1.0, torch.Generator().manual_seed(5)
    )
    assert returns.shape == (2, 4)
    torch.testing.assert_close(returns[1], episodes[1].returns().mean(1), rtol=0, atol=0)
