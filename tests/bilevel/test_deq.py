"""Deep equilibrium models against closed forms: each forward solver reaches z* = (I − W)⁻¹(Ux + b),
each backward pass gives the closed-form gradient, and a nonlinear DEQ passes gradcheck."""

import math

import pytest
import torch

from bilevel import deq

DIM, INPUTS, BATCH = 6, 3, 4


@pytest.fixture
def linear():
    generator = torch.Generator().manual_seed(0)
    cell = deq.LinearCell(DIM, INPUTS, radius=0.8, generator=generator)
    x = torch.randn(BATCH, INPUTS, generator=generator, dtype=torch.float64)
    target = torch.randn(BATCH, DIM, generator=generator, dtype=torch.float64)
    return cell, x, target


def zeros():
    return torch.zeros(BATCH, DIM, dtype=torch.float64)


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", list(deq.FORWARD_SOLVERS))
def test_each_solver_reaches_the_closed_form(linear, name):
    cell, x, _ = linear
    result = deq.FORWARD_SOLVERS[name](tol=1e-13, max_iter=500)(lambda z: cell(z, x), zeros())
    assert result.converged and result.residual <= 1e-13
    assert relative(result.z, cell.fixed_point(x)) < 1e-11
    assert result.nfe == len(result.trace) and result.trace[-1] == result.residual
    assert result.residual == pytest.approx(deq.relative_residual(cell(result.z, x), result.z))


def test_broyden_and_full_memory_anderson_terminate_on_a_linear_map(linear):
    """On an affine map Broyden's good method needs at most 2d steps (Gay 1979), and Anderson
    with memory >= d is GMRES in disguise (Walker & Ni 2011): d + 1 steps, one evaluation more."""
    cell, x, _ = linear
    f = lambda z: cell(z, x)
    broyden = deq.broyden(tol=1e-13, max_iter=100)(f, zeros())
    anderson = deq.anderson(tol=1e-13, max_iter=100, memory=DIM + 2, lam=0.0)(f, zeros())
    fixed_point = deq.fixed_point_iteration(tol=1e-13, max_iter=500)(f, zeros())
    assert broyden.converged and broyden.nfe <= 2 * DIM + 1
    assert anderson.converged and anderson.nfe <= DIM + 3
    assert fixed_point.nfe > 5 * anderson.nfe  # ρ(W) = 0.8: about log(1e-13)/log(0.8) steps


def test_a_solve_that_hits_its_cap_says_so(linear):
    cell, x, _ = linear
    for name, make in deq.FORWARD_SOLVERS.items():
        result = make(tol=1e-13, max_iter=3)(lambda z: cell(z, x), zeros())
        assert not result.converged and result.nfe == 3 and result.residual > 1e-13, name
        assert result.residual == min(result.trace)


def test_a_non_finite_residual_ends_the_solve():
    result = deq.fixed_point_iteration(tol=1e-8, max_iter=100)(lambda z: z * z + 2, torch.ones(3))
    assert not result.converged and not math.isfinite(result.residual)
    assert result.nfe < 20 and not math.isfinite(result.trace[-1])


def test_anderson_keeps_its_speed_at_tight_tolerances(linear):
    """λ relative to GGᵀ: the regularised solve stays within twice the unregularised one's
    evaluations at 1e-13, where an absolute λ = 1e-4 stalls near ‖G‖² ≈ λ."""
    cell, x, _ = linear
    f = lambda z: cell(z, x)
    plain = deq.anderson(tol=1e-13, max_iter=300, lam=0.0)(f, zeros())
    regularised = deq.anderson(tol=1e-13, max_iter=300)(f, zeros())
    assert regularised.converged and regularised.nfe <= 2 * plain.nfe


BACKWARDS = {
    "ift_exact": lambda: deq.ift("exact"),
    "ift_cg": lambda: deq.ift("cg", iters=100, tol=1e-14),
    "ift_neumann": lambda: deq.ift("neumann", iters=200),
    "phantom_tau1": lambda: deq.phantom(steps=200, damping=1.0),
    "unrolled": deq.unrolled,
}


@pytest.mark.parametrize("backward", list(BACKWARDS))
@pytest.mark.parametrize("solver", list(deq.FORWARD_SOLVERS))
def test_each_backward_gives_the_closed_form_gradient(linear, backward, solver):
    cell, x, target = linear
    solve = deq.FORWARD_SOLVERS[solver](tol=1e-14, max_iter=400)
    z, _ = deq.equilibrium(cell, x, zeros(), solve, BACKWARDS[backward]())
    (0.5 * (z - target).pow(2).sum()).backward()
    exact = cell.fixed_point_gradient(x, cell.fixed_point(x) - target)
    for name, parameter in cell.named_parameters():
        assert relative(parameter.grad, exact[name]) < 1e-9, name


