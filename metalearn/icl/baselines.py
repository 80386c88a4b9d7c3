"""Explicit learning algorithms run on the same prompt as the transformer.

Convention (von Oswald et al., 2023, paper): GD descends L(w) = (1/2N) Σ_i (wᵀx_i − y_i)² from
w₀ = 0, so one step is w₁ = (η/N) Xᵀy and ŷ = (η/N) Σ_i y_i x_iᵀx_q. Every reported loss is the
plain mean squared error E(ŷ − y_q)² (no ½). Each algorithm maps (xs (B, N, d), ys (B, N),
xq (B, d)) to predictions (B,).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import torch

from metalearn.icl.data import Prompts, input_moments

# An in-context algorithm: (context inputs X (B, N, d), context targets y (B, N), query x_q (B, d))
# -> its prediction ŷ_q (B,) for each of the B prompts
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

_GOLDEN = (math.sqrt(5) - 1) / 2
_LOG_MAX = math.log(sys.float_info.max)  # e^x is a float64 below it


def mse(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Plain mean squared error, E(ŷ − y)²."""
    return float(((pred - target) ** 2).mean())


def gd_weights(xs: torch.Tensor, ys: torch.Tensor, lr: float, steps: int = 1) -> torch.Tensor:
    """`steps` of w ← w − (η/N) Xᵀ(Xw − y) from w = 0; returns w, shape (B, d)."""
    n = xs.shape[1]
    w = xs.new_zeros(xs.shape[0], xs.shape[2])  # (B, d)
    for _ in range(steps):
        residual = torch.einsum("bnd,bd->bn", xs, w) - ys  # (B, N)
        w = w - (lr / n) * torch.einsum("bnd,bn->bd", xs, residual)
    return w


def gd_plus_plus(
    xs: torch.Tensor, ys: torch.Tensor, xq: torch.Tensor, lr: float, gamma: float, steps: int
) -> torch.Tensor:
    """GD++ (von Oswald et al., 2023): GD on inputs preconditioned as x ← (I − γXᵀX)x each step.

    Written in the token picture of the LSA construction: every step updates all tokens at once,
    x_j ← x_j − γ Σ_i x_i x_iᵀx_j, r_j ← r_j − (η/N) Σ_i r_i x_iᵀx_j, where r_j starts at y_j for
    context tokens and at 0 for the query, whose prediction is −r_q. γ = 0 is plain GD.
    """
    n = xs.shape[1]
    x, r = xs, ys  # (B, N, d), (B, N)
    x_q, r_q = xq, torch.zeros_like(ys[:, 0])  # (B, d), (B,)
    for _ in range(steps):
        gram = torch.einsum("bnd,bne->bde", x, x)  # (B, d, d) XᵀX
        xtr = torch.einsum("bnd,bn->bd", x, r)  # (B, d) Σ_i r_i x_i
        r, r_q = r - (lr / n) * torch.einsum("bnd,bd->bn", x, xtr), r_q - (lr / n) * (x_q * xtr).sum(-1)
        x, x_q = x - gamma * x @ gram, x_q - gamma * torch.einsum("bde,be->bd", gram, x_q)
    return -r_q


def ridge_weights(xs: torch.Tensor, ys: torch.Tensor, lam: float) -> torch.Tensor:
    """Ridge regression ŵ = (XᵀX + λI)⁻¹ Xᵀy, shape (B, d). In float32, λ below `ridge_floor` is
    lost in rounding, and for N < d the system is then singular."""
    d = xs.shape[2]
    gram = xs.transpose(1, 2) @ xs + lam * torch.eye(d, dtype=xs.dtype, device=xs.device)  # (B, d, d)
    return torch.linalg.solve(gram, torch.einsum("bnd,bn->bd", xs, ys))


def ridge_floor(dim: int, context: int, x_dist: str = "uniform", x_range: float = 1.0) -> float:
    """The smallest ridge λ a float32 solve resolves: ε·E tr(XᵀX) = ε·N·d·E x², ε = 2⁻²³ float32's
    machine epsilon. Measured for d from 3 to 64 and every context length up to 32: from it up no
    solve of XᵀX + λI failed and |ŵ| stayed O(1); below it both happen once N < d."""
    s2, _ = input_moments(x_dist, x_range)
    return torch.finfo(torch.float32).eps * context * dim * s2


