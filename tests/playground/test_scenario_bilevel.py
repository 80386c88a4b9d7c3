"""The `bilevel` scenario through the CLI entry: the numbers in its summary against the library's
closed forms and grid minimisers, its files, and bad input."""

import json
import math

import pytest

import bilevel
from playground.cli import main


def run_bilevel(tmp_path, *overrides):
    assert main(["run", "bilevel", *overrides, "--out", str(tmp_path / "r")]) == 0
    return json.loads((tmp_path / "r" / "summary.json").read_text())


def rows(tmp_path):
    return [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]


def test_ridge_reaches_the_grid_minimiser(tmp_path):
    summary = run_bilevel(tmp_path, "problem=ridge", "method=ift_cg", "compare=false", "plots=false")
    grid, losses = bilevel.outer_loss_curve(bilevel.make_problem("ridge"))
    best = grid[losses.argmin()].item()
    assert summary["reference/lambda"] == best
    assert summary["outer/lambda"] == pytest.approx(best, rel=1e-2)
    assert summary["outer/val_loss"] == pytest.approx(losses.min().item(), rel=1e-4)
    assert summary["hypergrad/rel_error"] <= 1e-8  # CG with dim(w) iterations
    assert summary["hypergrad/seconds"] > 0 and summary["steps_run"] == 40
    logged = rows(tmp_path)
    assert [r["step"] for r in logged] == list(range(41))
    assert {"outer/lambda", "outer/val_loss", "hypergrad/norm", "hypergrad/products"} <= set(logged[0])
    assert logged[-1]["outer/lambda"] == summary["outer/lambda"]