def test_phantom_with_tau_one_is_a_truncated_neumann_series(linear):
    """For an affine f, k undamped phantom steps give dL/db = Σ_{j<k} (Wᵀ)^j g exactly: the IFT
    gradient with a k-term Neumann adjoint."""
    cell, x, target = linear
    solve = deq.anderson(tol=1e-14, max_iter=200)
    grads = {}
    for name, backward in (("phantom", deq.phantom(4, 1.0)), ("neumann", deq.ift("neumann", iters=4))):
        cell.zero_grad()
        z, _ = deq.equilibrium(cell, x, zeros(), solve, backward)
        (0.5 * (z - target).pow(2).sum()).backward()
        grads[name] = cell.b.grad.clone()
    assert relative(grads["phantom"], grads["neumann"]) < 1e-12
    exact = cell.fixed_point_gradient(x, cell.fixed_point(x) - target)["b"]
    assert relative(grads["phantom"], exact) > 1e-2  # 4 terms with ρ(W) = 0.8: biased


def test_gradient_with_respect_to_the_input(linear):
    cell, x, target = linear
    x = x.clone().requires_grad_()
    z, _ = deq.equilibrium(cell, x, zeros(), deq.broyden(1e-14, 100), deq.ift("exact"))
    (0.5 * (z - target).pow(2).sum()).backward()
    eye = torch.eye(DIM, dtype=torch.float64)
    u = torch.linalg.solve((eye - cell.W).T, (cell.fixed_point(x) - target).T).T
    assert relative(x.grad, u @ cell.U.detach()) < 1e-10


