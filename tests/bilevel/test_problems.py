"""The problems against their closed forms: best responses, expected losses, the short-horizon
bias, the hyper-cleaning data, and the registry's errors."""

import math

import pytest
import torch

import bilevel
from bilevel.hypercleaning import hypercleaning
from bilevel.lr_horizon import lr_horizon

PROBLEM_NAMES = list(bilevel.PROBLEMS)


def _random_point(problem, seed):
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(problem.w0.shape, generator=generator, dtype=torch.float64)
    lam = problem.lam0 + 0.5 * torch.randn(problem.lam0.shape, generator=generator, dtype=torch.float64)
    return w, lam


@pytest.mark.parametrize("name", PROBLEM_NAMES)
def test_closed_form_train_gradient_is_autograd_of_train_loss(name):
    problem = bilevel.make_problem(name)
    w, lam = _random_point(problem, 1)
    expected = torch.func.grad(problem.train_loss)(w, lam)
    torch.testing.assert_close(problem.train_grad(w, lam), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["ridge", "hypercleaning"])
def test_inner_solution_is_the_minimiser(name):
    problem = bilevel.make_problem(name)
    _, lam = _random_point(problem, 2)
    w = problem.inner_solution(lam)
    assert problem.train_grad(w, lam).norm() < 1e-12 * max(1.0, problem.train_grad(problem.w0, lam).norm())


def test_ridge_closed_forms_against_a_direct_solve_and_differences():
    problem = bilevel.make_problem("ridge")
    lam = torch.tensor(0.7, dtype=torch.float64)
    x, y = problem.x_train, problem.y_train
    w = torch.linalg.lstsq(
        torch.cat([x, math.exp(0.35) * torch.eye(x.shape[1], dtype=x.dtype)]),
        torch.cat([y, torch.zeros(x.shape[1], dtype=y.dtype)]),
    ).solution
    torch.testing.assert_close(problem.inner_solution(lam), w, rtol=1e-12, atol=0)
    eps = 1e-5
    slope = (problem.inner_solution(lam + eps) - problem.inner_solution(lam - eps)) / (2 * eps)
    torch.testing.assert_close(problem.best_response_slope(lam), slope, rtol=1e-8, atol=0)
    difference = (problem.outer_loss(lam + eps) - problem.outer_loss(lam - eps)) / (2 * eps)
    assert problem.hypergradient(lam).item() == pytest.approx(difference.item(), rel=1e-8)


def test_ridge_validation_minimum_is_interior_and_sharp():
    problem = bilevel.make_problem("ridge")
    grid, losses = bilevel.outer_loss_curve(problem)
    best = losses.argmin().item()
    assert 0.2 * len(grid) < best < 0.8 * len(grid)
    assert grid[best].item() == pytest.approx(2.9206, abs=1e-3)  # seed 0; λ* near 2 log(noise)
    assert losses[0] > 2 * losses[best] and losses[-1] > 1.05 * losses[best]


def test_lr_horizon_closed_form_is_the_moment_recursion():
    problem = lr_horizon(horizon=37)
    lam = torch.tensor(math.log(0.3), dtype=torch.float64)
    alpha, h, sigma = 0.3, problem.curvature, problem.noise
    mean, variance = problem.start.clone(), torch.zeros_like(problem.start)
    for _ in range(37):
        mean, variance = (1 - alpha * h) * mean, (1 - alpha * h) ** 2 * variance + (alpha * h * sigma) ** 2
    expected = 0.5 * (h * (mean**2 + variance)).sum()
    assert problem.outer_loss(lam).item() == pytest.approx(expected.item(), rel=1e-13)


def test_lr_horizon_chains_estimate_the_expected_loss():
    """Mean loss of 4000 sampled SGD runs within 4 standard errors of the closed form."""
    problem = lr_horizon(horizon=30, chains=4000)
    lam = torch.tensor(math.log(0.5), dtype=torch.float64)
    w = bilevel.unroll(problem, lam, 30).reshape(4000, -1)
    per_chain = 0.5 * (problem.curvature * w**2).sum(dim=1)
    error = per_chain.std().item() / math.sqrt(4000)
    assert abs(per_chain.mean().item() - problem.outer_loss(lam).item()) < 4 * error
    assert problem.val_loss(w.reshape(-1), lam).item() == pytest.approx(per_chain.mean().item(), rel=1e-13)


def test_greedy_learning_rate_is_smaller_than_the_long_horizon_one():
    """Wu et al. 2018: tuned for one step the rate comes out less than half the 100-step one."""
    optimum = {}
    for horizon in (1, 100):
        grid, losses = bilevel.outer_loss_curve(lr_horizon(horizon=horizon), points=4001)
        optimum[horizon] = math.exp(grid[losses.argmin()].item())
    assert optimum[1] == pytest.approx(0.1805, abs=2e-3)
    assert optimum[100] == pytest.approx(0.4248, abs=2e-3)
    assert optimum[100] > 2 * optimum[1]


