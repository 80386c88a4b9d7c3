"""Self-Tuning Networks: the gated layer against its effective linear layer, STN's closed-form
optimum on ridge against quadrature and the exact best response, the trained STN against that
optimum, one call against its steps written out, and the MLP's hyperparameter maps."""

import math
import re
import time

import numpy as np
import pytest
import torch
from torch import Tensor

import bilevel
from bilevel.problem import BilevelProblem
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
        unbatched = gated_linear(layer, x[i], h[i])  # one example, x (in,) and λ̃ (n,)
        torch.testing.assert_close(unbatched, out[i], rtol=1e-14, atol=1e-15)
        by_hand = 1.3 * layer.weight + (layer.to_weight_gates @ h[i])[:, None] * layer.gate_weight
        torch.testing.assert_close(weight, by_hand, rtol=1e-15, atol=0)
        assert gated_weight_sq_norm(layer, h[i : i + 1])[0].item() == pytest.approx(
            weight.square().sum().item(), rel=1e-13
        )
    plain = gated_linear(layer, x, h[:, :0])  # no hyperparameters: s·(Wx + b)
    torch.testing.assert_close(plain, 1.3 * (x @ layer.weight.T + layer.bias), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(gated_linear(layer, x[0], h[0, :0]), plain[0], rtol=0, atol=0)


def test_gated_linear_init_draws_the_papers_initialisation_in_order():
    """W, V, b, c ~ U(±1/√in) as (2u − 1)/√in with u ~ U(0, 1), A, A' ~ N(0, 0.01²), s = 1, drawn
    from the generator in the order W, V, A, b, c, A'; without a bias, W, V, A alone."""
    generator = torch.Generator().manual_seed(0)
    uniform = lambda *shape: (2 * torch.rand(*shape, generator=generator, dtype=F64) - 1) * 0.5  # 1/√4
    small = lambda *shape: 0.01 * torch.randn(*shape, generator=generator, dtype=F64)
    w, v, a, b, c, a_bias = uniform(3, 4), uniform(3, 4), small(3, 2), uniform(3), uniform(3), small(3, 2)
    layer = gated_linear_init(4, 3, 2, torch.Generator().manual_seed(0), dtype=F64)
    for got, want in zip(layer, (w, v, a, torch.tensor(1.0, dtype=F64), b, c, a_bias), strict=True):
        assert got.dtype == F64 and torch.equal(got, want)
    plain = gated_linear_init(4, 3, 2, torch.Generator().manual_seed(0), bias=False, dtype=F64)
    assert (plain.bias, plain.gate_bias, plain.to_bias_gates) == (None, None, None)
    assert len(plain.tensors()) == 4 and all(map(torch.equal, plain.tensors(), layer.tensors()[:4]))
    assert gated_linear_init(4, 3, 2, generator).weight.dtype == torch.float32  # the default dtype


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
    message = "stn keeps its own best response ŵ(λ); it takes no inner iterate w"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SelfTuningNetwork()(ridge, ridge.lam0, ridge.w0)
    bad = {
        "scale": 0.0,
        "tau": -1e-3,
        "lr": 0.0,
        "scale_lr": -0.05,
        "inner_steps": 0,
        "samples": 0,
        "warmup": -1,
    }
    for name, value in bad.items():  # each alone
        with pytest.raises(ValueError, match=rf"\b{name}={re.escape(str(value))}\b"):
            SelfTuningNetwork(**{name: value})
    SelfTuningNetwork(tau=0.0, scale_lr=0.0, inner_steps=1, samples=1, warmup=0)  # each at its bound


_RIDGE_1D = bilevel.make_problem("ridge", dim=1, train=3, val=4)


class _Shrinkage(BilevelProblem):
    """L_train(w, λ) = ½‖w − λ‖², L_val(w, λ) = ½‖w − 1‖² + ‖λ‖²/20 for w, λ ∈ R²: two
    hyperparameters, and a validation loss that depends on λ directly."""

    name, w0, lam0, inner_lr = "shrinkage", torch.zeros(2, dtype=F64), torch.zeros(2, dtype=F64), 1.0

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return 0.5 * (w - lam).square().sum()

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return 0.5 * (w - 1).square().sum() + lam.square().sum() / 20


def _stn_call_by_hand(problem, lam, scale, tau, samples, lr, scale_lr, seed):
    """One STN call with inner_steps = 1 and warmup = 0, written out: φ = (w, v, a, s) drawn by the
    seeded generator, then S draws ε for the training step, then S fresh draws ε' for λ's
    hypergradient and σ's step; Adam's first step is p − η·g/(|g| + 10⁻⁸), g the gradient of
    E L_train(ŵ(λ + σε), λ + σε) (the mean over the draws) for φ, of E L_val(ŵ(λ + σε'), ·) − τΣlog σ
    for log σ. Returns (φ, dE L_val/dλ, σ)."""
    generator = torch.Generator().manual_seed(seed)
    layer = gated_linear_init(problem.w0.numel(), 1, lam.numel(), generator, bias=False, dtype=F64)
    phi = tuple(layer.tensors())

    def expected(loss, phi, lam, log_sigma, eps):  # the mean of loss(s·w + (aᵀλ')·v, λ') over λ' = λ + σε
        w, v, a, s = phi
        lams = lam.reshape(-1) + log_sigma.exp() * eps  # (S, n)
        return sum(loss(s * w[0] + (a[0] @ lam_) * v[0], lam_.reshape(lam.shape)) for lam_ in lams) / samples

    def adam(p, g, rate):
        return p - rate * g / (g.abs() + 1e-8)

    log_sigma = torch.full((lam.numel(),), math.log(scale), dtype=F64)
    eps = torch.randn(samples, lam.numel(), generator=generator, dtype=F64)
    grads = torch.func.grad(lambda phi: expected(problem.train_loss, phi, lam, log_sigma, eps))(phi)
    phi = tuple(adam(p, g, lr) for p, g in zip(phi, grads))
    eps = torch.randn(samples, lam.numel(), generator=generator, dtype=F64)

    def outer(lam, log_sigma):
        return expected(problem.val_loss, phi, lam, log_sigma, eps) - tau * log_sigma.sum()

    value, sigma_grad = torch.func.grad(outer, argnums=(0, 1))(lam, log_sigma)
    return phi, value, adam(log_sigma, sigma_grad, scale_lr).exp().reshape(lam.shape)


@pytest.mark.parametrize(
    "problem, lam",
    [
        (_RIDGE_1D, torch.tensor(0.3, dtype=F64)),
        (_Shrinkage(), torch.tensor([0.2, -0.4], dtype=F64)),
    ],
    ids=["ridge-1d", "two-hyperparameters"],
)
def test_one_stn_call_is_an_adam_step_on_the_response_then_the_gradients_in_lambda_and_sigma(problem, lam):
    """τ = 0.5 outweighs E L_val's pull on σ, so the entropy bonus decides the sign of σ's step:
    Adam's first step raises log σ by scale_lr, σ = 0.7·e^0.1 up to Adam's ε."""
    options = dict(scale=0.7, tau=0.5, samples=3, lr=0.02, scale_lr=0.1)
    stn = SelfTuningNetwork(inner_steps=1, warmup=0, **options)
    start = time.perf_counter()
    result = stn(problem, lam)
    elapsed = time.perf_counter() - start
    phi, value, sigma = _stn_call_by_hand(problem, lam, seed=0, **options)  # the default seed
    for learned, by_hand in zip(stn.layer.tensors(), phi, strict=True):
        torch.testing.assert_close(learned.detach(), by_hand, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(result.value, value, rtol=1e-13, atol=0)
    torch.testing.assert_close(stn.sigma, sigma, rtol=1e-14, atol=0)
    torch.testing.assert_close(stn.sigma, torch.full_like(sigma, 0.7 * math.exp(0.1)), rtol=1e-8, atol=0)
    assert len(stn.sigmas) == 1 and torch.equal(stn.sigmas[0], stn.sigma)
    assert result[1:4] == (3, 3, 0) and 0 <= result.seconds <= elapsed  # S gradients of each loss


def test_default_entropy_weight_and_scale_rate_shrink_sigma_by_one_default_step():
    """τ = 10⁻³ and scale_lr = 0.05 by default. So small an entropy weight loses to E L_val's pull
    on σ, which Adam's first step then lowers by the rate: σ = 0.7·e^−0.05 up to Adam's ε. (A weight
    above the pull, τ ≈ 1, would raise it instead; a rate of 1.05 would take it to 0.245.)"""
    lam, options = torch.tensor(0.3, dtype=F64), dict(scale=0.7, samples=3, lr=0.02)
    stn = SelfTuningNetwork(inner_steps=1, warmup=0, **options)
    stn(_RIDGE_1D, lam)
    *_, sigma = _stn_call_by_hand(_RIDGE_1D, lam, tau=1e-3, scale_lr=0.05, seed=0, **options)
    torch.testing.assert_close(stn.sigma, sigma, rtol=1e-14, atol=0)
    torch.testing.assert_close(stn.sigma, torch.tensor(0.7 * math.exp(-0.05), dtype=F64), rtol=1e-6, atol=0)
    *_, above = _stn_call_by_hand(_RIDGE_1D, lam, tau=1.0, scale_lr=0.05, seed=0, **options)
    assert above.item() == pytest.approx(0.7 * math.exp(0.05), rel=1e-6)


def test_the_first_call_builds_the_response_and_adds_the_warmup_steps():
    """φ, σ and their optimisers wait for the first call, which knows λ's size; it takes
    (inner_steps + warmup)·S gradients of L_train, later calls inner_steps·S; each S of L_val (S = 16
    by default), no solves."""
    stn = SelfTuningNetwork(inner_steps=2, warmup=3)
    assert (stn.layer, stn.log_sigma, stn.optimizer, stn.sigmas) == (None, None, None, [])
    counts = [stn(_RIDGE_1D, _RIDGE_1D.lam0)[1:4] for _ in range(3)]
    assert counts == [(80, 16, 0), (32, 16, 0), (32, 16, 0)]


def test_the_default_first_call_is_1000_warmup_and_100_steps_and_scale_lr_zero_holds_sigma_at_one_half():
    """With one draw a step: 1100 gradients of L_train and one of L_val. scale_lr = 0 holds σ at its
    start, 0.5 by default, by not stepping it at all: not even an infinite entropy weight τ, whose
    gradient a step at rate 0 would turn into NaN, moves it."""
    stn = SelfTuningNetwork(tau=math.inf, samples=1, scale_lr=0.0)
    result = stn(_RIDGE_1D, _RIDGE_1D.lam0)
    assert result[1:4] == (1100, 1, 0) and result.value.isfinite() and stn.sigma.item() == 0.5


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
