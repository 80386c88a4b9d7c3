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
    with pytest.raises(ValueError, match="max_iter >= 1"):
        deq.anderson(max_iter=0)


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
