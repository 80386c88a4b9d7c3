"""The hypergradient methods against the closed forms (float64): the bars of the bilevel issue."""

import itertools
import time

import pytest
import torch

import bilevel


@pytest.fixture(scope="module")
def ridge():
    return bilevel.make_problem("ridge")


@pytest.fixture(scope="module")
def cleaning():
    return bilevel.make_problem("hypercleaning", train=60)


def _error(problem, name, lam=None, **options):
    lam = problem.lam0 if lam is None else lam
    return bilevel.relative_error(
        bilevel.make_method(name, **options)(problem, lam).value, problem.hypergradient(lam)
    )


def test_ift_exact_matches_the_ridge_closed_form(ridge):
    for lam in (-1.0, 0.0, 2.5):
        assert _error(ridge, "ift_exact", torch.tensor(lam, dtype=torch.float64)) <= 1e-10


def test_conjugate_gradient_with_dim_iterations(ridge, cleaning):
    assert _error(ridge, "ift_cg", iters=ridge.w0.numel()) <= 1e-8
    assert _error(cleaning, "ift_cg", iters=cleaning.w0.numel()) <= 1e-8
    assert _error(ridge, "ift_cg", iters=3) > 1e-3  # not a solve yet


def test_neumann_error_falls_at_the_spectral_rate(ridge):
    """|error_J| ∝ ρ^J, ρ = ρ(I − αH): the measured rate over J = 400..600 against the spectrum."""
    lam = ridge.lam0
    hessian = ridge.gram + lam.exp() * torch.eye(ridge.w0.numel(), dtype=torch.float64)
    rho = (1 - ridge.inner_lr * torch.linalg.eigvalsh(hessian)).abs().max().item()
    errors = [_error(ridge, "ift_neumann", terms=terms) for terms in (400, 600)]
    measured = (errors[1] / errors[0]) ** (1 / 200)
    assert (1 - measured) / (1 - rho) == pytest.approx(1, abs=0.01)
    assert errors[1] < 1e-4


