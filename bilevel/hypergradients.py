"""Hypergradient methods: dF/dλ of F(λ) = L_val(w*(λ), λ), each a factory closing over its budget.

A method is called as `method(problem, λ)` and returns a `Hypergradient`: the value (shaped like
λ) and what it cost. Two families:

- differentiate the inner optimisation, F_K(λ) = L_val(w_K(λ), λ) after K inner steps from w₀:
  `unrolled` (reverse mode), `truncated` (reverse mode through the last K of T steps only),
  `forward` (forward mode); they converge to dF/dλ as w_K → w*, and on `lr_horizon`, where λ acts
  through the optimiser only, they are the only ones that see it;
- the implicit function theorem at the accurate inner solution w*,
  dF/dλ = ∂_λL_val − ∂²_{λw}L_train (∂²_ww L_train)⁻¹ ∂_wL_val (Pedregosa 2016; Lorraine et al.
  2020), the inverse-Hessian-vector product by `ift_exact` (forming the Hessian), `ift_cg` or
  `ift_neumann`; and `finite_diff`, central differences of F, the check.

Costs: `inner_steps` taken, `products` (Hessian-, Jacobian- and their transposed vector products,
each about one gradient), `solves` of the inner problem to full accuracy, and wall `seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.problem import BilevelProblem, unroll
from bilevel.solvers import conjugate_gradient, neumann_series


class Hypergradient(NamedTuple):
    value: Tensor  # dF/dλ, shaped like λ
    inner_steps: int
    products: int
    solves: int
    seconds: float


Method = Callable[[BilevelProblem, Tensor], Hypergradient]


def _timed(compute: Callable[[BilevelProblem, Tensor], tuple]) -> Method:
    def method(problem: BilevelProblem, lam: Tensor) -> Hypergradient:
        start = time.perf_counter()
        value, inner_steps, products, solves = compute(problem, lam.detach())
        return Hypergradient(value.detach(), inner_steps, products, solves, time.perf_counter() - start)

    return method


def _unrolled_loss(problem: BilevelProblem, steps: int, w: Tensor | None = None, first: int = 0):
    """F_K as a function of λ: L_val after `steps` inner steps t = first, ... from w."""
    return lambda lam: problem.val_loss(unroll(problem, lam, steps, w, first), lam)


def unrolled(steps: int = 200) -> Method:
    """Reverse mode through K inner steps from w₀: dF_K/dλ (Maclaurin et al. 2015; Franceschi et
    al. 2017, reverse-mode hypergradient)."""
    _check_positive("unrolled", steps=steps)
    return _timed(
        lambda problem, lam: (torch.func.grad(_unrolled_loss(problem, steps))(lam), steps, steps, 0)
    )


def truncated(steps: int = 200, last: int = 10) -> Method:
    """Truncated back-propagation: T = `steps` inner steps, reverse mode through the last K =
    `last` of them only, w_{T−K} held constant; biased, less so as K grows (Shaban et al. 2019)."""
    _check_positive("truncated", steps=steps, last=last)
    if last > steps:
        raise ValueError(f"truncated: last={last} exceeds steps={steps}")

    def compute(problem: BilevelProblem, lam: Tensor) -> tuple:
        held = unroll(problem, lam, steps - last)
        return torch.func.grad(_unrolled_loss(problem, last, held, steps - last))(lam), steps, last, 0

    return _timed(compute)


def forward(steps: int = 200) -> Method:
    """Forward mode through K inner steps: dF_K/dλ one tangent per coordinate of λ, carried along
    with w_t (Franceschi et al. 2017, forward-mode hypergradient); the same number as `unrolled`
    without storing the trajectory."""
    _check_positive("forward", steps=steps)
    return _timed(
        lambda problem, lam: (
            torch.func.jacfwd(_unrolled_loss(problem, steps))(lam),
            steps,
            steps * lam.numel(),
            0,
        )
    )


def _implicit(solve: Callable[[Callable, Tensor, BilevelProblem], tuple[Tensor, int]]) -> Method:
    """dF/dλ = ∂_λL_val − ∂²_{λw}L_train q at w*, q ≈ (∂²_ww L_train)⁻¹ ∂_wL_val from `solve`."""

    def compute(problem: BilevelProblem, lam: Tensor) -> tuple:
        w = problem.inner_solution(lam)
        val_w, val_lam = torch.func.grad(problem.val_loss, argnums=(0, 1))(w, lam)
        _, transposed = torch.func.vjp(lambda u: problem.train_grad(u, lam), w)
        hvp = lambda v: transposed(v)[0]  # the Hessian is symmetric: vᵀH = (Hv)ᵀ
        q, products = solve(hvp, val_w, problem)
        mixed = torch.func.grad(lambda at: problem.train_grad(w, at) @ q)(lam)  # ∂²_{λw}L_train q
        return val_lam - mixed, 0, products + 1, 1

    return _timed(compute)


def ift_exact() -> Method:
    """Implicit function theorem with the Hessian formed (dim(w) products) and solved exactly."""

    def solve(hvp, b, problem):
        hessian = torch.func.vmap(hvp)(torch.eye(b.numel(), dtype=b.dtype))  # symmetric: rows = columns
        return torch.linalg.solve(hessian, b), b.numel()

    return _implicit(solve)


def ift_cg(iters: int = 20) -> Method:
    """Implicit function theorem with k conjugate-gradient iterations (Hestenes & Stiefel 1952),
    exact after dim(w) of them in exact arithmetic."""
    _check_positive("ift_cg", iters=iters)

    def solve(hvp, b, problem):
        counted = _Counted(hvp)
        return conjugate_gradient(counted, b, iters), counted.calls

    return _implicit(solve)


def ift_neumann(terms: int = 200, alpha: float | None = None) -> Method:
    """Implicit function theorem with H⁻¹ ≈ α Σ_{j<J} (I − αH)^j (Lorraine et al. 2020), α the
    problem's inner step size unless given; the error shrinks like ρ(I − αH)^J."""
    _check_positive("ift_neumann", terms=terms)
    if alpha is not None and alpha <= 0:
        raise ValueError(f"ift_neumann: alpha={alpha} must be > 0")

    def solve(hvp, b, problem):
        counted = _Counted(hvp)
        return neumann_series(counted, b, problem.inner_lr if alpha is None else alpha, terms), counted.calls

    return _implicit(solve)


