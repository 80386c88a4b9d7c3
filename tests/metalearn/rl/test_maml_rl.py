"""MAML-RL: one inner step on Navigation2D moves the policy towards the goal; the outer gradient
through the inner step matches finite differences; TRPO's pieces solve known quadratic problems."""

import math

import gymnasium
import pytest
import torch

from metalearn.rl import Episodes, GaussianMLPPolicy, Sampler
from metalearn.rl.advantages import advantages
from metalearn.rl.maml_rl import (
    OUTER,
    MAMLRLSettings,
    MetaBatch,
    MetaTrainResult,
    adapt,
    make_outer,
    meta_train,
    outer_factory,
    reinforce_loss,
)
from metalearn.rl.policy import params_of, stack
from metalearn.rl.trpo import trpo_step
from reporting import History

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metalearn/conftest.py

GOALS = [(0.4, 0.0), (0.0, 0.4), (-0.4, 0.0), (0.0, -0.4)]


def test_one_adaptation_step_moves_the_mean_action_towards_the_goal():
    # A zero output layer makes the initial policy an unbiased random walk, so by symmetry the
    # expected step of the output bias (the state-independent part of the mean) points at the goal.
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2)
    torch.nn.init.zeros_(policy.mean[-1].weight)
    torch.nn.init.zeros_(policy.mean[-1].bias)
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=len(GOALS), episodes=20)
    params = stack({n: p.detach() for n, p in params_of(policy).items()}, len(GOALS))
    for seed in (0, 1):
        episodes = sampler.sample(
            policy, params, [{"goal": g} for g in GOALS], torch.Generator().manual_seed(seed)
        )
        adapted = adapt(policy, params, episodes, advantages(episodes, 0.99, 1.0), inner_lr=0.1)
        bias = "mean.4.bias"
        cosine = torch.nn.functional.cosine_similarity(
            adapted[bias] - params[bias], torch.tensor(GOALS), dim=1
        )
        assert (cosine > 0.7).all(), cosine


def test_outer_gradient_through_the_inner_step_matches_finite_differences():
    torch.manual_seed(1)
    policy = GaussianMLPPolicy(2, 2, hidden=(5,)).double()
    g = torch.Generator().manual_seed(2)
    obs, actions = (torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64) for _ in range(2))
    adv, mask = (
        torch.randn(3, 4, 2, generator=g, dtype=torch.float64),
        torch.ones(3, 4, 2, dtype=torch.float64),
    )
    inner = Episodes(obs[:, :2], actions[:, :2], torch.zeros_like(adv[:, :2]), mask[:, :2])  # rewards unused

    def outer_loss(params):
        adapted = adapt(policy, stack(params, 3), inner, adv[:, :2], inner_lr=0.5)
        losses = [
            reinforce_loss(
                policy,
                {n: p[i] for n, p in adapted.items()},
                obs[i, 2:],
                actions[i, 2:],
                adv[i, 2:],
                mask[i, 2:],
            )
            for i in range(3)
        ]
        return sum(losses)

    params = {n: p.detach().clone().requires_grad_() for n, p in params_of(policy).items()}
    analytic = torch.autograd.grad(outer_loss(params), list(params.values()))
    for (name, p), grad in zip(params.items(), analytic):
        for index in [0, p.numel() - 1]:
            shifted = {n: q.detach().clone() for n, q in params.items()}
            eps = 1e-6
            shifted[name].view(-1)[index] += eps
            up = outer_loss(shifted)
            shifted[name].view(-1)[index] -= 2 * eps
            numeric = (up - outer_loss(shifted)) / (2 * eps)
            assert grad.view(-1)[index].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-8), name


def test_trpo_step_on_a_quadratic_trust_region_is_the_closed_form():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(4, 4, generator=g, dtype=torch.float64)
    fisher, gain = (
        m @ m.T + torch.eye(4, dtype=torch.float64),
        torch.randn(4, generator=g, dtype=torch.float64),
    )
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)

    def kl():
        return 0.5 * x @ fisher @ x

    stats = trpo_step([x], lambda: (gain @ x, kl()), kl, max_kl=0.01, cg_iters=4, damping=0.0)
    natural = torch.linalg.solve(fisher, gain)
    expected = math.sqrt(2 * 0.01 / (gain @ natural)) * natural * 0.8**stats.line_search_steps
    assert stats.line_search_steps <= 1  # the full step sits on the trust region's edge
    torch.testing.assert_close(x.detach(), expected)
    assert stats.kl == pytest.approx(float(kl().detach()), rel=1e-9) and stats.kl <= 0.01