def test_unrolled_error_vanishes_as_steps_grow(ridge):
    errors = [_error(ridge, "unrolled", steps=steps) for steps in (100, 200, 400, 800, 1600)]
    assert all(later < earlier / 5 for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-11


def test_truncation_biases_at_small_k(ridge):
    steps = 1600
    errors = [_error(ridge, "truncated", steps=steps, last=last) for last in (1, 10, 100, 1000)]
    assert errors[0] > 0.5 and errors[1] > 0.5  # biased, though w_T is converged
    assert all(later < earlier for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-8
    whole = bilevel.make_method("truncated", steps=300, last=300)(ridge, ridge.lam0).value
    assert whole.item() == bilevel.make_method("unrolled", steps=300)(ridge, ridge.lam0).value.item()


def test_truncation_from_a_converged_point_is_the_neumann_series(ridge):
    """On a quadratic, back-propagating K gradient steps from w_T = w* sums the first K terms of
    the Neumann series with α = η: two implementations, one number."""
    for last in (5, 50):
        truncated = bilevel.make_method("truncated", steps=1600, last=last)(ridge, ridge.lam0).value
        neumann = bilevel.make_method("ift_neumann", terms=last)(ridge, ridge.lam0).value
        assert bilevel.relative_error(truncated, neumann) < 1e-10


@pytest.mark.parametrize("name", ["ridge", "hypercleaning", "lr_horizon"])
def test_forward_mode_equals_reverse_mode(name):
    problem = bilevel.make_problem(name, **({"train": 40} if name == "hypercleaning" else {}))
    forward = bilevel.make_method("forward", steps=50)(problem, problem.lam0)
    reverse = bilevel.make_method("unrolled", steps=50)(problem, problem.lam0)
    assert forward.value.shape == problem.lam0.shape
    assert bilevel.relative_error(forward.value, reverse.value) < 1e-12
    assert forward.products == 50 * problem.lam0.numel() and reverse.products == 50


@pytest.mark.parametrize("name", ["ridge", "hypercleaning", "lr_horizon"])
def test_finite_differences(name):
    problem = bilevel.make_problem(name, **({"train": 40} if name == "hypercleaning" else {}))
    assert _error(problem, "finite_diff") <= 1e-5


def test_implicit_methods_on_hypercleaning_agree_with_long_unrolling(cleaning):
    assert _error(cleaning, "ift_exact") <= 1e-12
    assert _error(cleaning, "unrolled", steps=400) <= 1e-8


def test_implicit_hypergradient_of_a_learning_rate_is_zero():
    """On lr_horizon w* = 0 for every λ: the implicit methods return 0, unrolling does not."""
    problem = bilevel.make_problem("lr_horizon", chains=10)
    for name in ("ift_exact", "ift_cg", "ift_neumann"):
        assert bilevel.make_method(name)(problem, problem.lam0).value.item() == 0.0
    assert abs(_error(problem, "unrolled", steps=100)) < 0.05


def test_costs_are_counted(ridge):
    cg = bilevel.make_method("ift_cg", iters=5)(ridge, ridge.lam0)
    assert (cg.products, cg.inner_steps, cg.solves) == (6, 0, 1)  # 5 Hessian products and ∂²_{λw}
    neumann = bilevel.make_method("ift_neumann", terms=7)(ridge, ridge.lam0)
    assert neumann.products == 7
    truncated = bilevel.make_method("truncated", steps=30, last=4)(ridge, ridge.lam0)
    assert (truncated.inner_steps, truncated.products) == (30, 4)
    assert bilevel.make_method("finite_diff")(ridge, ridge.lam0).solves == 2
    assert cg.seconds > 0


def test_make_method_errors():
    with pytest.raises(ValueError, match="unknown method 'adjoint'; valid: unrolled, truncated, forward"):
        bilevel.make_method("adjoint")
    with pytest.raises(ValueError, match="method 'ift_cg' takes no option 'terms'; valid: iters, tol"):
        bilevel.make_method("ift_cg", terms=3)
    with pytest.raises(ValueError, match="truncated: last=20 exceeds steps=10"):
        bilevel.make_method("truncated", steps=10, last=20)


_ALL_PROBLEMS = {"ridge": {}, "hypercleaning": {"train": 40}, "lr_horizon": {"chains": 10}, "darts_toy": {}}


@pytest.mark.parametrize("name", list(_ALL_PROBLEMS))
def test_darts_finite_difference_product_matches_autograd(name):
    """DARTS' central difference ε = 0.01/‖v‖ against the exact mixed product, at w* and a random
    v and at the v one_step uses (∇_wL_val after the virtual step): relative error < 1e-4."""
    problem = bilevel.make_problem(name, **_ALL_PROBLEMS.get(name, {}))
    lam, w = problem.lam0, problem.inner_solution(problem.lam0)
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = bilevel.mixed_product(problem, w, lam, v)
    assert (
        bilevel.relative_error(bilevel.mixed_product(problem, w, lam, v, finite_difference=True), exact)
        < 1e-4
    )
    fd, autograd = (bilevel.make_method("one_step", hvp=hvp)(problem, lam) for hvp in ("fd", "exact"))
    assert bilevel.relative_error(fd.value, autograd.value) < 1e-4
    assert (fd.products, autograd.products, fd.inner_steps) == (2, 1, 1)


def test_darts_approximations_on_the_toy_by_hand():
    """L_train = (w − α)², L_val = αw − 2α + 1 at (α, w) = (2, −2): first order w − 2 = −4; one step
    w′ = w − 2ξ(w − α), value w′ − 2 + 2ξα."""
    problem = bilevel.make_problem("darts_toy")
    lam, w = problem.lam0, problem.w0
    assert bilevel.make_method("first_order")(problem, lam, w=w).value.item() == -4.0
    for xi in (0.1, 0.25, 0.5):
        virtual = -2 - 2 * xi * (-2 - 2)
        expected = virtual - 2 + 2 * xi * 2
        for hvp in ("fd", "exact"):
            value = bilevel.make_method("one_step", xi=xi, hvp=hvp)(problem, lam, w=w).value.item()
            assert value == pytest.approx(expected, rel=1e-12)
    default = bilevel.make_method("one_step")(problem, lam, w=w).value.item()
    assert default == pytest.approx(-2 - 0.5 * (-4) - 2 + 0.5 * 2, rel=1e-12)  # ξ = inner_lr = 0.25


def test_one_step_with_xi_zero_is_first_order(ridge):
    w = bilevel.unroll(ridge, ridge.lam0, 5)
    first = bilevel.make_method("first_order")(ridge, ridge.lam0, w=w).value
    assert (
        bilevel.make_method("one_step", xi=0.0, hvp="exact")(ridge, ridge.lam0, w=w).value.item()
        == first.item()
    )
    exact = torch.func.grad(ridge.val_loss, argnums=1)(w, ridge.lam0)  # L_val has no λ: zero
    assert first.item() == exact.item() == 0.0


def test_methods_work_from_a_given_inner_iterate(ridge):
    """IFT at a given w equals IFT at its own solve when w = w* (and solves nothing); unrolling K
    steps from w_T equals truncation through the last K of T + K steps."""
    w_star = ridge.inner_solution(ridge.lam0)
    own, given = (bilevel.make_method("ift_exact")(ridge, ridge.lam0, **kw) for kw in ({}, {"w": w_star}))
    assert given.value.item() == own.value.item() and (own.solves, given.solves) == (1, 0)
    w_t = bilevel.unroll(ridge, ridge.lam0, 300)
    from_w = bilevel.make_method("unrolled", steps=20)(ridge, ridge.lam0, w=w_t).value
    truncated = bilevel.make_method("truncated", steps=320, last=20)(ridge, ridge.lam0).value
    assert from_w.item() == truncated.item()
    far = bilevel.make_method("ift_exact")(ridge, ridge.lam0, w=ridge.w0)  # IFT at w₀ ≠ w*: not dF/dλ
    assert bilevel.relative_error(far.value, ridge.hypergradient(ridge.lam0)) > 0.1


def test_cg_tolerance_takes_fewer_products(ridge):
    loose = bilevel.make_method("ift_cg", iters=20, tol=1e-2)(ridge, ridge.lam0)
    full = bilevel.make_method("ift_cg", iters=20)(ridge, ridge.lam0)
    assert loose.products < full.products == 21
    assert bilevel.relative_error(loose.value, ridge.hypergradient(ridge.lam0)) < 0.05
    with pytest.raises(ValueError, match=r"^ift_cg: tol=-1: .*; valid: 0 <= tol < 1$"):
        bilevel.make_method("ift_cg", tol=-1)
    with pytest.raises(ValueError, match=r"^ift_cg: tol=1.7e\+308: a relative residual >= 1 is met by q = 0"):
        bilevel.make_method("ift_cg", tol=1.7e308)  # q = 0 at once; its square overflowed in CG
    for tol in (1, 1.5):  # the bound itself and past it
        with pytest.raises(ValueError, match=rf"^ift_cg: tol={tol}: a relative residual >= 1"):
            bilevel.make_method("ift_cg", tol=tol)
    assert bilevel.make_method("ift_cg", tol=0.999)(ridge, ridge.lam0).products >= 1
    with pytest.raises(ValueError, match="one_step: hvp='adjoint'; valid: fd, exact"):
        bilevel.make_method("one_step", hvp="adjoint")


@pytest.mark.parametrize(
    "name,options,message",
    [
        ("unrolled", {"steps": 0}, "unrolled: steps=0 must be >= 1"),
        ("truncated", {"steps": 0}, "truncated: steps=0 must be >= 1"),
        ("truncated", {"last": 0}, "truncated: last=0 must be >= 1"),
        ("forward", {"steps": 0}, "forward: steps=0 must be >= 1"),
        ("ift_cg", {"iters": 0}, "ift_cg: iters=0 must be >= 1"),
        ("ift_neumann", {"terms": 0}, "ift_neumann: terms=0 must be >= 1"),
        ("ift_neumann", {"alpha": 0.0}, "ift_neumann: alpha=0.0 must be > 0"),
        ("finite_diff", {"eps": 0.0}, "finite_diff: eps=0.0 must be > 0"),
        ("one_step", {"xi": -0.5}, "one_step: xi=-0.5 must be >= 0"),
    ],
)
def test_each_budget_is_checked_with_the_methods_name(name, options, message):
    with pytest.raises(ValueError) as raised:
        bilevel.make_method(name, **options)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    "name,options,costs",
    [
        ("unrolled", {"steps": 7}, (7, 7, 0)),
        ("truncated", {"steps": 9, "last": 4}, (9, 4, 0)),
        ("forward", {"steps": 5}, (5, 5 * 30, 0)),  # one tangent per coordinate of λ
        ("ift_exact", {}, (0, 12, 1)),  # dim(w) = 11 products (10 weights and a bias) and the mixed one
        ("ift_cg", {"iters": 3}, (0, 4, 1)),
        ("ift_neumann", {"terms": 6}, (0, 6, 1)),  # 5 Hessian products and the mixed one
        ("finite_diff", {}, (0, 0, 60)),  # two inner solves per coordinate of λ
        ("first_order", {}, (0, 0, 1)),
        ("one_step", {}, (1, 2, 1)),
        ("one_step", {"hvp": "exact"}, (1, 1, 1)),
    ],
)
def test_costs_are_counted_per_method(name, options, costs):
    """(inner steps, products, solves) of each method on a problem with dim(w) = 11, dim(λ) = 30;
    given the inner iterate, the methods that would solve for it solve nothing."""
    problem = bilevel.make_problem("hypercleaning", train=30)
    result = bilevel.make_method(name, **options)(problem, problem.lam0)
    assert (result.inner_steps, result.products, result.solves) == costs
    given = bilevel.make_method(name, **options)(
        problem, problem.lam0, w=problem.inner_solution(problem.lam0)
    )
    expected_solves = costs[2] if name == "finite_diff" else 0
    assert (given.inner_steps, given.products, given.solves) == (*costs[:2], expected_solves)


def test_unrolling_methods_start_from_the_given_iterate(ridge):
    """Forward mode from w equals reverse mode from w, and truncation from w equals unrolling the
    last K steps from where T − K steps from w end; neither equals the same from w₀."""
    w = bilevel.unroll(ridge, ridge.lam0, 40)
    reverse = bilevel.make_method("unrolled", steps=25)(ridge, ridge.lam0, w=w).value
    forward = bilevel.make_method("forward", steps=25)(ridge, ridge.lam0, w=w).value
    assert bilevel.relative_error(forward, reverse) < 1e-12
    from_w0 = bilevel.make_method("forward", steps=25)(ridge, ridge.lam0).value
    assert bilevel.relative_error(from_w0, reverse) > 1e-3
    truncated = bilevel.make_method("truncated", steps=25, last=5)(ridge, ridge.lam0, w=w).value
    last = bilevel.make_method("unrolled", steps=5)(
        ridge, ridge.lam0, w=bilevel.unroll(ridge, ridge.lam0, 20, w)
    ).value
    assert truncated.item() == last.item()


def test_truncation_replays_the_last_steps_of_an_indexed_optimiser():
    """On lr_horizon the t-th inner step draws the t-th noise: truncating all T steps is unrolling
    them, and truncating the last K differs from unrolling K steps from w₀ (steps 0..K−1)."""
    problem = bilevel.make_problem("lr_horizon", chains=10, horizon=30)
    whole = bilevel.make_method("truncated", steps=30, last=30)(problem, problem.lam0).value
    assert whole.item() == bilevel.make_method("unrolled", steps=30)(problem, problem.lam0).value.item()
    held = bilevel.unroll(problem, problem.lam0, 20)
    last = torch.func.grad(
        lambda lam: problem.val_loss(bilevel.unroll(problem, lam, 10, held, first=20), lam)
    )(problem.lam0)
    truncated = bilevel.make_method("truncated", steps=30, last=10)(problem, problem.lam0).value
    assert truncated.item() == last.item()


def test_neumann_takes_the_given_step_size(ridge):
    """One term of the series is α∇_wL_val: the hypergradient is −α ∂²_{λw}L_train ∇_wL_val."""
    w = ridge.inner_solution(ridge.lam0)
    val_w = torch.func.grad(ridge.val_loss)(w, ridge.lam0)
    alpha = 0.3 * ridge.inner_lr
    one_term = bilevel.make_method("ift_neumann", terms=1, alpha=alpha)(ridge, ridge.lam0).value
    expected = -alpha * bilevel.mixed_product(ridge, w, ridge.lam0, val_w)
    assert bilevel.relative_error(one_term, expected) < 1e-14


def test_the_finite_difference_product_is_an_approximation(cleaning):
    """On a loss that is not quadratic in w, DARTS' central difference differs from autograd's
    product (by O(ε²)), unlike on ridge; a zero vector gives exactly zero without dividing by 0."""
    lam, w = cleaning.lam0, cleaning.inner_solution(cleaning.lam0)
    fd, exact = (bilevel.make_method("one_step", hvp=hvp)(cleaning, lam).value for hvp in ("fd", "exact"))
    assert 1e-13 < bilevel.relative_error(fd, exact) < 1e-4
    zero = bilevel.mixed_product(cleaning, w, lam, torch.zeros_like(w), finite_difference=True)
    assert torch.equal(zero, torch.zeros_like(lam))


@pytest.mark.parametrize(
    "name,costs",
    [
        ("unrolled", (200, 200)),
        ("truncated", (200, 10)),
        ("forward", (200, 200)),
        ("ift_cg", (0, 21)),
        ("ift_neumann", (0, 200)),
    ],
)
def test_default_budgets(name, costs):
    """The budgets a method takes when none is given (the CLI's defaults come from elsewhere), read
    off its counted costs on the toy, whose one weight makes every step cheap; CG on ridge's 20."""
    problem = bilevel.make_problem("ridge" if name == "ift_cg" else "darts_toy")
    result = bilevel.make_method(name)(problem, problem.lam0)
    assert (result.inner_steps, result.products) == costs


def test_one_step_assembles_its_product_as_asked(cleaning):
    """one_step = ∂_λL_val(w′) − ξ·(mixed product at w with ∇_{w′}L_val), the product by central
    differences for hvp="fd" and by autograd for "exact", each equal to its own assembly."""
    lam, w = cleaning.lam0, cleaning.inner_solution(cleaning.lam0)
    xi = cleaning.inner_lr
    virtual = w - xi * cleaning.train_grad(w, lam)
    val_w, val_lam = torch.func.grad(cleaning.val_loss, argnums=(0, 1))(virtual, lam)
    for hvp, finite_difference in (("fd", True), ("exact", False)):
        value = bilevel.make_method("one_step", hvp=hvp)(cleaning, lam, w=w).value
        expected = val_lam - xi * bilevel.mixed_product(cleaning, w, lam, val_w, finite_difference)
        assert torch.equal(value, expected)


def test_relative_error_below_and_above_a_unit_reference():
    assert bilevel.relative_error(torch.tensor([0.5]), torch.tensor([0.25])) == 1.0
    assert bilevel.relative_error(torch.tensor([6.0, 8.0]), torch.tensor([3.0, 4.0])) == 1.0
    assert bilevel.relative_error(torch.tensor([0.5]), torch.tensor([0.0])) == 0.5  # absolute at zero


def test_seconds_are_the_wall_time_of_the_call(ridge):
    start = time.perf_counter()
    seconds = bilevel.make_method("ift_exact")(ridge, ridge.lam0).seconds
    assert 0 < seconds <= time.perf_counter() - start
