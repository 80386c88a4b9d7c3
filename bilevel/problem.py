"""What a bilevel problem is: min_λ F(λ) = L_val(w*(λ), λ), w*(λ) = argmin_w L_train(w, λ).

Conventions, shared by every problem and hypergradient method: w and λ are flat float64 tensors
(λ of shape () when it is one number, (n,) otherwise); `inner_step(w, λ, t)` is the t-th step of
the inner optimiser, which unrolled methods differentiate through; `inner_solution(λ)` is the
minimiser of L_train solved accurately, where the implicit function theorem is applied; and
`outer_loss(λ)` and `hypergradient(λ)` are F and dF/dλ known exactly (a closed form) or to high
accuracy, the reference every method is measured against. `train_grad(w, λ)` = ∇_w L_train is
the one gradient every method differentiates.
"""

from __future__ import annotations

import torch
from torch import Tensor


class BilevelProblem:
    """Base of the problems; subclasses set `name`, `w0`, `lam0`, `inner_lr`, the losses and
    `hypergradient`, and `lambda_range` (where to draw F) when λ is one number."""

    name: str
    w0: Tensor  # the inner optimiser's starting point
    lam0: Tensor  # the outer optimiser's starting point
    inner_lr: float  # η of the inner gradient steps, below 1/‖∂²_ww L_train‖ on lambda_range
    lambda_range: tuple[float, float] | None = None

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        raise NotImplementedError

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        raise NotImplementedError

    def train_grad(self, w: Tensor, lam: Tensor) -> Tensor:
        """∇_w L_train(w, λ); problems override it with the closed form, which is cheaper to
        differentiate through many steps."""
        return torch.func.grad(self.train_loss)(w, lam)

    def inner_step(self, w: Tensor, lam: Tensor, t: int) -> Tensor:
        """Gradient descent: w_{t+1} = w_t − η ∇_w L_train(w_t, λ)."""
        return w - self.inner_lr * self.train_grad(w, lam)

    def inner_solution(self, lam: Tensor) -> Tensor:
        raise NotImplementedError

    def outer_loss(self, lam: Tensor) -> Tensor:
        """F(λ) = L_val(w*(λ), λ)."""
        return self.val_loss(self.inner_solution(lam), lam)

    def hypergradient(self, lam: Tensor) -> Tensor:
        raise NotImplementedError


def unroll(
    problem: BilevelProblem, lam: Tensor, steps: int, w: Tensor | None = None, first: int = 0
) -> Tensor:
    """w after `steps` inner steps t = first, first + 1, ... from w (default the problem's w0)."""
    w = problem.w0 if w is None else w
    for t in range(first, first + steps):
        w = problem.inner_step(w, lam, t)
    return w


def outer_loss_curve(problem: BilevelProblem, points: int = 2001) -> tuple[Tensor, Tensor]:
    """F on an even grid over `lambda_range`: (grid, F(grid)), both (points,)."""
    if problem.lambda_range is None:
        raise ValueError(f"problem {problem.name!r} has no scalar λ to grid")
    grid = torch.linspace(*problem.lambda_range, points, dtype=torch.float64)
    losses = torch.func.vmap(problem.outer_loss)(grid)
    return grid, losses
