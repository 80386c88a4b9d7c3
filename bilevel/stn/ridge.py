"""What STN converges to on `ridge`, in closed form: the bias of a perturbed best response measured
against the exact one (the bias Bae & Grosse 2020, Δ-STN, diagnose).

With λ perturbed by δ ~ N(0, σ²) and the affine response ŵ(λ + δ) = m + δu (STN's gated layer for
a linear model, `bilevel.stn.method`), the inner objective J(m, u) = E_δ L_train(m + δu, λ + δ) is
a quadratic whose expectations are closed forms, E e^δ = k, E δe^δ = σ²k, E δ²e^δ = σ²(1 + σ²)k
with k = e^{σ²/2}; setting its gradient to zero gives, with G = XᵀX and e = e^λ,

    (G + ek I) m + ekσ² u = Xᵀy,      ek m + (G + ek(1 + σ²) I) u = 0,

whose solution → (w*(λ), dw*/dλ) as σ → 0 and is a chord of the curved w* for σ > 0. The outer
step's objective E_δ L_val(m + δu) − τ log σ is stationary in σ where σ² = τ/(uᵀ∇²L_val u), and
in λ where ∇L_val(m)ᵀu = 0: where STN settles, beside the minimiser of F.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.ridge import Ridge
from bilevel.solvers import solve_or_nan


def stn_optimum(problem: Ridge, lam: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """(m, u) minimising E_δ L_train(m + δu, λ + δ), δ ~ N(0, σ²): STN's fully trained response."""
    gram, rhs = problem.gram, problem.x_train.T @ problem.y_train
    d = gram.shape[0]
    ek = lam.exp() * torch.tensor(sigma**2 / 2, dtype=gram.dtype).exp()
    eye = torch.eye(d, dtype=gram.dtype)
    system = torch.cat(
        [
            torch.cat([gram + ek * eye, ek * sigma**2 * eye], 1),
            torch.cat([ek * eye, gram + ek * (1 + sigma**2) * eye], 1),
        ]
    )
    solution = solve_or_nan(system, torch.cat([rhs, torch.zeros_like(rhs)]))
    return solution[:d], solution[d:]


def val_curvature(problem: Ridge, u: Tensor) -> Tensor:
    """uᵀ∇²_ww L_val u = ‖X_val u‖²/m_val."""
    return (problem.x_val @ u).square().mean()


def stn_sigma(problem: Ridge, lam: Tensor, tau: float, iterations: int = 100) -> float:
    """σ where the σ step is stationary beside a fully trained response: σ² = τ/(u(σ)ᵀ∇²L_val u(σ)),
    by fixed-point iteration from σ = 1."""
    sigma = 1.0
    for _ in range(iterations):
        sigma = (tau / val_curvature(problem, stn_optimum(problem, lam, sigma)[1])).sqrt().item()
    return sigma


def stn_lambda(problem: Ridge, sigma: float, points: int = 401, iterations: int = 60) -> float:
    """λ where STN with perturbation σ and a fully trained response settles, ∇L_val(m(λ))ᵀu(λ) = 0:
    the sign change of that derivative nearest the grid minimiser of F, refined by bisection; nan
    when there is none on `lambda_range`."""

    def slope(lam: Tensor) -> float:
        m, u = stn_optimum(problem, lam, sigma)
        return (problem.x_val.T @ (problem.x_val @ m - problem.y_val) / problem.x_val.shape[0] @ u).item()

    grid = torch.linspace(*problem.lambda_range, points, dtype=torch.float64)
    slopes = torch.tensor([slope(lam) for lam in grid])
    changes = ((slopes[:-1] < 0) & (slopes[1:] >= 0)).nonzero().flatten()
    if len(changes) == 0:
        return float("nan")
    losses = torch.func.vmap(problem.outer_loss)(grid)
    low = grid[changes[(grid[changes] - grid[losses.argmin()]).abs().argmin()]].item()
    high = low + (grid[1] - grid[0]).item()
    for _ in range(iterations):
        middle = (low + high) / 2
        low, high = (middle, high) if slope(torch.tensor(middle, dtype=torch.float64)) < 0 else (low, middle)
    return (low + high) / 2


def response_error(
    problem: Ridge, response, lam: Tensor, sigma: float, generator: torch.Generator, draws: int = 1000
) -> float:
    """E_δ ‖ŵ(λ + δ) − w*(λ + δ)‖, δ ~ N(0, σ²), by Monte Carlo over `draws` draws from `generator`;
    `response` maps a batch of λ (B,) to ŵ (B, d)."""
    lams = lam + sigma * torch.randn(draws, generator=generator, dtype=lam.dtype)
    exact = torch.func.vmap(problem.inner_solution)(lams)
    return (response(lams) - exact).norm(dim=1).mean().item()


class ResponseCheck(NamedTuple):
    """An STN response on ridge at λ and its σ, against the exact best response and against the
    closed-form optimum of STN's own objective at that σ."""

    sigma: float
    jacobian_cosine: float  # cos(dŵ/dλ, dw*/dλ) at λ
    error: float  # E_δ ‖ŵ(λ + δ) − w*(λ + δ)‖, δ ~ N(0, σ²)
    optimum_jacobian_cosine: float  # the same two for stn_optimum(λ, σ)
    optimum_error: float
    settles_at: float  # stn_lambda(σ): where λ goes with a fully trained response


def _cosine(a: Tensor, b: Tensor) -> float:
    return (a @ b / (a.norm() * b.norm())).item()


def check_response(
    problem: Ridge,
    response,
    slope: Tensor,
    lam: Tensor,
    sigma: float,
    generator: torch.Generator,
    draws: int = 1000,
) -> ResponseCheck:
    """`response` maps a batch of λ (B,) to ŵ (B, d); `slope` is dŵ/dλ at λ, (d,)."""
    m, u = stn_optimum(problem, lam, sigma)
    exact = problem.best_response_slope(lam)
    state = generator.get_state()  # both errors over the same draws
    error = response_error(problem, response, lam, sigma, generator, draws)
    generator.set_state(state)
    optimum_error = response_error(
        problem, lambda lams: m + (lams - lam)[:, None] * u, lam, sigma, generator, draws
    )
    return ResponseCheck(
        sigma, _cosine(slope, exact), error, _cosine(u, exact), optimum_error, stn_lambda(problem, sigma)
    )


def bias_curves(
    problem: Ridge,
    lam: Tensor,
    sigmas: list[float],
    taus: list[float],
    generator: torch.Generator,
    draws: int = 400,
) -> dict[str, list[dict]]:
    """STN's fully trained response at λ against the exact one, over perturbation scales σ and over
    entropy weights τ (at the σ each settles at, `stn_sigma`): rows of σ (and τ), the Jacobian
    cosine, E‖ŵ − w*‖ and where λ settles. All closed forms but the error's Monte Carlo."""

    def row(sigma: float) -> dict:
        m, u = stn_optimum(problem, lam, sigma)
        error = response_error(
            problem, lambda lams: m + (lams - lam)[:, None] * u, lam, sigma, generator, draws
        )
        cosine = _cosine(u, problem.best_response_slope(lam))
        return {
            "sigma": sigma,
            "jacobian_cosine": cosine,
            "error": error,
            "lambda": stn_lambda(problem, sigma, 101, 40),
        }

    return {
        "sigma": [row(sigma) for sigma in sigmas],
        "tau": [{"tau": tau, **row(stn_sigma(problem, lam, tau))} for tau in taus],
    }
