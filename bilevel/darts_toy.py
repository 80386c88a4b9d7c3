"""`darts_toy`: the bilevel problem of Figure 2 of DARTS (Liu et al. 2019), where every
approximation's fixed point is known.

L_train(w, α) = w² − 2αw + α² = (w − α)², L_val(w, α) = αw − 2α + 1, from (α, w) = (2, −2); α is
the outer variable λ. So w*(α) = α, F(α) = α² − 2α + 1 = (α − 1)², and the optimum is α = 1. The
first-order approximation ∂_αL_val = w − 2 vanishes at α = 2 once w has caught up with w*;
DARTS' one-step approximation through w′ = w − 2ξ(w − α) gives w′ − 2 + 2ξα, zero at
α = 2/(1 + 2ξ), the optimum for ξ = 0.5 only; every exact or converged method gives 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel.problem import BilevelProblem


@dataclass(frozen=True, eq=False)
class DartsToy(BilevelProblem):
    w0: Tensor  # (1,)
    lam0: Tensor  # ()
    inner_lr: float
    lambda_range: tuple[float, float] = (-1.0, 3.0)  # the grid of 2001 points holds α = 1
    name: str = "darts_toy"

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return (w - lam).square().sum()

    def train_grad(self, w: Tensor, lam: Tensor) -> Tensor:
        """2(w − α)."""
        return 2 * (w - lam)

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return lam * w.sum() - 2 * lam + 1

    def inner_solution(self, lam: Tensor) -> Tensor:
        """w*(α) = α."""
        return lam.reshape(1).clone()

    def hypergradient(self, lam: Tensor) -> Tensor:
        """dF/dα = 2(α − 1)."""
        return 2 * (lam - 1)


def darts_toy(alpha0: float = 2.0, w0: float = -2.0, inner_lr: float = 0.25) -> DartsToy:
    """The problem from (α, w) = (`alpha0`, `w0`); inner gradient steps of size `inner_lr`, at most
    1/2 (the inverse curvature of L_train, which reaches w* in one step); also one_step's default ξ."""
    if not 0 < inner_lr <= 0.5:
        raise ValueError(f"darts_toy: inner_lr={inner_lr}; valid: 0 < inner_lr <= 0.5")
    as_tensor = lambda x: torch.tensor(x, dtype=torch.float64)
    return DartsToy(as_tensor([w0]), as_tensor(alpha0), inner_lr)
