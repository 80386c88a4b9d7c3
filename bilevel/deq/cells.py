"""The maps f(z, x) whose fixed points the DEQs take, with the linear one's closed forms.

Shapes: z (B, d), x (B, p), rows are examples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from bilevel.deq.layer import Backward, equilibrium
from bilevel.deq.solvers import SolverResult


class LinearCell(nn.Module):
    """f(z, x) = Wz + Ux + b with ρ(W) = `radius` < 1, so z* = (I − W)⁻¹(Ux + b) is unique and fixed-point
    iteration converges like radius^k. W is a seeded Gaussian matrix rescaled to that spectral radius."""

    def __init__(
        self,
        dim: int,
        inputs: int,
        radius: float = 0.9,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        super().__init__()
        if not 0 <= radius < 1:
            raise ValueError(f"radius={radius}; valid: 0 <= radius < 1 (a contraction)")
        draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=dtype)
        w = draw(dim, dim)
        w = w * (radius / torch.linalg.eigvals(w).abs().max())
        self.W = nn.Parameter(w)
        self.U = nn.Parameter(draw(dim, inputs) / inputs**0.5)
        self.b = nn.Parameter(draw(dim))

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        return z @ self.W.T + x @ self.U.T + self.b

    def fixed_point(self, x: Tensor) -> Tensor:
        """z* = (I − W)⁻¹(Ux + b), one row per example."""
        eye = torch.eye(len(self.W), dtype=self.W.dtype)
        return torch.linalg.solve(eye - self.W, (x @ self.U.T + self.b).T).T

    def fixed_point_gradient(self, x: Tensor, grad_z: Tensor) -> dict[str, Tensor]:
        """dL/d(W, U, b) from ∂L/∂z* in closed form: with u = (I − W)⁻ᵀ ∂L/∂z* per example,
        dL/dW = Σ u z*ᵀ, dL/dU = Σ u xᵀ, dL/db = Σ u."""
        with torch.no_grad():
            eye = torch.eye(len(self.W), dtype=self.W.dtype)
            u = torch.linalg.solve((eye - self.W).T, grad_z.T).T  # (B, d)
            z_star = self.fixed_point(x)
            return {"W": u.T @ z_star, "U": u.T @ x, "b": u.sum(0)}


class ReluCell(nn.Module):
    """f(z, x) = W₂ᵀ ReLU(W₁z + Ux + b), width hidden units, as in Bai, Koltun & Kolter (2021, §5.1).

    W₁ and W₂ start Gaussian with std `scale`/√width and √(1/dim)·`scale`, small enough that f
    starts a contraction."""

    def __init__(
        self,
        dim: int,
        inputs: int,
        width: int = 50,
        scale: float = 0.5,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=dtype)
        self.W1 = nn.Parameter(draw(width, dim) * scale / dim**0.5)
        self.W2 = nn.Parameter(draw(width, dim) * scale / width**0.5)
        self.U = nn.Parameter(draw(width, inputs) / inputs**0.5)
        self.b = nn.Parameter(torch.zeros(width, dtype=dtype))

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        return torch.relu(z @ self.W1.T + x @ self.U.T + self.b) @ self.W2


class LinearCheck(NamedTuple):
    forward_error: float  # ‖z − z*‖/‖z*‖ of the forward solve
    grad_error: float  # ‖g − g*‖/‖g*‖ over (W, U, b) together
    grads: list[Tensor]  # the backward's dL/dW, dL/dU, dL/db
    solve: SolverResult


def check_linear(
    cell: LinearCell, x: Tensor, target: Tensor, solver: Callable, backward: Backward
) -> LinearCheck:
    """One solve and backward of L = ½‖z* − target‖² (summed over examples) on the linear cell,
    measured against z* = (I − W)⁻¹(Ux + b) and the closed-form gradient."""
    z_star = cell.fixed_point(x)
    exact = cell.fixed_point_gradient(x, z_star - target)
    cell.zero_grad()
    z, solve = equilibrium(cell, x, torch.zeros_like(z_star), solver, backward)
    (0.5 * (z - target).pow(2).sum()).backward()
    grads = [p.grad.clone() for _, p in cell.named_parameters()]
    flat = lambda tensors: torch.cat([t.reshape(-1) for t in tensors])
    reference = flat([exact[name] for name, _ in cell.named_parameters()])
    grad_error = ((flat(grads) - reference).norm() / reference.norm()).item()
    return LinearCheck(((solve.z - z_star).norm() / z_star.norm()).item(), grad_error, grads, solve)
