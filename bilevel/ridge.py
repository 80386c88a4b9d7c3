"""`ridge`: tune the log L2 weight λ of linear regression on validation data; all in closed form.

L_train(w, λ) = ½‖Xw − y‖² + ½e^λ‖w‖², L_val(w) = ½ mean((X_val w − y_val)²) (no λ), so
w*(λ) = (XᵀX + e^λ I)⁻¹Xᵀy, dw*/dλ = −e^λ (XᵀX + e^λ I)⁻¹ w*, and dF/dλ = ∇_w L_val(w*)ᵀ dw*/dλ:
the exact answer every hypergradient method is checked against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from bilevel.problem import BilevelProblem
from bilevel.solvers import solve_or_nan


@dataclass(frozen=True, eq=False)
class Ridge(BilevelProblem):
    x_train: Tensor  # (n, d)
    y_train: Tensor  # (n,)
    x_val: Tensor  # (m, d)
    y_val: Tensor  # (m,)
    lam0: Tensor  # ()
    lambda_range: tuple[float, float]
    name: str = "ridge"

    @property
    def w0(self) -> Tensor:
        return self.x_train.new_zeros(self.x_train.shape[1])

    @cached_property
    def gram(self) -> Tensor:  # XᵀX, (d, d)
        return self.x_train.T @ self.x_train

    @cached_property
    def inner_lr(self) -> float:
        """1/L for L the largest curvature of L_train anywhere on lambda_range."""
        return 1.0 / (torch.linalg.eigvalsh(self.gram).max().item() + math.exp(self.lambda_range[1]))

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return 0.5 * (self.x_train @ w - self.y_train).square().sum() + 0.5 * lam.exp() * w.square().sum()

    def train_grad(self, w: Tensor, lam: Tensor) -> Tensor:
        """(XᵀX + e^λ I)w − Xᵀy."""
        return self.gram @ w - self.x_train.T @ self.y_train + lam.exp() * w

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return 0.5 * (self.x_val @ w - self.y_val).square().mean()

    def _regularised_gram(self, lam: Tensor) -> Tensor:  # XᵀX + e^λ I, (d, d)
        return self.gram + lam.exp() * torch.eye(self.gram.shape[0], dtype=self.gram.dtype)

    def inner_solution(self, lam: Tensor) -> Tensor:
        """w*(λ) = (XᵀX + e^λ I)⁻¹Xᵀy."""
        return solve_or_nan(self._regularised_gram(lam), self.x_train.T @ self.y_train)

    def best_response_slope(self, lam: Tensor) -> Tensor:
        """dw*/dλ = −e^λ (XᵀX + e^λ I)⁻¹ w*(λ)."""
        return -lam.exp() * solve_or_nan(self._regularised_gram(lam), self.inner_solution(lam))

    def hypergradient(self, lam: Tensor) -> Tensor:
        """dF/dλ = ∇_w L_val(w*)ᵀ dw*/dλ, ∇_w L_val(w) = X_valᵀ(X_val w − y_val)/m."""
        w = self.inner_solution(lam)
        val_grad = self.x_val.T @ (self.x_val @ w - self.y_val) / self.x_val.shape[0]
        return val_grad @ self.best_response_slope(lam)


def ridge(
    dim: int = 20, train: int = 30, val: int = 500, noise: float = 3.0, lam0: float = 0.0, seed: int = 0
) -> Ridge:
    """Gaussian features, y = x·w_true + noise·ε with w_true ~ N(0, I): the best L2 weight is
    near dim·noise²/‖w_true‖² ≈ noise², so F has an interior minimum near λ = 2 log(noise)."""
    if min(dim, train, val) < 1:
        raise ValueError(f"ridge: dim={dim}, train={train}, val={val} must all be >= 1")
    if noise <= 0:
        raise ValueError(f"ridge: noise={noise} must be > 0 (noiseless data want no regularisation)")
    generator = torch.Generator().manual_seed(seed)
    w_true = torch.randn(dim, generator=generator, dtype=torch.float64)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
        return x, x @ w_true + noise * torch.randn(n, generator=generator, dtype=torch.float64)

    (x_train, y_train), (x_val, y_val) = draw(train), draw(val)
    centre = 2 * torch.tensor(noise).log().item()
    return Ridge(
        x_train,
        y_train,
        x_val,
        y_val,
        torch.tensor(lam0, dtype=torch.float64),
        lambda_range=(min(lam0, centre) - 2.0, max(lam0, centre) + 2.0),
    )
