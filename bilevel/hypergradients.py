"""Hypergradient methods: dF/dλ of F(λ) = L_val(w*(λ), λ), each a factory closing over its budget.

A method is called as `method(problem, λ, w=None)` and returns a `Hypergradient`: the value (shaped
like λ) and what it cost. `w` is the inner iterate the method works from, given when an outer loop
keeps its own (DARTS alternates one weight step with one step on λ; a deep equilibrium model's
fixed point comes from its own solver); left out, each method takes its own default. Three
families:

- differentiate the inner optimisation, F_K(λ) = L_val(w_K(λ), λ) after K inner steps from w
  (default w₀): `unrolled` (reverse mode), `truncated` (reverse mode through the last K of T steps
  only), `forward` (forward mode); they converge to dF/dλ as w_K → w*, and on `lr_horizon`, where
  λ acts through the optimiser only, they are the only ones that see it;
- the implicit function theorem at an inner solution w (default the accurate one,
  `problem.inner_solution(λ)`), dF/dλ = ∂_λL_val − ∂²_{λw}L_train (∂²_ww L_train)⁻¹ ∂_wL_val
  (Pedregosa 2016; Lorraine et al. 2020), the inverse-Hessian-vector product by `ift_exact`
  (forming the Hessian), `ift_cg` or `ift_neumann`; and `finite_diff`, central differences of F,
  the check;
- DARTS' approximations at the current w (Liu et al. 2019): `first_order` drops the implicit term,
  `one_step` differentiates one virtual inner step.

Costs: `inner_steps` taken, `products` (Hessian-, Jacobian- and their transposed vector products,
each about one gradient; a finite-difference product counts its two gradients), `solves` of the
inner problem to full accuracy, and wall `seconds`. Each method's docstring states its count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from bilevel.problem import BilevelProblem, unroll
from bilevel.solvers import conjugate_gradient, dense_solve, neumann_series


class Hypergradient(NamedTuple):
    value: Tensor  # dF/dλ, shaped like λ
    inner_steps: int
    products: int
    solves: int
    seconds: float


@runtime_checkable
class Method(Protocol):
    """A hypergradient method: `method(problem, λ, w=None)` returns a `Hypergradient`, its
    estimate of dF/dλ for F(λ) = L_val(w*(λ), λ) (the shape of λ) with what it cost (inner steps,
    Hessian- and Jacobian-vector products, linear solves, seconds). `w` is the inner iterate to
    take it at (DARTS' alternating scheme); without it the method finds w itself. `make_method`
    builds one by name from `METHODS`."""

    def __call__(self, problem: BilevelProblem, lam: Tensor, w: Tensor | None = None) -> Hypergradient: ...


def _timed(compute: Callable[[BilevelProblem, Tensor, Tensor | None], tuple]) -> Method:
    def method(problem: BilevelProblem, lam: Tensor, w: Tensor | None = None) -> Hypergradient:
        start = time.perf_counter()
        value, inner_steps, products, solves = compute(
            problem, lam.detach(), None if w is None else w.detach()
        )
        return Hypergradient(value.detach(), inner_steps, products, solves, time.perf_counter() - start)

    return method


def _unrolled_loss(problem: BilevelProblem, steps: int, w: Tensor | None = None, first: int = 0):
    """F_K as a function of λ: L_val after `steps` inner steps t = first, ... from w."""
    return lambda lam: problem.val_loss(unroll(problem, lam, steps, w, first), lam)


def unrolled(steps: int = 200) -> Method:
    """Reverse mode through K inner steps from w: dF_K/dλ (Maclaurin et al. 2015; Franceschi et
    al. 2017, reverse-mode hypergradient). Cost: K inner steps and K products back through them."""
    _check_positive("unrolled", steps=steps)
    return _timed(
        lambda problem, lam, w: (torch.func.grad(_unrolled_loss(problem, steps, w))(lam), steps, steps, 0)
    )


def truncated(steps: int = 200, last: int = 10) -> Method:
    """Truncated back-propagation: T = `steps` inner steps, reverse mode through the last K =
    `last` of them only, w_{T−K} held constant; biased, less so as K grows (Shaban et al. 2019).
    Cost: T inner steps and K products."""
    _check_positive("truncated", steps=steps, last=last)
    if last > steps:
        raise ValueError(f"truncated: last={last} exceeds steps={steps}")

    def compute(problem: BilevelProblem, lam: Tensor, w: Tensor | None) -> tuple:
        held = unroll(problem, lam, steps - last, w)
        return torch.func.grad(_unrolled_loss(problem, last, held, steps - last))(lam), steps, last, 0

    return _timed(compute)


def forward(steps: int = 200) -> Method:
    """Forward mode through K inner steps: dF_K/dλ one tangent per coordinate of λ, carried along
    with w_t (Franceschi et al. 2017, forward-mode hypergradient); the same number as `unrolled`
    without storing the trajectory. Cost: K inner steps and K·dim(λ) Jacobian-vector products."""
    _check_positive("forward", steps=steps)
    return _timed(
        lambda problem, lam, w: (
            torch.func.jacfwd(_unrolled_loss(problem, steps, w))(lam),
            steps,
            steps * lam.numel(),
            0,
        )
    )


def _implicit(solve: Callable[[Callable, Tensor, BilevelProblem], tuple[Tensor, int]]) -> Method:
    """dF/dλ = ∂_λL_val − ∂²_{λw}L_train q at w (default w*), q ≈ (∂²_ww L_train)⁻¹ ∂_wL_val from
    `solve`, plus the one mixed product; a solve of the inner problem when w is not given."""

    def compute(problem: BilevelProblem, lam: Tensor, w: Tensor | None) -> tuple:
        solves = int(w is None)
        w = problem.inner_solution(lam) if w is None else w
        val_w, val_lam = torch.func.grad(problem.val_loss, argnums=(0, 1))(w, lam)
        _, transposed = torch.func.vjp(lambda u: problem.train_grad(u, lam), w)
        hvp = lambda v: transposed(v)[0]  # the Hessian is symmetric: vᵀH = (Hv)ᵀ
        q, products = solve(hvp, val_w, problem)
        mixed = mixed_product(problem, w, lam, q)
        return val_lam - mixed, 0, products + 1, solves

    return _timed(compute)


def ift_exact() -> Method:
    """Implicit function theorem with the Hessian formed and solved exactly. Cost: dim(w) + 1
    products."""
    return _implicit(lambda hvp, b, problem: (dense_solve(hvp, b), b.numel()))


def ift_cg(iters: int = 20, tol: float = 0.0) -> Method:
    """Implicit function theorem with at most k = `iters` conjugate-gradient iterations (Hestenes &
    Stiefel 1952), fewer once the residual is below `tol` times ‖∂_wL_val‖; exact after dim(w)
    iterations in exact arithmetic. Cost: the iterations taken + 1 products."""
    _check_positive("ift_cg", iters=iters)
    if not 0 <= tol < 1:
        raise ValueError(
            f"ift_cg: tol={tol}: a relative residual >= 1 is met by q = 0 before any iteration; "
            "valid: 0 <= tol < 1"
        )

    def solve(hvp, b, problem):
        counted = _Counted(hvp)
        return conjugate_gradient(counted, b, iters, tol), counted.calls

    return _implicit(solve)


def ift_neumann(terms: int = 200, alpha: float | None = None) -> Method:
    """Implicit function theorem with H⁻¹ ≈ α Σ_{j<J} (I − αH)^j (Lorraine et al. 2020), α the
    problem's inner step size unless given; the error shrinks like ρ(I − αH)^J. Cost: J products."""
    _check_positive("ift_neumann", terms=terms)
    if alpha is not None and alpha <= 0:
        raise ValueError(f"ift_neumann: alpha={alpha} must be > 0")

    def solve(hvp, b, problem):
        counted = _Counted(hvp)
        return neumann_series(counted, b, problem.inner_lr if alpha is None else alpha, terms), counted.calls

    return _implicit(solve)


def finite_diff(eps: float = 1e-4) -> Method:
    """Central differences (F(λ + εe_i) − F(λ − εe_i))/2ε per coordinate, F with w* solved
    accurately: error O(ε²) from truncation plus O(u/ε) from rounding. It ignores w. Cost: 2·dim(λ)
    solves of the inner problem."""
    if eps <= 0:
        raise ValueError(f"finite_diff: eps={eps} must be > 0")

    def compute(problem: BilevelProblem, lam: Tensor, w: Tensor | None) -> tuple:
        n = lam.numel()
        steps = eps * torch.eye(n, dtype=lam.dtype).reshape(n, *lam.shape)
        losses = torch.func.vmap(problem.outer_loss)(torch.cat([lam + steps, lam - steps]))
        return ((losses[:n] - losses[n:]) / (2 * eps)).reshape(lam.shape), 0, 0, 2 * n

    return _timed(compute)


def first_order() -> Method:
    """DARTS' first-order approximation (Liu et al. 2019): ∂_λL_val(w, λ) at the current w (default
    w*), the implicit term −∂²_{λw}L_train (∂²_ww L_train)⁻¹ ∂_wL_val dropped, as if w did not depend
    on λ. Cost: no products; a solve of the inner problem when w is not given."""

    def compute(problem: BilevelProblem, lam: Tensor, w: Tensor | None) -> tuple:
        solves = int(w is None)
        w = problem.inner_solution(lam) if w is None else w
        return torch.func.grad(problem.val_loss, argnums=1)(w, lam), 0, 0, solves

    return _timed(compute)


def one_step(xi: float | None = None, hvp: str = "fd") -> Method:
    """DARTS' second-order approximation (Liu et al. 2019): w* ≈ w′ = w − ξ∇_wL_train(w, λ), so
    dF/dλ ≈ ∂_λL_val(w′, λ) − ξ ∂²_{λw}L_train(w, λ) ∇_wL_val(w′, λ). The mixed product by central
    differences, [∇_λL_train(w + εv, λ) − ∇_λL_train(w − εv, λ)] / 2ε with v = ∇_wL_val(w′, λ) and
    ε = 0.01/‖v‖ as in the paper (`hvp="fd"`), or exactly by autograd (`hvp="exact"`). ξ is the
    problem's inner step size unless given; ξ = 0 is `first_order`. Cost: one inner step and one
    product (two gradients for "fd"); a solve of the inner problem when w is not given."""
    if xi is not None and not xi >= 0:
        raise ValueError(f"one_step: xi={xi} must be >= 0")
    if hvp not in ("fd", "exact"):
        raise ValueError(f"one_step: hvp={hvp!r}; valid: fd, exact")

    def compute(problem: BilevelProblem, lam: Tensor, w: Tensor | None) -> tuple:
        solves = int(w is None)
        w = problem.inner_solution(lam) if w is None else w
        step = problem.inner_lr if xi is None else xi
        virtual = w - step * problem.train_grad(w, lam)
        val_w, val_lam = torch.func.grad(problem.val_loss, argnums=(0, 1))(virtual, lam)
        mixed = mixed_product(problem, w, lam, val_w, finite_difference=hvp == "fd")
        return val_lam - step * mixed, 1, 2 if hvp == "fd" else 1, solves

    return _timed(compute)


def mixed_product(
    problem: BilevelProblem, w: Tensor, lam: Tensor, v: Tensor, finite_difference: bool = False
) -> Tensor:
    """∂²_{λw}L_train(w, λ) v, shaped like λ: exactly by autograd, or by DARTS' central difference
    [∇_λL_train(w + εv, λ) − ∇_λL_train(w − εv, λ)] / 2ε, ε = 0.01/‖v‖ (Liu et al. 2019), whose error
    is O(ε²‖v‖³) for a smooth loss. A zero v gives zero."""
    if not finite_difference:
        return torch.func.grad(lambda at: problem.train_grad(w, at) @ v)(lam)
    norm = v.norm()
    if norm == 0:
        return torch.zeros_like(lam)
    eps = 0.01 / norm
    grad_lam = torch.func.grad(problem.train_loss, argnums=1)
    return (grad_lam(w + eps * v, lam) - grad_lam(w - eps * v, lam)) / (2 * eps)


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