@pytest.mark.parametrize("outer", ["trpo", "ppo"])
def test_meta_step_improves_the_outer_surrogate_within_the_trust_region(outer):
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, hidden=(16, 16))
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=2, episodes=4)
    settings = MAMLRLSettings(outer=outer, ppo_lr=1e-3)
    batch = MetaBatch(
        policy,
        sampler,
        [{"goal": (0.3, 0.3)}, {"goal": (-0.3, 0.1)}],
        settings,
        torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        before, kl0 = batch.objective()
    assert abs(float(kl0)) < 1e-6  # the old adapted policy is the one that sampled
    metrics = make_outer(policy, settings)(batch)
    assert metrics["loss/surrogate"] > float(before)
    assert 0 < metrics["loss/kl"] <= (settings.max_kl if outer == "trpo" else 0.1)


def _poison(policy):
    with torch.no_grad():
        policy.log_std.fill_(float("nan"))


def _tiny_training(iterations, poison=False):
    torch.manual_seed(3)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    if poison:
        _poison(policy)
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=2, episodes=3)
    source = gymnasium.make("metalearn/Navigation2D-v0").unwrapped
    source.reset(seed=0)
    result = meta_train(
        policy, sampler, source.sample_tasks, iterations, MAMLRLSettings(), torch.Generator().manual_seed(0)
    )
    return policy, result


def test_same_seed_same_policy_bit_for_bit():
    (a, result), (b, _) = _tiny_training(2), _tiny_training(2)
    assert result.diverged_step is None and math.isfinite(result.last_finite["train/post_adapt_return"])
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_a_non_finite_policy_is_reported_as_diverged_not_raised():
    _, result = _tiny_training(2, poison=True)
    assert result == MetaTrainResult(iterations=0, diverged_step=0, last_finite={}, history=History())


def test_divergence_keeps_the_last_finite_iterations_metrics_and_logs_nothing_after():
    """The policy turns non-finite after iteration 0 is logged: iteration 1 diverges, unlogged."""
    rows, calls = [], []

    def log(step, metrics):
        rows.append((step, dict(metrics)))
        _poison(policy)

    def progress(iterable, total=None, desc=None):
        calls.append((total, desc))
        return iterable

    torch.manual_seed(3)
    policy = GaussianMLPPolicy(2, 2, hidden=(8,))
    sampler = Sampler("metalearn/Navigation2D-v0", n_tasks=2, episodes=3)
    source = gymnasium.make("metalearn/Navigation2D-v0").unwrapped
    source.reset(seed=0)
    result = meta_train(
        policy,
        sampler,
        source.sample_tasks,
        3,
        MAMLRLSettings(),
        torch.Generator().manual_seed(0),
        log,
        progress,
    )
    assert calls == [(3, "meta-train")]
    assert [step for step, _ in rows] == [0]
    history = History([{"step": 0, **rows[0][1]}])
    assert result == MetaTrainResult(iterations=1, diverged_step=1, last_finite=rows[0][1], history=history)
    assert set(rows[0][1]) == {
        "loss/surrogate",
        "loss/kl",
        "loss/line_search_steps",
        "train/pre_adapt_return",
        "train/post_adapt_return",
    }


def test_outer_optimisers_by_name():
    assert list(OUTER) == ["trpo", "ppo"] and outer_factory("ppo") is OUTER["ppo"]
    with pytest.raises(ValueError, match="^outer='sgd' unknown; valid: trpo, ppo$"):
        outer_factory("sgd")
    with pytest.raises(ValueError, match="valid: trpo, ppo"):
        make_outer(GaussianMLPPolicy(2, 2, hidden=(4,)), MAMLRLSettings(outer="adam"))
