"""The deep equilibrium layer, z* = f(z*, x) (Bai, Kolter & Koltun 2019), and its backward passes.

`equilibrium(f, x, z0, solver, backward)` finds z* with a forward solver (bilevel.deq.solvers)
and returns it attached to the autograd graph by one of three backward passes, each a factory
closing over its budget:

- `ift(adjoint, iters, tol)`: the implicit function theorem. With J = ∂f/∂z at z*,
  dL/dθ = (∂f/∂θ)ᵀ u where (I − Jᵀ) u = ∂L/∂z*; the adjoint u is solved by bilevel.solvers
  (`dense_solve`, `conjugate_gradient` on the normal equations, or `neumann_series`). Memory does
  not grow with the forward iterations: only the one call f(z*, x) is recorded.
- `phantom(steps, damping)`: the k-step phantom gradient (Geng et al. 2021): from z* detached,
  z_{i+1} = τ f(z_i, x) + (1 − τ) z_i for k steps, differentiated through those steps.
- `unrolled()`: reverse mode through the forward solver's own iterations (for checking).

Costs are counted in vector-Jacobian products (VJPs) of f, each about one evaluation of f.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.deq.solvers import SolverResult
from bilevel.solvers import conjugate_gradient, dense_solve, neumann_series

Cell = Callable[[Tensor, Tensor], Tensor]  # f(z, x)


class Equilibrium(NamedTuple):
    z: Tensor  # z*, attached to the graph by the backward pass
    solve: SolverResult  # the forward solve: residual, nfe, converged, trace


Backward = Callable[[Cell, Tensor, Tensor, Callable], Equilibrium]

ADJOINT_SOLVERS = ("exact", "cg", "neumann")


def equilibrium(f: Cell, x: Tensor, z0: Tensor, solver: Callable, backward: Backward) -> Equilibrium:
    """z* = f(z*, x) found by `solver` from z0, differentiable by `backward` (ift, phantom, unrolled)."""
    return backward(f, x, z0, solver)


def ift(adjoint: str = "exact", iters: int = 50, tol: float = 0.0) -> Backward:
    """Implicit differentiation: dL/dθ = (∂f/∂θ)ᵀ u, (I − Jᵀ) u = ∂L/∂z* (Bai et al. 2019).

    The forward solve runs without a graph; the output is f(z*, x) recorded once, and a hook on it
    replaces the incoming ∂L/∂z* by u before it flows into f's parameters and x. Adjoint cost:
    `exact` dim(z) VJPs (the matrix formed, then an LU solve; small problems and checks);
    `cg` conjugate gradient on (I − J)(I − Jᵀ) u = (I − J) g, one VJP and one JVP per iteration plus
    one JVP, at most `iters` iterations, stopping at ‖residual‖ ≤ tol·‖rhs‖; `neumann`
    u = Σ_{j<iters} (Jᵀ)^j g, iters − 1 VJPs (converges when ρ(J) < 1). Plus one VJP through
    f(z*, x) for the parameters. The adjoint solve runs outside autograd: first derivatives only
    (no create_graph through it).
    """
    if adjoint not in ADJOINT_SOLVERS:
        raise ValueError(f"unknown adjoint solver {adjoint!r}; valid: {', '.join(ADJOINT_SOLVERS)}")
    if iters < 1 or not tol >= 0:
        raise ValueError(f"ift: iters={iters}, tol={tol}; valid: iters >= 1, tol >= 0")

    def backward(f: Cell, x: Tensor, z0: Tensor, solver: Callable) -> Equilibrium:
        with torch.no_grad():
            solve = solver(lambda z: f(z, x), z0)
        z_star = solve.z.detach()
        z = f(z_star.requires_grad_(torch.is_grad_enabled()), x)
        if z.requires_grad:
            z.register_hook(lambda grad: adjoint_solve(f, x, z_star.detach(), grad, adjoint, iters, tol))
        return Equilibrium(z, solve)

    return backward


def adjoint_solve(
    f: Cell, x: Tensor, z_star: Tensor, grad: Tensor, adjoint: str, iters: int, tol: float = 0.0
) -> Tensor:
    """u with (I − Jᵀ) u = grad, J = ∂f/∂z at z* (costs in `ift`'s docstring)."""
    if grad is None:  # autograd passes None where no gradient reaches z*
        return None
    with torch.no_grad():
        x = x.detach()
        _, vjp = torch.func.vjp(lambda z: f(z, x), z_star)
        shape = z_star.shape

        def matvec(v: Tensor) -> Tensor:  # (I − Jᵀ) v
            return v - vjp(v.reshape(shape))[0].reshape(-1)

        g = grad.reshape(-1)
        if adjoint == "exact":
            u = dense_solve(matvec, g)
        elif adjoint == "neumann":
            u = neumann_series(matvec, g, alpha=1.0, terms=iters)
        else:

            def rmatvec(v: Tensor) -> Tensor:  # (I − J) v
                return v - torch.func.jvp(lambda z: f(z, x), (z_star,), (v.reshape(shape),))[1].reshape(-1)

            u = conjugate_gradient(lambda v: rmatvec(matvec(v)), rmatvec(g), iters, tol)
    return u.reshape(grad.shape)


def phantom(steps: int = 5, damping: float = 0.5) -> Backward:
    """The k-step phantom gradient (Geng et al. 2021): from z₀ = z* detached,
    z_{i+1} = τ f(z_i, x) + (1 − τ) z_i for k = `steps` steps, reverse mode through them. With
    τ = 1 and k → ∞ it tends to the IFT gradient (where ρ(J) < 1); small k is a cheap, damped,
    truncated Neumann series. Cost: k extra evaluations of f forward, k VJPs backward, and the
    memory of k steps."""
    if steps < 1 or not 0 < damping <= 1:
        raise ValueError(f"phantom: steps={steps}, damping={damping}; valid: steps >= 1, 0 < damping <= 1")

    def backward(f: Cell, x: Tensor, z0: Tensor, solver: Callable) -> Equilibrium:
        with torch.no_grad():
            solve = solver(lambda z: f(z, x), z0)
        z = solve.z.detach()
        for _ in range(steps):
            z = damping * f(z, x) + (1 - damping) * z if damping != 1 else f(z, x)
        return Equilibrium(z, solve)

    return backward


def unrolled() -> Backward:
    """Reverse mode through every iteration of the forward solver (Anderson's and Broyden's
    inner linear algebra included): the gradient of the computed z_K, which tends to the IFT one
    as z_K → z*. Cost: nfe VJPs and memory growing with nfe."""

    def backward(f: Cell, x: Tensor, z0: Tensor, solver: Callable) -> Equilibrium:
        solve = solver(lambda z: f(z, x), z0)
        return Equilibrium(solve.z, solve._replace(z=solve.z.detach()))

    return backward


BACKWARDS: dict[str, Callable[..., Backward]] = {"ift": ift, "phantom": phantom, "unrolled": unrolled}
