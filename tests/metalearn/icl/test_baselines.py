import math

import pytest
import torch

from metalearn.icl import (
    TaskDistribution,
    fit_gd,
    fit_gd_plus_plus,
    gd,
    gd_plus_plus,
    gd_weights,
    line_search,
    mse,
    ols_weights,
    optimal_gd_lr,
    optimal_gd_mse,
    ridge_floor,
    ridge_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tasks(n, dim=10, context=10, seed=0, dtype=torch.float64, **kwargs):
    tasks = TaskDistribution(dim, context, **kwargs).sample(n, torch.Generator().manual_seed(seed))
    return type(tasks)(*(t.to(dtype) for t in tasks))


def test_one_gd_step_is_scaled_xty():
    tasks = _tasks(16)
    expected = (1.3 / 10) * torch.einsum("bnd,bn->bd", tasks.xs, tasks.ys)
    assert torch.allclose(gd_weights(tasks.xs, tasks.ys, 1.3), expected, atol=1e-14)


def test_many_small_gd_steps_reach_least_squares():
    tasks = _tasks(8, dim=3, context=12)
    w = gd_weights(tasks.xs, tasks.ys, lr=0.5, steps=3000)
    assert torch.allclose(w, ols_weights(tasks.xs, tasks.ys), atol=1e-8)
    assert torch.allclose(w, tasks.w, atol=1e-8)  # noiseless, N > d


def test_closed_form_numbers():
    """REFERENCES.md: d = N = 10, a = 1 gives η* ≈ 1.515 and MSE ≈ 1.650; N(0, I) gives N/(N+d+1)."""
    assert optimal_gd_lr(10, 10) == pytest.approx(3 * 10 / (10 + 10 - 0.2), rel=1e-12)
    assert optimal_gd_lr(10, 10) == pytest.approx(1.515, abs=1e-3)
    assert optimal_gd_mse(10, 10) == pytest.approx(1.650, abs=1e-3)
    assert optimal_gd_lr(5, 20, x_range=0.5) == pytest.approx(3 * 20 / (0.25 * 24.8), rel=1e-12)
    assert optimal_gd_lr(10, 10, x_dist="gaussian") == pytest.approx(10 / 21, rel=1e-12)


def test_line_search_is_exact_on_one_gd_step():
    """One step's loss is quadratic in η: the minimiser is Σ ŷ₁y / Σ ŷ₁² with ŷ₁ the η = 1 guess."""
    tasks = _tasks(2048, seed=1)
    guess = gd(1.0)(tasks.xs, tasks.ys, tasks.xq)
    exact = float((guess * tasks.yq).sum() / (guess**2).sum())
    lr, loss = fit_gd(tasks)
    assert lr == pytest.approx(exact, rel=1e-6)
    assert loss == pytest.approx(mse(exact * guess, tasks.yq), rel=1e-9)


@pytest.mark.parametrize("x_range", [1.0, 0.5])
def test_line_searched_gd_matches_closed_form(x_range):
    """η* = 3N/(a²(N+d−0.2)) and its MSE, up to the sampling error of 2^15 held-out tasks."""
    tasks = _tasks(2**15, seed=2, x_range=x_range)
    lr, loss = fit_gd(tasks)
    assert lr == pytest.approx(optimal_gd_lr(10, 10, x_range=x_range), rel=0.02)
    assert loss == pytest.approx(optimal_gd_mse(10, 10, x_range=x_range), rel=0.02)


def test_line_search_finds_a_polynomial_minimum():
    lr, value = line_search(lambda x: (x - 0.37) ** 2 * (x + 5) + 1.0, 1e-3, 10.0)
    assert lr == pytest.approx(0.37, rel=1e-6) and value == pytest.approx(1.0, abs=1e-12)
    lr, _ = line_search(lambda x: math.inf if x > 2 else (x - 0.1) ** 2, 0.0, 3.0, log=False)
    assert lr == pytest.approx(0.1, rel=1e-6)


def test_ridge_solves_normal_equations_and_tends_to_ols():
    tasks = _tasks(4, dim=3, context=5)
    w = ridge_weights(tasks.xs, tasks.ys, 0.7)
    gradient = tasks.xs.transpose(1, 2) @ (tasks.xs @ w.unsqueeze(-1) - tasks.ys.unsqueeze(-1))
    assert torch.allclose(gradient.squeeze(-1) + 0.7 * w, torch.zeros_like(w), atol=1e-12)
    assert torch.allclose(
        ridge_weights(tasks.xs, tasks.ys, 1e-10), ols_weights(tasks.xs, tasks.ys), atol=1e-8
    )


def test_ols_is_min_norm_when_underdetermined():
    tasks = _tasks(4, dim=6, context=3)
    w = ols_weights(tasks.xs, tasks.ys)
    assert torch.allclose(torch.einsum("bnd,bd->bn", tasks.xs, w), tasks.ys, atol=1e-12)
    row_space = (
        tasks.xs.transpose(1, 2)
        @ torch.linalg.lstsq(tasks.xs @ tasks.xs.transpose(1, 2), tasks.ys.unsqueeze(-1)).solution
    )
    assert torch.allclose(w, row_space.squeeze(-1), atol=1e-10)


def test_gd_plus_plus():
    tasks = _tasks(256, seed=3)
    gd2 = gd(1.2, steps=2)(tasks.xs, tasks.ys, tasks.xq)
    assert torch.allclose(gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, 1.2, 0.0, 2), gd2, atol=1e-13)
    # γ acts on the inputs before the second step: x ← (I − γXᵀX)x, hand-written here.
    gamma, n = 0.05, 10
    w1 = gd_weights(tasks.xs, tasks.ys, 1.2)
    r1 = tasks.ys - torch.einsum("bnd,bd->bn", tasks.xs, w1)
    gram = tasks.xs.transpose(1, 2) @ tasks.xs
    precondition = torch.eye(10, dtype=torch.float64) - gamma * gram  # (B, d, d)
    xs2, xq2 = tasks.xs @ precondition, (precondition @ tasks.xq.unsqueeze(-1)).squeeze(-1)
    pred = (w1 * tasks.xq).sum(-1) + (1.2 / n) * torch.einsum("bnd,bn,bd->b", xs2, r1, xq2)
    assert torch.allclose(gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, 1.2, gamma, 2), pred, atol=1e-12)


