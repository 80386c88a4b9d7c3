"""Linear solvers for inverse-Hessian-vector products: x ≈ H⁻¹b from the product v ↦ Hv alone.

Each takes `matvec` (a function of a flat tensor returning H times it) and never needs H itself,
except `dense_solve`, which forms it from dim(b) products. They are the inner step of implicit
hypergradients (Pedregosa 2016; Lorraine et al. 2020), of iMAML (Rajeswaran et al. 2019), of the
natural-gradient direction of TRPO, of competitive gradient descent's step, and of the adjoint of
a deep equilibrium model. For a non-symmetric M, conjugate gradient runs on the normal equations:
`conjugate_gradient(lambda v: Mᵀ(M v), Mᵀb, ...)`.
"""

from __future__ import annotations

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
    stop = max(tol * b.norm().item(), atol) ** 2 if tol > 0 or atol > 0 else None
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
    solve. For checks and small systems. Cost: dim(b) products."""
    columns = torch.func.vmap(matvec)(torch.eye(b.numel(), dtype=b.dtype, device=b.device))  # row j = H e_j
    return torch.linalg.solve(columns.T, b)
