import math

import pytest
import torch

from metalearn.icl import (
    Prompts,
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


@pytest.mark.parametrize("yq, bound", [(1e-4, 1e-3), (5.2, 10.0)])
def test_the_gd_line_search_keeps_eta_s2_between_1e_3_and_10(yq, bound):
    """One prompt, N = d = 1, x = 2 (s̄² = 4), y = x_q = 1: ŷ = 2η, so η* = y_q/2. Outside
    [1e-3, 10]/s̄² (η* = 5e-5 below, 2.6 above) the search stops at the nearer end, bound/4."""
    one = torch.ones(1, 1, dtype=torch.float64)
    prompts = Prompts(2 * one[..., None], one, one, torch.tensor([yq], dtype=torch.float64), one)
    lr, loss = fit_gd(prompts)
    assert lr == pytest.approx(bound / 4, rel=1e-12)
    assert loss == pytest.approx((yq - 2 * bound / 4) ** 2, rel=1e-9)


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
    # a NaN loss counts as +inf: here the grid's first points (x < 0.5), which a NaN would win
    lr, value = line_search(lambda x: math.nan if x < 0.5 else (x - 1.0) ** 2 + 0.5, 0.01, 10.0)
    assert lr == pytest.approx(1.0, rel=1e-6) and value == pytest.approx(0.5, abs=1e-12)


GOLDEN = (math.sqrt(5) - 1) / 2


def recording(loss):
    """`loss`, and the list of the points it is evaluated at, in order."""
    calls = []

    def recorded(x):
        calls.append(x)
        return loss(x)

    return recorded, calls


LOG_GRID = [10 ** (-2 + i / 10) for i in range(41)]


@pytest.mark.parametrize(
    "loss, options, grid, best",
    [
        (lambda x: (x - 0.37) ** 2, {}, LOG_GRID, 16),
        (lambda x: x, {}, LOG_GRID, 0),
        (lambda x: -x, {}, LOG_GRID, 40),
        (lambda x: (x - 37.0) ** 2, {"log": False}, [0.01 + i * (100 - 0.01) / 40 for i in range(41)], 15),
    ],
)
def test_line_search_grids_41_points_then_golden_sections_the_best_ones_neighbours(loss, options, grid, best):
    """On [0.01, 100]: 41 points (float64; log-spaced 10^(−2 + i/10) by default, or evenly spaced),
    then golden section on [a, b] = the best point's neighbours (itself at an end), starting with
    b − g(b − a) and a + g(b − a). An increasing loss ends at lo, a decreasing one at hi."""
    assert min(range(41), key=lambda i: loss(grid[i])) == best
    recorded, calls = recording(loss)
    argmin, _ = line_search(recorded, 0.01, 100.0, **options)
    assert calls[:41] == pytest.approx(grid, rel=1e-14, abs=0)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, 40)]
    assert calls[41:43] == pytest.approx([b - GOLDEN * (b - a), a + GOLDEN * (b - a)], rel=1e-14, abs=0)
    if best in (0, 40):
        assert argmin == grid[best]


def test_line_search_narrows_the_bracket_to_relative_width_tol():
    """The minimiser 0.003 of (x − 0.003)² to within tol·x; with tol = 1 the bracket [0, 1] of a
    3-point grid on [0, 1] is already narrow enough: no golden step past the first pair."""
    argmin, value = line_search(lambda x: (x - 0.003) ** 2, 1e-4, 1.0, tol=1e-7)
    assert abs(argmin - 0.003) <= 1e-7 * 0.003 and value <= (1e-7 * 0.003) ** 2
    recorded, calls = recording(lambda x: (x - 0.3) ** 2)
    line_search(recorded, 0.0, 1.0, grid=3, tol=1.0, log=False)
    assert calls == pytest.approx([0.0, 0.5, 1.0, 1 - GOLDEN, GOLDEN], rel=1e-15, abs=0)


def test_line_search_breaks_ties_of_the_golden_pair_towards_hi():
    """Grid 0..4, best point 2, bracket [1, 3] with a flat dip on each side of 2 (|x − 2| in
    [0.3, 0.9]) that the first pair 2 ∓ 0.236 misses: their tie keeps the upper part, and every
    tie inside the dip again, so the search ends at the dip's upper edge 2.9."""

    def loss(x):
        if x == 2:
            return 0.5
        return 0.0 if 0.3 <= abs(x - 2) <= 0.9 else 1.0

    argmin, value = line_search(loss, 0.0, 4.0, grid=5, log=False)
    assert abs(argmin - 2.9) <= 1e-6 and value == 0.0


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


