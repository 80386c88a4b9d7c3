import pytest
import torch

from metalearn.icl import X_DISTS, Prompts, TaskDistribution, input_distribution, input_moments, task_pool

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shapes_targets_and_range():
    tasks = TaskDistribution(dim=3, context=5, x_range=0.5).sample(64, torch.Generator().manual_seed(0))
    assert isinstance(tasks, Prompts)
    assert tasks.xs.shape == (64, 5, 3) and tasks.ys.shape == (64, 5)
    assert tasks.xq.shape == (64, 3) and tasks.yq.shape == (64,) and tasks.w.shape == (64, 3)
    assert torch.equal(tasks.ys, torch.einsum("bnd,bd->bn", tasks.xs, tasks.w))
    assert torch.equal(tasks.yq, (tasks.xq * tasks.w).sum(-1))
    assert tasks.xs.abs().max() <= 0.5 and tasks.xs.abs().max() > 0.45


def test_same_seed_same_tasks_and_noise():
    dist = TaskDistribution(dim=4, context=6, x_dist="gaussian", noise=0.1)
    a, b = (dist.sample(8, torch.Generator().manual_seed(3)) for _ in range(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    residual = a.ys - torch.einsum("bnd,bd->bn", a.xs, a.w)
    assert 0 < residual.abs().max() < 1


def test_pool_restricts_weights_and_context_override():
    pool = task_pool(3, 2, torch.Generator().manual_seed(0))
    tasks = TaskDistribution(dim=2, context=4, pool=pool).sample(
        50, torch.Generator().manual_seed(1), context=7
    )
    assert tasks.xs.shape == (50, 7, 2)
    assert all(any(torch.equal(w, p) for p in pool) for w in tasks.w)
    assert len({tuple(w.tolist()) for w in tasks.w}) == 3


def test_scaled_tasks():
    tasks = TaskDistribution(dim=2, context=3).sample(4, torch.Generator().manual_seed(0))
    scaled = tasks.scaled(x_scale=2.0, w_scale=3.0)
    assert torch.allclose(scaled.ys, torch.einsum("bnd,bd->bn", scaled.xs, scaled.w))
    assert torch.equal(scaled.xq, 2 * tasks.xq)


@pytest.mark.parametrize("kwargs", [dict(x_dist="cauchy"), dict(dim=0), dict(context=0)])
def test_bad_input(kwargs):
    with pytest.raises(ValueError):
        TaskDistribution(**{"dim": 2, "context": 2, **kwargs})


def test_input_distributions_by_name():
    assert list(X_DISTS) == ["uniform", "gaussian"]
    draw = lambda x_dist: TaskDistribution(3, 4, x_dist=x_dist, x_range=0.5).sample_inputs(
        2, 5, torch.Generator().manual_seed(0)
    )
    g = torch.Generator().manual_seed(0)
    assert torch.equal(draw("uniform"), (2 * torch.rand(2, 5, 3, generator=g) - 1) * 0.5)  # U(-a, a)
    assert torch.equal(draw("gaussian"), torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="^unknown x_dist 'cauchy'; valid: uniform, gaussian$"):
        input_distribution("cauchy")


@pytest.mark.parametrize("x_dist", ["uniform", "gaussian"])
def test_input_moments_match_the_samples(x_dist):
    """s² = E x² and m₄ = E x⁴ of one coordinate, against 2^18 draws (relative standard errors below 0.7%)."""
    x = input_distribution(x_dist).sample((2**18,), 0.5, torch.Generator().manual_seed(0)).double()
    s2, m4 = input_moments(x_dist, 0.5)
    assert float((x**2).mean()) == pytest.approx(s2, rel=0.01)
    assert float((x**4).mean()) == pytest.approx(m4, rel=0.03)


@pytest.mark.parametrize("x_range", [5e-324, 1e-300, 9e-16, 1.1e15, 1.75e308])
def test_an_input_range_float32_prompts_cannot_hold_is_refused(x_range):
    """x = 0 in float32 below, x² = inf above (fitting GD's step size divided by E x² = 0, took
    the log of inf): refused, where U(−a, a) applies; N(0, 1) has no range to refuse."""
    with pytest.raises(ValueError, match=r"float32 prompts hold x².*; valid: 1e-15 <= x_range <= 1e\+15$"):
        TaskDistribution(2, 3, x_range=x_range)
    assert input_distribution("gaussian").scale(x_range) == 1.0
    TaskDistribution(2, 3, x_dist="gaussian", x_range=x_range)


@pytest.mark.parametrize("x_range", [1e-15, 1e15])
def test_the_extreme_input_ranges_give_finite_prompts(x_range):
    tasks = TaskDistribution(4, 6, x_range=x_range).sample(64, torch.Generator().manual_seed(0))
    assert all(t.isfinite().all() for t in tasks) and (tasks.xs**2).sum(1).min() > 0
    assert input_distribution("uniform").scale(x_range) == x_range
