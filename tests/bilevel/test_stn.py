"""Self-Tuning Networks: the gated layer against its effective linear layer, STN's closed-form
optimum on ridge against quadrature and the exact best response, the trained STN against that
optimum, and the MLP's hyperparameter maps."""

import numpy as np
import pytest
import torch

import bilevel
from bilevel.stn import (
    SelfTuningNetwork,
    gated_linear,
    gated_linear_init,
    gated_weight,
    gated_weight_sq_norm,
    mlp,
    response_error,
    stn_lambda,
    stn_optimum,
    stn_sigma,
    val_curvature,
)

F64 = torch.float64


@pytest.fixture(scope="module")
def ridge():
    return bilevel.make_problem("ridge", dim=5, train=12, val=40)


def _best(problem):
    grid, losses = bilevel.outer_loss_curve(problem)
    return grid[losses.argmin()]


def test_gated_layer_is_the_linear_layer_of_its_effective_weights():
    generator = torch.Generator().manual_seed(0)
    layer = gated_linear_init(4, 3, 2, generator, dtype=F64)
    layer = layer._replace(scale=torch.tensor(1.3, dtype=F64))
    x, h = (
        torch.randn(5, 4, generator=generator, dtype=F64),
        torch.randn(5, 2, generator=generator, dtype=F64),
    )
    out = gated_linear(layer, x, h)
    for i in range(5):
        weight, bias = gated_weight(layer, h[i])
        torch.testing.assert_close(out[i], weight @ x[i] + bias, rtol=1e-14, atol=1e-15)
        by_hand = 1.3 * layer.weight + (layer.to_weight_gates @ h[i])[:, None] * layer.gate_weight
        torch.testing.assert_close(weight, by_hand, rtol=1e-15, atol=0)
        assert gated_weight_sq_norm(layer, h[i : i + 1])[0].item() == pytest.approx(
            weight.square().sum().item(), rel=1e-13
        )
    plain = gated_linear(layer, x, h[:, :0])  # no hyperparameters: s·(Wx + b)
    torch.testing.assert_close(plain, 1.3 * (x @ layer.weight.T + layer.bias), rtol=1e-14, atol=1e-15)


