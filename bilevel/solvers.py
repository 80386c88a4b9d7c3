"""Linear solvers for inverse-Hessian-vector products: x ≈ H⁻¹b from the product v ↦ Hv alone.

Each takes `matvec` (a function of a flat tensor returning H times it) and never needs H itself,
except `dense_solve`, which forms it from dim(b) products. They are the inner step of implicit
hypergradients (Pedregosa 2016; Lorraine et al. 2020), of iMAML (Rajeswaran et al. 2019), of the
natural-gradient direction of TRPO, of competitive gradient descent's step, and of the adjoint of
a deep equilibrium model. For a non-symmetric M, conjugate gradient runs on the normal equations:
`conjugate_gradient(lambda v: Mᵀ(M v), Mᵀb, ...)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

MatVec = Callable[[Tensor], Tensor]


def conjugate_gradient(matvec: MatVec, b: Tensor, iters: int, tol: float = 0.0, atol: float = 0.0) -> Tensor:
    """Conjugate gradient from x₀ = 0 for a symmetric positive-definite H (Hestenes & Stiefel 1952).

    In exact arithmetic x_k minimises ‖x − H⁻¹b‖_H over the k-th Krylov space, so `iters` = dim
    solves the system. Stops early once ‖b − Hx‖ ≤ max(tol·‖b‖, atol); with both zero it runs all
    `iters` iterations with no data-dependent branch, so it can be vmapped, and a residual that
    vanishes exactly leaves x unchanged (a zero divisor, which comes only with a zero numerator
    there, is replaced by one). Cost: one product per iteration.
    """
    x = b.new_zeros(b.shape)
    residual = b.clone()
    direction = residual.clone()
    norm_sq = residual.dot(residual)
    stop = None
    if tol > 0 or atol > 0:
        bound = max(tol * b.norm().item(), atol)
        # bound² may leave the floats (`**` raised OverflowError): capped, so an overflowed ‖r‖² never passes
        stop = min(bound * bound, torch.finfo(b.dtype).max)
    for _ in range(iters):
        if stop is not None and norm_sq <= stop:
            break
        h_direction = matvec(direction)
        step = norm_sq / _nonzero(direction.dot(h_direction))
        x = x + step * direction
        residual = residual - step * h_direction
        new_norm_sq = residual.dot(residual)
        direction = residual + (new_norm_sq / _nonzero(norm_sq)) * direction
        norm_sq = new_norm_sq
    return x


def _nonzero(divisor: Tensor) -> Tensor:
    return torch.where(divisor == 0, torch.ones_like(divisor), divisor)


def neumann_series(matvec: MatVec, b: Tensor, alpha: float, terms: int) -> Tensor:
    """H⁻¹b ≈ α Σ_{j<J} (I − αH)^j b (Lorraine et al. 2020); the error shrinks like ρ(I − αH)^J.
    Cost: J − 1 products."""
    term = alpha * b
    total = term
    for _ in range(terms - 1):
        term = term - alpha * matvec(term)
        total = total + term
    return total


def dense_solve(matvec: MatVec, b: Tensor) -> Tensor:
    """H⁻¹b exactly: H formed column by column from dim(b) products (batched by vmap), then an LU
    solve (`solve_or_nan`: NaN where H is singular or not finite). For checks and small systems.
    Cost: dim(b) products."""
    columns = torch.func.vmap(matvec)(torch.eye(b.numel(), dtype=b.dtype, device=b.device))  # row j = H e_j
    return solve_or_nan(columns.T, b)


def solve_or_nan(matrix: Tensor, b: Tensor) -> Tensor:
    """A⁻¹b by LU, batched as torch.linalg.solve, and NaN for each system with no unique finite
    answer: A singular, or A or b with a non-finite entry (a diverged iterate). torch.linalg.solve
    raises on a singular A, and LAPACK is never handed a non-finite one (the identity is solved in
    its place), so a diverging run reads NaN and records its divergence instead of stopping.
    Without data-dependent branches: vmappable."""
    batch = matrix.shape[:-2]
    finite = matrix.isfinite().flatten(-2).all(-1)  # (*batch)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    solution, info = torch.linalg.solve_ex(torch.where(finite[..., None, None], matrix, eye), b)
    ok = (finite & (info == 0)).reshape(*batch, *[1] * (solution.dim() - len(batch)))
    return torch.where(ok, solution, torch.full_like(solution, math.nan))