def test_every_method_is_compared_and_plotted(tmp_path):
    summary = run_bilevel(
        tmp_path, "problem=ridge", "method=truncated", "inner_steps=300", "k=5", "outer_steps=3"
    )
    table = json.loads((tmp_path / "r" / "hypergradients.json").read_text())
    assert list(dict.fromkeys(r["method"] for r in table)) == [m for m in bilevel.METHODS if m != "stn"]
    errors = {r["method"]: r["rel_error"] for r in table}
    assert errors["ift_exact"] <= 1e-10 and errors["finite_diff"] <= 1e-5
    cg = [r for r in table if r["method"] == "ift_cg"]
    assert cg[-1]["iters"] == 20 and cg[-1]["rel_error"] <= 1e-8 and cg[0]["products"] == 2
    truncated = [r for r in table if r["method"] == "truncated"]
    assert truncated[0]["last"] == 1 and truncated[0]["rel_error"] > truncated[-1]["rel_error"]
    assert summary["hypergrad/rel_error"] > 0.5  # 5 of 300 steps back-propagated: biased
    for name in ("hypergradient_cost", "outer_path"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


def test_lr_horizon_tuned_greedily_lands_on_the_greedy_rate(tmp_path):
    """inner_steps=1 descends the one-step loss: it reaches the greedy optimum, well below the
    horizon's, and F_T there is worse than at the horizon's optimum."""
    summary = run_bilevel(
        tmp_path,
        "problem=lr_horizon",
        "inner_steps=1",
        "chains=400",
        "compare=false",
        "plots=false",
        "outer_lr=20",
        "outer_steps=20",
    )
    assert summary["reference/greedy_lr"] == pytest.approx(0.1801, abs=1e-3)
    assert summary["reference/lr"] == pytest.approx(0.4248, abs=1e-3)
    assert summary["outer/lr"] == pytest.approx(summary["reference/greedy_lr"], rel=0.05)
    assert summary["outer/val_loss"] > 1.5 * summary["reference/val_loss"]


def test_lr_horizon_tuned_over_the_horizon(tmp_path):
    summary = run_bilevel(tmp_path, "problem=lr_horizon", "method=forward", "horizon=50", "compare=false")
    assert summary["hypergrad/rel_error"] < 0.05  # 100 sampled runs against the closed form
    assert summary["outer/lr"] > 2 * summary["reference/greedy_lr"]
    assert summary["outer/val_loss"] == pytest.approx(summary["reference/val_loss"], rel=0.02)
    assert (tmp_path / "r" / "outer_path.png").stat().st_size > 0


def test_hypercleaning_finds_the_flipped_labels(tmp_path):
    summary = run_bilevel(tmp_path, "problem=hypercleaning", "compare=false")
    assert summary["hypergrad/rel_error"] <= 1e-8
    assert summary["clean/auc"] > 0.9
    assert summary["clean/weight_mean_flipped"] < 0.5 * summary["clean/weight_mean_clean"]
    assert summary["test/accuracy"] > summary["test/accuracy_all_data"] + 0.1
    assert len(summary["outer/lambda"]) == 200
    assert {"outer/lambda_mean", "outer/val_loss"} <= set(rows(tmp_path)[0])
    assert (tmp_path / "r" / "outer_path.png").stat().st_size > 0


def test_stn_on_ridge_tracks_the_exact_best_response(tmp_path):
    """Self-Tuning Networks: λ within 1% of the grid minimiser; the learned dŵ/dλ against the
    exact dw*/dλ; its error against the closed-form optimum of STN's objective at its σ."""
    summary = run_bilevel(tmp_path, "problem=ridge", "method=stn", "compare=false")
    assert summary["outer/lambda_rel_error"] < 0.01
    assert summary["best_response/jacobian_cosine"] > 0.99
    # as far from w* as a fully trained STN with its σ is in closed form, up to Adam's noise
    assert 0.5 < summary["best_response/error"] / summary["reference/stn_error"] < 2
    assert summary["reference/stn_lambda"] == pytest.approx(summary["reference/lambda"], rel=1e-2)
    assert 0.01 < summary["best_response/sigma"] < 0.5  # from 0.5 toward sqrt(τ/uᵀ∇²L_val u) ≈ 0.03
    for name in ("best_response", "stn_bias", "outer_path"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


@pytest.mark.parametrize(
    "overrides,fixed_point",
    [
        (["method=first_order"], 2.0),
        (["xi=0.1", "hvp=exact"], 2 / 1.2),
        ([], 2 / 1.5),
        (["method=ift_cg"], 1.0),
    ],
)
def test_darts_toy_settles_at_each_methods_known_point(tmp_path, overrides, fixed_point):
    """DARTS' Figure 2 problem, alternating one inner step with one outer step from (α, w) = (2, −2)."""
    summary = run_bilevel(tmp_path, "problem=darts_toy", *overrides, "compare=false", "plots=false")
    assert summary["reference/method_lambda"] == pytest.approx(fixed_point, rel=1e-15)
    assert summary["outer/lambda"] == pytest.approx(fixed_point, abs=1e-6)
    assert summary["reference/lambda"] == 1.0  # the grid minimiser of F = (α − 1)², on the grid
    assert rows(tmp_path)[-2]["inner/distance"] < 1e-6  # w has caught up with w*(α) = α


def test_darts_toy_draws_every_methods_path(tmp_path):
    summary = run_bilevel(tmp_path, "problem=darts_toy", "outer_steps=30")
    table = json.loads((tmp_path / "r" / "hypergradients.json").read_text())
    assert {"first_order", "one_step"} <= {r["method"] for r in table}
    assert summary["steps_run"] == 30
    for name in ("hypergradient_cost", "outer_path", "method_paths"):
        assert (tmp_path / "r" / f"{name}.png").stat().st_size > 0


def test_a_diverging_outer_run_is_a_result(tmp_path):
    summary = run_bilevel(tmp_path, "problem=ridge", "outer_lr=1e6", "compare=false")
    assert summary["diverged"] is True and summary["diverged_step"] < 40
    assert math.isfinite(summary["outer/val_loss_start"])


def test_a_learning_rate_past_float64_is_a_diverged_result(tmp_path):
    """lr_horizon from distance 1e30: the first outer step throws λ far past log(float64's largest
    number); e^λ, the learning rate the summary reports, raised OverflowError in math.exp."""
    summary = run_bilevel(
        tmp_path,
        "problem=lr_horizon",
        "problem.distance=1e30",
        "outer_steps=2",
        "inner_steps=5",
        "compare=false",
    )
    assert summary["status"] == "diverged" and summary["diverged_step"] == 1
    assert (
        summary["outer/lambda"] > 710 and summary["outer/lr"] is None and "outer/lr" in summary["nonfinite"]
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (  # lost against the curvature, w's Hessian singular (train <= dim): Newton's solve raised
            ["problem=hypercleaning", "problem.l2=5e-324", "problem.dim=4", "problem.train=4"],
            "hypercleaning: l2=5e-324 is lost in float64's rounding of the data term's curvature",
        ),
        (  # no flipped label: the clean AUC raised on a single class
            ["problem=hypercleaning", "problem.flip_fraction=5e-324"],
            "hypercleaning: flip_fraction=5e-324 flips round(5e-324·200) = 0 of the train=200 labels",
        ),
        (
            ["problem=lasso"],
            "unknown problem 'lasso'; valid: ridge, lr_horizon, hypercleaning, darts_toy",
        ),
        (["method=adjoint"], "unknown method 'adjoint'; valid: unrolled, truncated, forward, ift_exact"),
        (["problem=hypercleaning", "method=stn"], "method=stn applies to problem=ridge only"),
        (["scale=0.5"], "method 'ift_cg' takes no option 'scale'; valid: method.iters, method.tol"),
        (["method=stn", "alternate=1"], "alternate=1 does not apply to method=stn"),
        (["method=ift_exact", "k=3"], "k=3 does not apply to method=ift_exact; it applies to: truncated"),
        (["problem=lr_horizon", "inner_steps=200"], "inner_steps=200 exceeds horizon=100"),
        (["method=truncated", "inner_steps=10", "k=20"], "k=20 exceeds inner_steps=10"),
        (["horizon=5"], "problem 'ridge' takes no option 'horizon'; valid: problem.dim, problem.train"),
        (["problem=hypercleaning", "flip_fraction=0.7"], "flip_fraction=0.7 must lie in (0, 0.5)"),
        (
            ["method=ift_cg", "xi=0.5"],
            "method 'ift_cg' takes no option 'xi'; valid: method.iters, method.tol",
        ),
        (["method=unrolled", "tol=0.01"], "method 'unrolled' takes no option 'tol'; valid: method.steps"),
        (["problem=lr_horizon", "alternate=1"], "alternate=1 does not apply to problem=lr_horizon"),
        (
            ["problem=darts_toy", "dim=3"],
            "problem 'darts_toy' takes no option 'dim'; valid: problem.alpha0, problem.w0, problem.inner_lr",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(overrides, message, tmp_path, capsys):
    assert main(["run", "bilevel", *overrides, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
