"""Linear solvers for inverse-Hessian-vector products: x ≈ H⁻¹b from the product v ↦ Hv alone.

Both take `matvec` (a function of a flat tensor returning H times it) and never form H. They are
the inner step of implicit hypergradients (Pedregosa 2016; Lorraine et al. 2020) and of iMAML
(Rajeswaran et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

MatVec = Callable[[Tensor], Tensor]


def conjugate_gradient(matvec: MatVec, b: Tensor, iters: int, tol: float = 0.0) -> Tensor:
    """Conjugate gradient from x₀ = 0 for a symmetric positive-definite H (Hestenes & Stiefel 1952).

    In exact arithmetic x_k minimises ‖x − H⁻¹b‖_H over the k-th Krylov space, so `iters` = dim
    solves the system; stops early once ‖b − Hx‖ ≤ tol·‖b‖.
    """
    x = b.new_zeros(b.shape)
    residual = b.clone()
    direction = residual.clone()
    norm_sq = residual.dot(residual)
    stop = (tol * b.norm()) ** 2
    for _ in range(iters):
        if norm_sq <= stop:
            break
        h_direction = matvec(direction)
        step = norm_sq / direction.dot(h_direction)
        x = x + step * direction
        residual = residual - step * h_direction
        new_norm_sq = residual.dot(residual)
        direction = residual + (new_norm_sq / norm_sq) * direction
        norm_sq = new_norm_sq
    return x


def neumann_series(matvec: MatVec, b: Tensor, alpha: float, terms: int) -> Tensor:
    """H⁻¹b ≈ α Σ_{j<J} (I − αH)^j b (Lorraine et al. 2020); the error shrinks like ρ(I − αH)^J."""
    term = alpha * b
    total = term
    for _ in range(terms - 1):
        term = term - alpha * matvec(term)
        total = total + term
    return total