def finite_diff(eps: float = 1e-4) -> Method:
    """Central differences (F(λ + εe_i) − F(λ − εe_i))/2ε per coordinate, F with w* solved
    accurately: error O(ε²) from truncation plus O(u/ε) from rounding."""
    if eps <= 0:
        raise ValueError(f"finite_diff: eps={eps} must be > 0")

    def compute(problem: BilevelProblem, lam: Tensor) -> tuple:
        n = lam.numel()
        steps = eps * torch.eye(n, dtype=lam.dtype).reshape(n, *lam.shape)
        losses = torch.func.vmap(problem.outer_loss)(torch.cat([lam + steps, lam - steps]))
        return ((losses[:n] - losses[n:]) / (2 * eps)).reshape(lam.shape), 0, 0, 2 * n

    return _timed(compute)


class _Counted:
    """A matrix-vector product that counts its calls."""

    def __init__(self, matvec: Callable[[Tensor], Tensor]):
        self.matvec, self.calls = matvec, 0

    def __call__(self, v: Tensor) -> Tensor:
        self.calls += 1
        return self.matvec(v)


def _check_positive(method: str, **budgets: int) -> None:
    for name, value in budgets.items():
        if value < 1:
            raise ValueError(f"{method}: {name}={value} must be >= 1")


def relative_error(value: Tensor, reference: Tensor) -> float:
    """‖value − reference‖ / ‖reference‖ (the absolute error when the reference is zero)."""
    scale = reference.norm().item()
    error = (value - reference).norm().item()
    return error / scale if scale > 0 else error
