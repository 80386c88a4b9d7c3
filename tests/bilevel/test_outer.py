"""The outer loop on ridge against the grid minimiser, and on DARTS' toy against the fixed point
each method is known to settle at (Self-Tuning Networks, which step λ through a learned response:
tests/bilevel/test_stn.py and tests/playground/test_scenario_bilevel.py)."""

import math

import pytest

import bilevel


@pytest.fixture(scope="module")
def ridge():
    return bilevel.make_problem("ridge")


def _grid_minimiser(problem):
    grid, losses = bilevel.outer_loss_curve(problem)
    return grid[losses.argmin()].item()


def test_outer_descent_reaches_the_grid_minimiser_and_logs_every_step(ridge):
    rows = []
    result = bilevel.outer_descent(
        ridge,
        bilevel.make_method("ift_exact"),
        40,
        0.5,
        log=lambda step, metrics: rows.append((step, metrics)),
    )
    assert result.lambdas[-1].item() == pytest.approx(_grid_minimiser(ridge), abs=2e-3)
    assert result.diverged_step is None and len(result.lambdas) == 41 == len(result.losses)
    assert [step for step, _ in rows] == list(range(41))
    assert rows[0][1]["outer/lambda"] == 0.0 and "hypergrad/norm" not in rows[-1][1]
    first = -0.5 * ridge.hypergradient(ridge.lam0).item()  # one step by hand
    assert rows[1][1]["outer/lambda"] == pytest.approx(first, rel=1e-12)
    assert rows[0][1]["outer/val_loss"] == pytest.approx(ridge.outer_loss(ridge.lam0).item(), rel=1e-15)
    assert result.history.rows == [{"step": step, **metrics} for step, metrics in rows]
    assert result.history["outer/val_loss"].values.tolist() == result.losses


def test_outer_descent_stops_at_divergence(ridge):
    result = bilevel.outer_descent(ridge, bilevel.make_method("ift_cg"), 50, 1e6)
    assert result.diverged_step is not None and result.diverged_step < 50
    assert not math.isfinite(result.losses[-1]) or not result.lambdas[-1].isfinite()


def test_vector_lambda_logs_its_summary():
    problem = bilevel.make_problem("hypercleaning", train=30)
    rows = []
    bilevel.outer_descent(
        problem, bilevel.make_method("ift_exact"), 2, 10.0, log=lambda step, metrics: rows.append(metrics)
    )
    assert {"outer/lambda_mean", "outer/lambda_min", "outer/lambda_max"} <= set(rows[1])
    assert rows[0]["outer/lambda_mean"] == 0.0


@pytest.mark.parametrize(
    "name,options,fixed_point",
    [
        ("first_order", {}, 2.0),
        ("one_step", {"xi": 0.1}, 2 / 1.2),
        ("one_step", {"xi": 0.5, "hvp": "exact"}, 1.0),
        ("one_step", {}, 2 / 1.5),  # ξ = the inner step size, 0.25
        ("ift_exact", {}, 1.0),
        ("ift_cg", {"iters": 1}, 1.0),
        ("unrolled", {"steps": 40}, 1.0),
    ],
)
@pytest.mark.parametrize("alternate", [0, 1])
def test_darts_toy_methods_settle_where_the_paper_says(name, options, fixed_point, alternate):
    """DARTS' Figure 2 problem from (α, w) = (2, −2): first order settles at α = 2, one step at
    2/(1 + 2ξ), the exact and converged methods at the optimum 1, whether λ steps at w*(α) or
    alternates with one inner step (the paper's scheme)."""
    problem = bilevel.make_problem("darts_toy")
    result = bilevel.outer_descent(
        problem, bilevel.make_method(name, **options), 300, 0.2, alternate=alternate
    )
    assert result.lambdas[-1].item() == pytest.approx(fixed_point, abs=1e-6)
    assert len(result.iterates) == (300 if alternate else 0)
    if alternate:
        assert result.iterates[0].item() == -2 - 0.5 * (-2 - 2)  # one step of size 1/4 from w = −2
        assert result.iterates[-1].item() == pytest.approx(fixed_point, abs=1e-5)  # w has caught up