def test_stn_optimum_tends_to_the_exact_best_response(ridge):
    lam = torch.tensor(1.5, dtype=F64)
    m, u = stn_optimum(ridge, lam, 1e-5)
    torch.testing.assert_close(m, ridge.inner_solution(lam), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(u, ridge.best_response_slope(lam), rtol=1e-8, atol=1e-10)


def test_stn_optimum_is_stationary_for_the_expected_training_loss(ridge):
    """∇_{m,u} E_δ L_train(m + δu, λ + δ) = 0 at the closed form, the expectation by 80-point
    Gauss–Hermite quadrature (exact to rounding for these smooth integrands)."""
    lam, sigma = torch.tensor(1.5, dtype=F64), 0.7
    m, u = stn_optimum(ridge, lam, sigma)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    deltas = sigma * torch.tensor(nodes, dtype=F64)
    weights = torch.tensor(weights / weights.sum(), dtype=F64)

    def expected(m, u):
        losses = torch.stack([ridge.train_loss(m + d * u, lam + d) for d in deltas])
        return weights @ losses

    grad_m, grad_u = torch.func.grad(expected, argnums=(0, 1))(m, u)
    scale = torch.func.grad(expected)(torch.zeros_like(m), torch.zeros_like(u)).norm()
    assert grad_m.norm() / scale < 1e-12 and grad_u.norm() / scale < 1e-12
    exact = ridge.best_response_slope(lam)
    assert (u - exact).norm() / exact.norm() > 1e-2  # σ = 0.7 fits a chord, visibly off the tangent


def test_stn_settles_at_the_minimiser_of_f_as_sigma_vanishes_and_off_it_as_sigma_grows(ridge):
    low, high = ridge.lambda_range  # the root of the exact dF/dλ by bisection
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (
            (middle, high) if ridge.hypergradient(torch.tensor(middle, dtype=F64)) < 0 else (low, middle)
        )
    assert stn_lambda(ridge, 1e-5) == pytest.approx(low, abs=1e-7)
    biases = [abs(stn_lambda(ridge, sigma) - low) for sigma in (0.3, 1.0, 2.0)]
    assert 1e-3 < biases[0] < biases[1] < biases[2]


def test_sigma_fixed_point_balances_curvature_and_entropy(ridge):
    lam = _best(ridge)
    sigma = stn_sigma(ridge, lam, 1e-2)
    u = stn_optimum(ridge, lam, sigma)[1]
    assert sigma**2 * val_curvature(ridge, u).item() == pytest.approx(1e-2, rel=1e-10)


def test_response_error_is_zero_for_the_exact_response_and_grows_with_sigma(ridge):
    lam = _best(ridge)
    generator = torch.Generator().manual_seed(0)
    exact = torch.func.vmap(ridge.inner_solution)
    assert response_error(ridge, exact, lam, 0.5, generator, draws=50) < 1e-12
    errors = []
    for sigma in (0.1, 0.5, 1.0):
        m, u = stn_optimum(ridge, lam, sigma)
        errors.append(response_error(ridge, lambda ls: m + (ls - lam)[:, None] * u, lam, sigma, generator))
    assert errors[0] < errors[1] < errors[2]


def test_trained_stn_reaches_its_closed_form_optimum(ridge):
    """σ held at 0.7 (scale_lr = 0) and λ fixed: the learned (ŵ(λ), dŵ/dλ) are the closed form's,
    which are off the exact best response by more."""
    lam = _best(ridge)
    stn = SelfTuningNetwork(scale=0.7, scale_lr=0.0, inner_steps=100, warmup=1000, samples=32, seed=1)
    for _ in range(4):
        stn(ridge, lam)
    m, u = stn_optimum(ridge, lam, 0.7)
    learned, slope = stn.response(lam).detach(), torch.func.jacfwd(stn.response)(lam).detach()
    exact = ridge.best_response_slope(lam)
    assert (u - exact).norm() / u.norm() > 0.2  # the chord σ = 0.7 fits, against the tangent
    assert (learned - m).norm() / m.norm() < 0.05 and (slope - u).norm() / u.norm() < 0.05  # Adam's noise
    assert stn.sigma.item() == pytest.approx(0.7, rel=1e-15) and len(stn.sigmas) == 4


def test_stn_refuses_an_inner_iterate_and_bad_options(ridge):
    with pytest.raises(ValueError, match="takes no inner iterate"):
        SelfTuningNetwork()(ridge, ridge.lam0, ridge.w0)
    with pytest.raises(ValueError, match="scale=0"):
        SelfTuningNetwork(scale=0.0)


def test_mlp_hyperparameters_round_trip_and_dropout_keeps_the_mean():
    lam = mlp.unconstrained([0.1, 0.5], 3e-4)
    torch.testing.assert_close(mlp.constrained(lam), torch.tensor([0.1, 0.5, 3e-4]), rtol=1e-6, atol=0)
    assert mlp.hyperparameter_names(2) == ["dropout_0", "dropout_1", "weight_decay"]
    generator = torch.Generator().manual_seed(0)
    net = mlp.gated_mlp_init([2000, 1], 0, generator)
    net[0] = net[0]._replace(weight=torch.ones(1, 2000), bias=torch.zeros(1))
    x, rates = torch.ones(4, 2000), torch.tensor([[0.0], [0.3], [0.6], [0.9]])
    out = mlp.gated_mlp(net, x, x[:, :0], rates, generator)[:, 0]  # sum of 2000 kept units / (1 − p)
    assert out[0].item() == 2000.0
    for k in (1, 2, 3):  # binomial: std sqrt(2000 p / (1 − p))
        assert abs(out[k].item() - 2000) < 5 * (2000 * rates[k, 0].item() / (1 - rates[k, 0].item())) ** 0.5


def test_a_non_finite_perturbation_ends_the_run_as_diverged():
    """τ = 1e300 is inf in float32: Adam turns log σ NaN at the first hyperparameter step, and the
    next training step's perturbed λ is NaN, no dropout rate to draw with (torch.bernoulli
    refused it): the run ends there, diverged."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 6, generator=generator), torch.randint(0, 3, (64,), generator=generator)
    lam0 = mlp.unconstrained([0.1, 0.1], 1e-4)
    result = mlp.stn_tune(
        (x, y), (x, y), [6, 5, 3], lam0, steps=8, inner_steps=2, warmup=2, batch=16, tau=1e300
    )
    assert result.diverged_step == 5 and [step for step, _ in result.schedule] == [0, 4]
    assert result.sigma.isnan().all()