def ols_weights(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Least squares ŵ = X⁺y (the minimum-norm solution when N < d), shape (B, d)."""
    return (torch.linalg.pinv(xs) @ ys.unsqueeze(-1)).squeeze(-1)


def linear(weights: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Predictor:
    """The predictor ŷ = ŵᵀx_q of an algorithm that returns weights ŵ(X, y)."""
    return lambda xs, ys, xq: (weights(xs, ys) * xq).sum(-1)


def gd(lr: float, steps: int = 1) -> Predictor:
    """`steps` of gradient descent from w = 0 on (1/2N)Σ(wᵀx_i − y_i)² with step size `lr`, then
    ŷ_q = wᵀx_q: the algorithm a K-layer LSA can run (von Oswald et al., 2023). A `Predictor`:
    (X (B, N, d), y (B, N), x_q (B, d)) -> ŷ_q (B,); `fit_gd` finds the best `lr` on prompts."""
    return linear(lambda xs, ys: gd_weights(xs, ys, lr, steps))


def ridge(lam: float) -> Predictor:
    """Ridge regression's prediction ŷ_q = x_qᵀ(XᵀX + λI)⁻¹Xᵀy: the posterior mean, so the
    Bayes-optimal prediction, for a prior w ~ N(0, (σ²/λ)I) and noise of variance σ² (Akyürek et al.,
    2022). A `Predictor`:
    (X (B, N, d), y (B, N), x_q (B, d)) -> ŷ_q (B,)."""
    return linear(lambda xs, ys: ridge_weights(xs, ys, lam))


def ols() -> Predictor:
    """Least squares' prediction ŷ_q = x_qᵀX⁺y (the minimum-norm fit when N < d), exact on
    noiseless prompts once N ≥ d. A `Predictor`: (X (B, N, d), y (B, N), x_q (B, d)) -> ŷ_q (B,)."""
    return linear(ols_weights)


def line_search(
    loss: Callable[[float], float], lo: float, hi: float, grid: int = 41, tol: float = 1e-7, log: bool = True
) -> tuple[float, float]:
    """Minimise a scalar `loss` on [lo, hi]: a grid (log-spaced if `log`), then golden section.

    The grid finds the basin (losses of several GD steps are polynomials in η with a steep wall
    past the stable range); golden section narrows it to relative width `tol`. Non-finite losses
    count as +inf. Returns (argmin, min).
    """
    if log:
        points = torch.logspace(math.log10(lo), math.log10(hi), grid, dtype=torch.float64).tolist()
    else:
        points = torch.linspace(lo, hi, grid, dtype=torch.float64).tolist()
    values = [_finite(loss(p)) for p in points]
    best = min(range(grid), key=values.__getitem__)
    a, b = points[max(best - 1, 0)], points[min(best + 1, grid - 1)]
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = _finite(loss(c)), _finite(loss(d))
    while b - a > tol * max(abs(a), abs(b)):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = _finite(loss(c))
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = _finite(loss(d))
    candidates = [(points[best], values[best]), (c, fc), (d, fd)]
    return min(candidates, key=lambda pv: pv[1])


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def fit_gd(prompts: Prompts, steps: int = 1) -> tuple[float, float]:
    """Line-search the learning rate of `steps` GD steps on held-out `prompts`: (η, MSE)."""
    _, scale = _scales(prompts)
    return line_search(
        lambda lr: mse(gd(lr, steps)(prompts.xs, prompts.ys, prompts.xq), prompts.yq),
        1e-3 / scale,
        10 / scale,
    )


def fit_gd_plus_plus(prompts: Prompts, steps: int, iterations: int = 100) -> tuple[float, float, float]:
    """Fit GD++'s (η, γ), shared by all steps, on held-out `prompts`: (η, γ, MSE).

    L-BFGS (at most `iterations` of them, with a strong-Wolfe line search) on (log η s̄², γ N s̄²) in
    float64, started from line-searched GD (γ = 0), so the fit is never worse than GD with the same
    number of steps.
    """
    n, scale = _scales(prompts)
    lr0, loss0 = fit_gd(prompts, steps)
    if steps == 1:  # the input update only shows from the second step on
        return lr0, 0.0, loss0
    xs, ys, xq, yq = (t.double() for t in prompts[:4])
    params = torch.tensor(
        [math.log(lr0 * scale), 0.0], dtype=torch.float64, device=xs.device, requires_grad=True
    )
    optimizer = torch.optim.LBFGS([params], max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        lr, gamma = params[0].exp() / scale, params[1] / (n * scale)
        loss = ((gd_plus_plus(xs, ys, xq, lr, gamma, steps) - yq) ** 2).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    log_lr, gamma = params[0].item(), params[1].item() / (n * scale)
    if not log_lr < _LOG_MAX:  # L-BFGS ran off to an η past float64 (or NaN): no better than GD
        return lr0, 0.0, loss0
    lr = math.exp(log_lr) / scale
    loss = mse(gd_plus_plus(xs, ys, xq, lr, gamma, steps), yq)
    return (lr, gamma, loss) if loss < loss0 else (lr0, 0.0, loss0)


def _scales(prompts: Prompts) -> tuple[int, float]:
    """(N, s̄²): the mean squared input coordinate sets the scale of η and γ."""
    return prompts.xs.shape[1], float((prompts.xs**2).mean())


def optimal_gd_lr(dim: int, context: int, x_dist: str = "uniform", x_range: float = 1.0) -> float:
    """η* of one GD step from 0 for w ~ N(0, I) and i.i.d. input coordinates.

    With s² = E x², m₄ = E x⁴ (derived in REFERENCES.md, "The best single GD step"):
    η* = N s² / ((N + d − 2) s⁴ + m₄). For x ~ U(−a, a), s² = a²/3 and m₄ = a⁴/5, so
    η* = N(a²/3) / (a⁴(N + d − 2)/9 + a⁴/5) = 3N / (a²(N + d − 2 + 9/5)) = 3N / (a²(N + d − 0.2)).
    """
    s2, m4 = input_moments(x_dist, x_range)
    return context * s2 / ((context + dim - 2) * s2**2 + m4)


def optimal_gd_mse(dim: int, context: int, x_dist: str = "uniform", x_range: float = 1.0) -> float:
    """Minimum MSE of one GD step: d s² [1 − N s⁴ / ((N + d − 2) s⁴ + m₄)] (noiseless targets)."""
    s2, m4 = input_moments(x_dist, x_range)
    return dim * s2 * (1 - context * s2**2 / ((context + dim - 2) * s2**2 + m4))