def test_gd_plus_plus_on_a_one_point_context_by_hand():
    """N = d = 1: step one gives r = y(1 − ηx²), r_q = −ηx_q xy and scales x, x_q by 1 − γx²; step
    two adds −ηx_q x(1 − γx²)² y(1 − ηx²), so ŷ = ηx x_q y [1 + (1 − γx²)²(1 − ηx²)]. At x = 2,
    y = 3, x_q = 1/2, η = 0.1, γ = 0.05: 0.3·(1 + 0.8²·0.6) = 0.4152."""
    xs = torch.tensor([[[2.0]], [[-1.0]]], dtype=torch.float64)
    ys = torch.tensor([[3.0], [0.5]], dtype=torch.float64)
    xq = torch.tensor([[0.5], [4.0]], dtype=torch.float64)
    expected = torch.tensor([0.3 * (1 + 0.8**2 * 0.6), -0.2 * (1 + 0.95**2 * 0.9)], dtype=torch.float64)
    torch.testing.assert_close(gd_plus_plus(xs, ys, xq, 0.1, 0.05, 2), expected, rtol=1e-15, atol=0)


def test_fitted_gd_plus_plus_beats_gd_with_two_steps():
    tasks = _tasks(512, seed=4)
    _, gd_loss = fit_gd(tasks, 2)
    lr, gamma, loss = fit_gd_plus_plus(tasks, 2)
    assert gamma > 0 and loss < 0.9 * gd_loss
    assert loss == pytest.approx(mse(gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, lr, gamma, 2), tasks.yq))


def test_gd_plus_plus_fit_with_one_step_is_the_gd_fit():
    """γ first acts on the second step: with one, GD++ is GD, and its fit is GD's with γ = 0."""
    tasks = _tasks(64, dim=3, context=5, seed=5)
    lr, loss = fit_gd(tasks, 1)
    assert fit_gd_plus_plus(tasks, 1) == (lr, 0.0, loss)


@pytest.mark.parametrize("n, seed, steps", [(64, 1, 3), (32, 2, 10)])
def test_fitted_gd_plus_plus_is_a_stationary_point_of_the_tuning_mse(n, seed, steps):
    """d = 3, N = 5: the MSE's gradient in the fit's coordinates (u, v) = (log η s̄², γ N s̄²)
    vanishes at the returned (η, γ) (to 1e-4; at GD's γ = 0, |∂/∂v| > 0.4 on these prompts), and
    the returned MSE is GD++'s there. The second case takes L-BFGS 42 iterations."""
    tasks = _tasks(n, dim=3, context=5, seed=seed)
    lr, gamma, loss = fit_gd_plus_plus(tasks, steps)
    scale = float((tasks.xs**2).mean())
    uv = torch.tensor([math.log(lr * scale), gamma * 5 * scale], dtype=torch.float64, requires_grad=True)
    predictions = gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, uv[0].exp() / scale, uv[1] / (5 * scale), steps)
    (gradient,) = torch.autograd.grad(((predictions - tasks.yq) ** 2).mean(), uv)
    assert gradient.abs().max() < 1e-4
    assert gamma > 0 and loss < fit_gd(tasks, steps)[1]
    assert loss == mse(gd_plus_plus(tasks.xs, tasks.ys, tasks.xq, lr, gamma, steps), tasks.yq)


def test_gd_plus_plus_fit_gives_l_bfgs_100_iterations_unless_told(monkeypatch):
    budgets = []

    class Spy(torch.optim.LBFGS):
        def __init__(self, params, **options):
            budgets.append((options["max_iter"], options["line_search_fn"]))
            super().__init__(params, **options)

    monkeypatch.setattr(torch.optim, "LBFGS", Spy)
    tasks = _tasks(32, dim=3, context=5, seed=2)
    fit_gd_plus_plus(tasks, 2)
    fit_gd_plus_plus(tasks, 2, iterations=7)
    assert budgets == [(100, "strong_wolfe"), (7, "strong_wolfe")]


def test_gd_plus_plus_fit_on_a_context_given_twice_halves_gamma():
    """Each context point twice: N → 2N doubles XᵀX and Xᵀr, so GD++ with (η, γ/2) on it is GD++
    with (η, γ) on the original. The fit's coordinates (log η s̄², γ N s̄²) do not move, so L-BFGS
    takes the same path: the same η and MSE, half the γ, to rounding."""
    tasks = _tasks(64, dim=3, context=5, seed=1)
    twice = tasks._replace(xs=tasks.xs.repeat(1, 2, 1), ys=tasks.ys.repeat(1, 2))
    lr, gamma, loss = fit_gd_plus_plus(tasks, 3)
    assert gamma > 0
    assert fit_gd_plus_plus(twice, 3) == pytest.approx((lr, gamma / 2, loss), rel=1e-12)


def test_a_gd_plus_plus_fit_no_better_than_gd_returns_the_gd_fit():
    """Eight steps on 16 prompts: L-BFGS's first line search runs γ off to NaN losses (ten
    iterations are plenty). Zero context targets: every prediction is 0 whatever (η, γ), a tie,
    where L-BFGS's η = e^(log η s̄²)/s̄² is not GD's to the last bit. Either way the fit is GD's."""
    diverging = _tasks(16, dim=3, context=5, seed=0)
    tied = _tasks(8, dim=3, context=5, seed=0)
    tied = tied._replace(ys=torch.zeros_like(tied.ys))
    for prompts, steps, iterations in ((diverging, 8, 10), (tied, 2, 100)):
        lr, loss = fit_gd(prompts, steps)
        assert fit_gd_plus_plus(prompts, steps, iterations) == (lr, 0.0, loss)


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