def test_gradcheck_of_a_nonlinear_deq():
    """f(z, x) = tanh(Wz + Ux + b), IFT backward with the exact adjoint, float64 gradcheck in W, U, b, x."""
    generator = torch.Generator().manual_seed(1)
    draw = lambda *shape, s=1.0: s * torch.randn(*shape, generator=generator, dtype=torch.float64)
    W, U, b, x = draw(4, 4, s=0.3), draw(4, 2), draw(4), draw(3, 2)

    def fixed_point(W, U, b, x):
        cell = lambda z, x: torch.tanh(z @ W.T + x @ U.T + b)
        solve = deq.anderson(tol=1e-15, max_iter=200)
        return deq.equilibrium(cell, x, torch.zeros(3, 4, dtype=torch.float64), solve, deq.ift("exact")).z

    inputs = tuple(t.requires_grad_() for t in (W, U, b, x))
    assert torch.autograd.gradcheck(fixed_point, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_jacobian_penalty_estimates_the_frobenius_norm(linear):
    """E‖εᵀJ‖²/numel(z) = ‖W‖²_F / d for the linear cell, whose Jacobian is W at every example."""
    cell, x, _ = linear
    generator = torch.Generator().manual_seed(2)
    z = cell.fixed_point(x)
    draws = [deq.jacobian_penalty(cell, x, z, generator).item() for _ in range(2000)]
    assert sum(draws) / len(draws) == pytest.approx(cell.W.detach().pow(2).sum().item() / DIM, rel=0.05)
    penalty = deq.jacobian_penalty(cell, x, z, generator)
    (grad,) = torch.autograd.grad(penalty, cell.W)
    assert grad.norm() > 0  # differentiable in the parameters


def test_spectral_radius_of_the_linear_cell(linear):
    cell, x, _ = linear
    z = cell.fixed_point(x)
    exact = deq.spectral_radius(cell, x, z, method="eig")
    assert torch.allclose(exact, torch.full((BATCH,), 0.8, dtype=torch.float64), atol=1e-12)
    generator = torch.Generator().manual_seed(3)
    power = deq.spectral_radius(cell, x, z, method="power", iters=400, generator=generator)
    assert torch.allclose(power, exact, rtol=0.02)


def test_cosine():
    a = [torch.tensor([1.0, 0.0]), torch.tensor([1.0])]
    assert deq.cosine(a, [torch.tensor([1.0, 1.0]), torch.tensor([0.0])]) == pytest.approx(0.5)


def test_bad_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: exact, cg, neumann"):
        deq.ift("lu")
    with pytest.raises(ValueError, match="0 < damping <= 1"):
        deq.phantom(5, 0.0)
    with pytest.raises(ValueError, match="0 < damping <= 1"):
        deq.phantom(5, 1.5)
    with pytest.raises(ValueError, match="steps >= 1"):
        deq.phantom(0)
    for options in ({"iters": 0}, {"tol": -1.0}):
        with pytest.raises(ValueError, match="^ift: .*; valid: iters >= 1, tol >= 0$"):
            deq.ift("cg", **options)
    for options in ({"memory": 0}, {"lam": -1.0}, {"beta": 0.0}, {"beta": 1.5}):
        with pytest.raises(ValueError, match="valid: memory >= 1, lam >= 0, 0 < beta <= 1"):
            deq.anderson(**options)
    for make in deq.FORWARD_SOLVERS.values():
        with pytest.raises(
            ValueError, match=f"^{make.__name__}: tol=1, max_iter=0; valid: tol >= 0, max_iter >= 1"
        ):
            make(tol=1, max_iter=0)


def test_eigenvalues_of_a_non_finite_jacobian_are_nan():
    """A diverged example's Jacobian never reaches LAPACK's eigensolver (MKL's balancing crashed the
    process on an all-NaN float32 one): its eigenvalues are NaN, the other examples' exact."""
    x = torch.tensor([[1.0, 2.0, 3.0], [float("nan"), 1.0, 1.0]])
    values = deq.jacobian_eigenvalues(lambda z, x: z * x, x, torch.zeros(2, 3))  # J = diag(x)
    assert values.dtype == torch.complex64 and values[1].isnan().all()
    assert sorted(values[0].real.tolist()) == [1.0, 2.0, 3.0] and values[0].imag.tolist() == [0.0] * 3
    radius = deq.spectral_radius(lambda z, x: z * x.sum(-1, keepdim=True), x, torch.zeros(2, 3))
    assert radius[0].item() == 6.0 and radius[1].isnan()  # J = (Σx)·I: all NaN for the second


def test_anderson_without_regularisation_takes_the_minimum_norm_weights():
    """λ = 0 on a map of one dimension: the memory's residuals are dependent, Anderson's bordered
    system singular (torch.linalg.solve failed); the minimum-norm weights still reach cos's fixed
    point, the Dottie number 0.7390851."""
    result = deq.anderson(tol=1e-7, max_iter=40, lam=0.0)(torch.cos, torch.zeros(3, 1))
    assert result.converged and result.residual <= 1e-7
    torch.testing.assert_close(result.z, torch.full((3, 1), 0.7390851), rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", list(deq.FORWARD_SOLVERS))
def test_default_solvers_stop_at_tol_1e_6_or_after_50_evaluations(name):
    """tol = 1e-6: on cos the solve stops at the first residual <= 1e-6, the one before above it;
    max_iter = 50: on the translation z + 1, which has no fixed point, exactly 50 evaluations."""
    solve = deq.FORWARD_SOLVERS[name]()
    result = solve(torch.cos, torch.zeros(1, dtype=torch.float64))
    assert result.converged and result.trace[-2] > 1e-6 >= result.trace[-1]
    result = solve(lambda z: z + 1, torch.zeros(1, dtype=torch.float64))
    assert not result.converged and result.nfe == 50


def test_broyden_update_by_hand_in_one_dimension():
    """f(z) = z/2 + 1 from z₀ = 1: g₀ = 1/2, z₁ = z₀ + g₀ = 3/2, g₁ = 1/4; the secant update
    B₁ = −1 + (Δz − B₀Δg)(B₀ᵀΔz)/(Δzᵀ B₀ Δg) = −1 + (1/4)(−1/2)/(1/8) = −2 = (g′)⁻¹, so
    z₂ = z₁ − B₁g₁ = 2 = z*. Residuals |g|/|f|: 1/3, 1/7, 0."""
    result = deq.broyden(tol=0.0, max_iter=10)(lambda z: z / 2 + 1, torch.ones(1, dtype=torch.float64))
    assert result.trace == [1 / 3, 1 / 7, 0.0] and result.converged
    assert result.z.tolist() == [2.0]


def test_broyden_matches_the_dense_sherman_morrison_update():
    """On an affine map of two dimensions and two examples, four evaluations of the low-rank
    solver against the dense B_{k+1} = B_k + (Δz − B_kΔg) Δzᵀ B_k / (Δzᵀ B_kΔg) per example (B
    not symmetric after one update, so Bᵀ and B differ); the fifth lands on z* (Gay 1979: 2d steps)."""
    A = torch.tensor([[0.5, 0.25], [-0.5, 0.25]], dtype=torch.float64)
    b = torch.tensor([[1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    f = lambda z: z @ A.T + b
    z0 = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    zs = [z0]
    Bs = [-torch.eye(2, dtype=torch.float64) for _ in range(2)]
    for _ in range(3):
        z = zs[-1]
        g = f(z) - z
        step = torch.stack([-B @ gi for B, gi in zip(Bs, g)])
        dg = f(z + step) - (z + step) - g
        for i, (B, dz, dgi) in enumerate(zip(Bs, step, dg)):
            Bs[i] = B + torch.outer(dz - B @ dgi, dz @ B) / (dz @ B @ dgi)
        zs.append(z + step)
    residuals = [deq.relative_residual(f(z), z) for z in zs]
    result = deq.broyden(tol=0.0, max_iter=4)(f, z0)
    assert result.trace == pytest.approx(residuals, rel=1e-12)
    torch.testing.assert_close(result.z, zs[-1], rtol=1e-12, atol=0)
    z_star = torch.linalg.solve(torch.eye(2, dtype=torch.float64) - A, b.T).T
    solved = deq.broyden(tol=0.0, max_iter=5)(f, z0)
    assert solved.trace[-1] < 1e-15
    torch.testing.assert_close(solved.z, z_star, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "f, z0",
    [
        (lambda z: z + torch.tensor([1.0, 2.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)),
        (lambda z: z / 2 + 2.0**-255, torch.zeros(1, dtype=torch.float64)),
    ],
    ids=["translation", "at_sqrt_tiny"],
)
def test_broyden_keeps_b_where_the_secant_denominator_is_at_most_sqrt_tiny(f, z0):
    """|Δzᵀ B Δg| <= √tiny skips the update, so B stays −I and Broyden steps as fixed-point
    iteration: on a translation Δg = 0, and on z/2 + c from 0 with c = 2⁻²⁵⁵ the first denominator
    is c²/2 = 2⁻⁵¹¹ = √tiny exactly (above it, B₁ = −2 would land on z* = 2c at once)."""
    broyden = deq.broyden(tol=0.0, max_iter=6)(f, z0)
    fixed_point = deq.fixed_point_iteration(tol=0.0, max_iter=6)(f, z0)
    assert broyden.trace == fixed_point.trace and broyden.trace[-1] > 0
    assert torch.equal(broyden.z, fixed_point.z)


@pytest.mark.parametrize("options", [{}, {"steps": 1, "damping": 0.25}], ids=["defaults", "one_step"])
def test_phantom_gradient_is_a_damped_truncated_neumann_series(linear, options):
    """For an affine f, k phantom steps z ← τf(z) + (1 − τ)z from z* give
    dL/db = τ Σ_{j<k} (Mᵀ)^j g with M = τW + (1 − τ)I; defaults k = 5, τ = 1/2."""
    cell, x, target = linear
    solve = deq.anderson(tol=1e-14, max_iter=200)
    z, _ = deq.equilibrium(cell, x, zeros(), solve, deq.phantom(**options))
    (0.5 * (z - target).pow(2).sum()).backward()
    steps, damping = options.get("steps", 5), options.get("damping", 0.5)
    M = damping * cell.W.detach() + (1 - damping) * torch.eye(DIM, dtype=torch.float64)
    g = (cell.fixed_point(x) - target).detach().sum(0)
    exact = damping * sum(torch.linalg.matrix_power(M.T, j) @ g for j in range(steps))
    assert relative(cell.b.grad, exact) < 1e-12


def test_undamped_phantom_steps_are_f_itself():
    """τ = 1 applies f itself, not 1·f(z) + 0·z: from the last finite iterate of the diverging
    z ← z² + 2, two steps give f(f(z*)) = ∞, where 0·∞ would have made NaN."""
    cell = lambda z, x: z * z + x
    solve = deq.fixed_point_iteration(tol=1e-8, max_iter=100)
    z, result = deq.equilibrium(cell, torch.tensor([2.0]), torch.ones(1), solve, deq.phantom(2, 1.0))
    assert math.isfinite(result.z.item()) and z.item() == math.inf


def test_anderson_ridge_has_a_floor_of_sqrt_tiny():
    """λ = 0 on z/2 + c from 0: G₀ = c, G₁ = c/2, and α = argmin (α₀ + α₁/2)²c² + ε‖α‖², Σα = 1.
    At c = 1 the floor ε = √tiny = 2⁻⁵¹¹ is lost in rounding: α = (−1, 2), z₂ = 2c = z*. At
    c = 2⁻²⁵⁶, ε = 2c² and α = (7/17, 10/17): z₂ = (7/17)c + (10/17)(3/2)c = (22/17)c, whose
    residual is (6/17)/(28/17) = 3/14."""
    solve = deq.anderson(tol=0.0, max_iter=3, lam=0.0)
    for c, z2, residual in ((1.0, 2.0, 0.0), (2.0**-256, 22 / 17 * 2.0**-256, 3 / 14)):
        result = solve(lambda z: z / 2 + c, torch.zeros(1, dtype=torch.float64))
        assert result.z.item() == pytest.approx(z2, rel=1e-14, abs=0)
        assert result.trace == pytest.approx([1.0, 1 / 3, residual], rel=1e-14, abs=1e-15)


def test_anderson_solves_in_the_dtype_of_z_under_a_float64_default():
    """The ridge's identity takes z's dtype, not torch's default: float32 iterates under a float64
    default stay float32 and reach cos's fixed point."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = deq.anderson(tol=1e-6, max_iter=40)(torch.cos, torch.zeros(2, 1, dtype=torch.float32))
    finally:
        torch.set_default_dtype(default)
    assert result.converged and result.z.dtype == torch.float32
    torch.testing.assert_close(result.z, torch.full((2, 1), 0.7390851), rtol=1e-6, atol=0)


def test_anderson_with_memory_one_is_damped_fixed_point_iteration():
    """m = 1 leaves α = 1: z_{k+1} = β f(z_k) + (1 − β) z_k after the first, undamped, step. On
    f(z) = z/2 + 1 from 0 with β = 1/2: z_k = 2 − (3/4)^{k−1} for k >= 1, residual e/(4 − e) with
    e = (3/4)^{k−1}."""
    result = deq.anderson(tol=0.0, max_iter=5, memory=1, beta=0.5)(
        lambda z: z / 2 + 1, torch.zeros(1, dtype=torch.float64)
    )
    e = [0.75**k for k in range(4)]
    assert result.trace == pytest.approx([1.0] + [ek / (4 - ek) for ek in e], rel=1e-14)
    assert result.z.item() == pytest.approx(2 - e[-1], rel=1e-15)


def test_anderson_with_a_huge_ridge_averages_its_memory_per_example():
    """λ = 1e300 on f(z) = z/2 + c from 0: λs dominates GGᵀ, α = (1/2, 1/2), so with c = 1,
    z₂ = (f(0) + f(c))/2 = 5/4. The example with c = 1e5 has s = 6.25e9 and λs overflows: its
    weights are NaN, its step non-finite, and the solve ends there without touching the other."""
    c = torch.tensor([[1e5], [1.0]], dtype=torch.float64)
    result = deq.anderson(tol=0.0, max_iter=3, lam=1e300)(
        lambda z: z / 2 + c, torch.zeros(2, 1, dtype=torch.float64)
    )
    assert result.trace[:2] == [1.0, 1 / 3] and math.isnan(result.trace[2]) and result.nfe == 3
    assert math.isnan(result.z[0].item()) and result.z[1].item() == pytest.approx(1.25, rel=1e-15)


def test_adjoint_solve_runs_cg_for_all_its_iterations_by_default(linear):
    """adjoint_solve's default tol = 0: CG runs all 2d iterations and, J = W being block diagonal
    with d-dimensional blocks, solves (I − Wᵀ)u = g per example."""
    cell, x, target = linear
    u = deq.adjoint_solve(cell, x, cell.fixed_point(x).detach(), target, "cg", 2 * DIM)
    expected = torch.linalg.solve((torch.eye(DIM, dtype=torch.float64) - cell.W.detach()).T, target.T).T
    assert relative(u, expected) < 1e-12


def test_relative_residual_by_hand():
    """‖f(z) − z‖ / ‖f(z)‖: ‖(0, 0.4)‖/‖(0.3, 0.4)‖ = 0.8; a zero f(z) divides by 1: ‖(3, 4)‖ = 5."""
    assert deq.relative_residual(torch.tensor([0.3, 0.4]), torch.tensor([0.3, 0.0])) == pytest.approx(0.8)
    assert deq.relative_residual(torch.zeros(2), torch.tensor([3.0, 4.0])) == 5.0


def test_a_tie_in_the_residual_keeps_the_earlier_iterate():
    """f(z) = −z from z₀: every iterate ±z₀ has residual ‖−2z‖/‖z‖ = 2; the first one is returned."""
    z0 = torch.tensor([1.0, 2.0])
    result = deq.fixed_point_iteration(tol=0.0, max_iter=2)(torch.neg, z0)
    assert result.trace == [2.0, 2.0] and torch.equal(result.z, z0)


@pytest.mark.parametrize("name", ["anderson", "broyden"])
def test_a_one_dimensional_z_is_one_example(name):
    """A 1-D z of d = 2 coordinates is mixed as one example, exactly as the batch z[None] of one."""
    A = torch.tensor([[0.5, 0.25], [-0.5, 0.25]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0], dtype=torch.float64)
    f = lambda z: z @ A.T + b
    solve = deq.FORWARD_SOLVERS[name](tol=0.0, max_iter=4)
    single = solve(f, torch.tensor([1.0, 0.0], dtype=torch.float64))
    batch = solve(f, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    assert single.trace == batch.trace and torch.equal(single.z, batch.z[0])


@pytest.mark.parametrize(
    "backward, terms",
    [
        (lambda: deq.ift(), math.inf),
        (lambda: deq.ift("exact", iters=1), math.inf),
        (lambda: deq.ift("cg"), math.inf),
        (lambda: deq.ift("neumann"), 50),
        (lambda: deq.ift("neumann", iters=1), 1),
        (lambda: deq.ift("cg", tol=2.0), 0),
    ],
    ids=[
        "defaults",
        "exact_ignores_iters",
        "cg_defaults",
        "neumann_defaults",
        "neumann_one_term",
        "cg_tol_two",
    ],
)
def test_ift_adjoint_budgets(linear, backward, terms):
    """dL/db = Σ_examples u with u = Σ_{j<terms} (Wᵀ)^j g: the defaults (`exact`, 50 iterations,
    tol = 0) solve (I − Wᵀ)u = g (terms = ∞) for `exact` (whatever `iters`) and `cg`, and `neumann`
    keeps 50 terms; tol = 2 lets CG accept u = 0 at once, since its first residual ‖b‖ <= 2‖b‖."""
    cell, x, target = linear
    z, _ = deq.equilibrium(cell, x, zeros(), deq.broyden(1e-14, 100), backward())
    (0.5 * (z - target).pow(2).sum()).backward()
    g, W = (cell.fixed_point(x) - target).detach(), cell.W.detach()
    if terms == math.inf:
        u = torch.linalg.solve((torch.eye(DIM, dtype=torch.float64) - W).T, g.T).T
    else:
        u = sum((g @ torch.linalg.matrix_power(W, j) for j in range(terms)), torch.zeros_like(g))
    assert torch.allclose(cell.b.grad, u.sum(0), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", list(deq.FORWARD_SOLVERS))
def test_a_one_evaluation_solve_returns_z0(name):
    """max_iter = 1 is valid: f is evaluated once, at z₀ = 1, and z₀ comes back with its residual
    |f(1) − 1|/|f(1)| = 1/3."""
    z0 = torch.ones(1, dtype=torch.float64)
    result = deq.FORWARD_SOLVERS[name](tol=0.0, max_iter=1)(lambda z: z / 2 + 1, z0)
    assert result.nfe == 1 and result.trace == [1 / 3] and torch.equal(result.z, z0)


@pytest.mark.parametrize("backward", list(BACKWARDS))
def test_each_backward_returns_the_forward_solves_record_with_z_detached(linear, backward):
    """What a model reports of its forward pass (residual, evaluations, convergence) is the
    solver's own record, whichever backward pass differentiates it; its z is z*, off the graph."""
    cell, x, _ = linear
    solver = deq.anderson(tol=1e-12, max_iter=200)
    alone = solver(lambda z: cell(z, x), zeros())
    z, solve = deq.equilibrium(cell, x, zeros(), solver, BACKWARDS[backward]())
    assert z.requires_grad and not solve.z.requires_grad
    assert torch.equal(solve.z, alone.z.detach())
    assert (solve.residual, solve.nfe, solve.converged, solve.trace) == (
        alone.residual,
        alone.nfe,
        alone.converged,
        alone.trace,
    )