def test_hypercleaning_data():
    problem = bilevel.make_problem("hypercleaning", train=100, flip_fraction=0.25)
    assert problem.flipped.sum().item() == 25
    assert problem.x_train.shape == (100, 11) and (problem.x_train[:, -1] == 1).all()
    w, lam = _random_point(problem, 3)
    torch.testing.assert_close(
        problem.train_hessian(w, lam), torch.func.hessian(problem.train_loss)(w, lam), rtol=1e-12, atol=1e-15
    )


def test_auc_counts_pairs_and_half_ties():
    scores = torch.tensor([0.9, 0.5, 0.5, 0.1])
    positive = torch.tensor([True, True, False, False])
    assert bilevel.auc(scores, positive) == pytest.approx((1 + 1 + 0.5 + 1) / 4)
    with pytest.raises(ValueError, match="both classes"):
        bilevel.auc(scores, torch.ones(4, dtype=torch.bool))


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(
        ValueError, match="unknown problem 'lasso'; valid: ridge, lr_horizon, hypercleaning, darts_toy"
    ):
        bilevel.make_problem("lasso")
    with pytest.raises(ValueError, match="problem 'ridge' takes no option 'horizon'; valid: dim, train"):
        bilevel.make_problem("ridge", horizon=3)
    assert bilevel.make_problem("ridge", dim=5).x_train.shape == (30, 5)
    with pytest.raises(ValueError, match="flip_fraction=0.6 must lie in"):
        bilevel.make_problem("hypercleaning", flip_fraction=0.6)


def test_darts_toy_closed_forms():
    """F(α) = (α − 1)² and dF/dα = 2(α − 1): the values, and the exact hypergradient against the
    implicit function theorem and central differences."""
    problem = bilevel.make_problem("darts_toy")
    for alpha in (-0.5, 0.25, 2.0, 3.0):
        lam = torch.tensor(alpha, dtype=torch.float64)
        assert problem.outer_loss(lam).item() == pytest.approx((alpha - 1) ** 2, abs=1e-15)
        assert problem.hypergradient(lam).item() == 2 * (alpha - 1)
        for name in ("ift_exact", "finite_diff"):
            value = bilevel.make_method(name)(problem, lam).value.item()
            assert value == pytest.approx(2 * (alpha - 1), abs=1e-9)


def test_darts_toy_inner_step_sizes():
    """Up to 1/2, the inverse curvature of (w − α)², where one step lands on w* = α."""
    half = bilevel.make_problem("darts_toy", inner_lr=0.5)
    assert bilevel.unroll(half, half.lam0, 1).item() == half.lam0.item()
    for bad in (0.0, 0.6):
        with pytest.raises(ValueError) as raised:
            bilevel.make_problem("darts_toy", inner_lr=bad)
        assert str(raised.value) == f"darts_toy: inner_lr={bad}; valid: 0 < inner_lr <= 0.5"


def test_hypercleaning_refuses_a_regulariser_lost_in_rounding():
    """train <= dim leaves (1/n)XᵀDX singular: μ must survive float64's rounding of the data term's
    curvature (ε·¼λ_max(XᵀX/n)); 5e-324 did not, and Newton's solve failed on a singular matrix."""
    options = dict(dim=4, train=4, val=4, test=4)
    x = hypercleaning(**options).x_train
    curvature = 0.25 * torch.linalg.eigvalsh(x.T @ x / 4).max().item()
    assert hypercleaning(**options).curvature == curvature
    floor = float(f"{torch.finfo(torch.float64).eps * curvature:.3g}")
    with pytest.raises(
        ValueError, match=r"^hypercleaning: l2=5e-324 is lost in float64's rounding .*; valid: l2 >= "
    ):
        hypercleaning(**options, l2=5e-324)
    problem = hypercleaning(**options, l2=floor)
    assert (
        problem.inner_solution(problem.lam0).isfinite().all()
        and problem.hypergradient(problem.lam0).isfinite().all()
    )


def test_hypercleaning_refuses_a_flip_fraction_that_flips_nothing():
    with pytest.raises(
        ValueError, match=r"flips round\(0.004·100\) = 0 of the train=100 labels: nothing to clean"
    ):
        hypercleaning(train=100, flip_fraction=0.004)
    assert hypercleaning(train=100, flip_fraction=0.006).flipped.sum().item() == 1


def test_lr_horizon_starts_at_the_distance_in_float64():
    """The start was built in float32 first: 0.1 came out 0.10000000149, and a distance past
    float32's range failed to convert."""
    assert lr_horizon(dim=4, distance=0.1).start.tolist() == [0.0, 0.0, 0.1, 0.1]
    assert lr_horizon(dim=2, distance=1e300).start.tolist() == [0.0, 1e300]