def test_fitted_gd_plus_plus_beats_gd_with_two_steps():
    tasks = _tasks(512, seed=4)
    _, gd_loss = fit_gd(tasks, 2)
    lr, gamma, loss = fit_gd_plus_plus(tasks, 2)
    assert gamma > 0 and loss < 0.9 * gd_loss
    assert loss == pytest.approx(mse(gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, lr, gamma, 2), tasks.yq))


@pytest.mark.parametrize(
    "dim, context, x_range", [(3, 5, 1.0), (30, 30, 1.0), (10, 10, 100.0), (20, 3, 1e-3)]
)
def test_ridge_at_its_float32_floor_solves_every_context_length(dim, context, x_range):
    """λ = ε·N·d·E x², float32's resolution of XᵀX: every context length 1..N solves, N < d (XᵀX
    singular) included, with |ŵ| of the order of |w| ~ N(0, 1); 5e-324 made that XᵀX + λI singular."""
    floor = ridge_floor(dim, context, x_range=x_range)
    assert floor == pytest.approx(torch.finfo(torch.float32).eps * context * dim * x_range**2 / 3, rel=1e-12)
    for n in range(1, context + 1):
        tasks = _tasks(256, dim, n, seed=n, dtype=torch.float32, x_range=x_range)
        assert ridge_weights(tasks.xs, tasks.ys, floor).abs().max() < 10


def test_the_ridge_floor_defaults_to_uniform_inputs_on_the_unit_interval():
    """E x² = 1/3 for x ~ U(−1, 1): the floor for d = 4, N = 6 is ε·6·4/3 = 8ε."""
    assert ridge_floor(4, 6) == 8 * torch.finfo(torch.float32).eps


def test_gd_plus_plus_whose_fit_runs_off_float64_falls_back_to_gd():
    """Eleven steps on 32 prompts: L-BFGS drives log η past log(float64's largest number), and
    math.exp raised OverflowError; the fit is then no better than GD's, which it returns."""
    prompts = TaskDistribution(3, 5).sample(32, torch.Generator().manual_seed(0))
    lr, loss = fit_gd(prompts, 11)
    assert fit_gd_plus_plus(prompts, 11) == (lr, 0.0, loss)
