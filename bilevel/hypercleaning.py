"""`hypercleaning`: learn per-example weights σ(λ_i) that clean a training set with flipped labels
(data hyper-cleaning, Franceschi et al. 2017).

L_train(w, λ) = (1/n) Σ_i σ(λ_i) ℓ(x_iᵀw, y_i) + (μ/2)‖w‖² with ℓ the logistic loss, strongly
convex in w through μ, and L_val(w) = the clean validation cross-entropy. The inner problem is
small (w has dim + 1 entries with the bias), so Newton's method solves it to machine precision,
and the reference hypergradient is the implicit-function one there with an exact solve.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel.problem import BilevelProblem
from bilevel.solvers import solve_or_nan

_NEWTON_STEPS = 12  # machine precision after 5 on these data; a fixed count, as the solve runs under vmap


@dataclass(frozen=True, eq=False)
class HyperCleaning(BilevelProblem):
    x_train: Tensor  # (n, d + 1), the last column ones (the bias)
    y_train: Tensor  # (n,) labels in {0, 1}, some flipped
    flipped: Tensor  # (n,) bool: which training labels were flipped
    x_val: Tensor  # (m, d + 1), clean
    y_val: Tensor  # (m,)
    x_test: Tensor  # (k, d + 1), clean
    y_test: Tensor  # (k,)
    l2: float  # μ
    lam0: Tensor  # (n,)
    name: str = "hypercleaning"

    @property
    def w0(self) -> Tensor:
        return self.x_train.new_zeros(self.x_train.shape[1])

    @cached_property
    def curvature(self) -> float:
        """¼λ_max(XᵀX/n), the data term's largest curvature: the logistic loss has curvature at
        most ¼ and the weights are below 1."""
        gram = self.x_train.T @ self.x_train / self.x_train.shape[0]
        return 0.25 * torch.linalg.eigvalsh(gram).max().item()

    @cached_property
    def inner_lr(self) -> float:
        """1/L, L = the data term's largest curvature + μ."""
        return 1.0 / (self.curvature + self.l2)

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        losses = F.binary_cross_entropy_with_logits(self.x_train @ w, self.y_train, reduction="none")
        return (torch.sigmoid(lam) * losses).mean() + 0.5 * self.l2 * w.square().sum()

    def train_grad(self, w: Tensor, lam: Tensor) -> Tensor:
        """(1/n) Xᵀ(σ(λ) ⊙ (σ(Xw) − y)) + μw."""
        residual = torch.sigmoid(lam) * (torch.sigmoid(self.x_train @ w) - self.y_train)
        return self.x_train.T @ residual / self.x_train.shape[0] + self.l2 * w

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.x_val @ w, self.y_val)

    def inner_solution(self, lam: Tensor) -> Tensor:
        """Newton's method from w₀: w ← w − (∂²_ww L_train)⁻¹ ∇_w L_train."""
        w = self.w0
        for _ in range(_NEWTON_STEPS):
            w = w - solve_or_nan(self.train_hessian(w, lam), self.train_grad(w, lam))
        return w

    def train_hessian(self, w: Tensor, lam: Tensor) -> Tensor:
        """∂²_ww L_train = (1/n) Xᵀ diag(σ(λ) ⊙ p(1 − p)) X + μI, p = σ(Xw)."""
        p = torch.sigmoid(self.x_train @ w)
        curvature = torch.sigmoid(lam) * p * (1 - p) / self.x_train.shape[0]
        return (self.x_train.T * curvature) @ self.x_train + self.l2 * torch.eye(w.numel(), dtype=w.dtype)

    def hypergradient(self, lam: Tensor) -> Tensor:
        """−∂²_{λw}L_train (∂²_ww L_train)⁻¹ ∇_w L_val at the Newton solution (L_val has no λ)."""
        w = self.inner_solution(lam)
        direction = solve_or_nan(self.train_hessian(w, lam), torch.func.grad(self.val_loss)(w, lam))
        return -torch.func.grad(lambda at: self.train_grad(w, at) @ direction)(lam)

    def accuracy(self, w: Tensor, on: str = "test") -> float:
        x, y = (self.x_test, self.y_test) if on == "test" else (self.x_val, self.y_val)
        return ((x @ w > 0).to(y.dtype) == y).to(torch.float64).mean().item()

    def clean_auc(self, lam: Tensor) -> float:
        """How well the weights σ(λ_i) rank clean examples above flipped ones."""
        return auc(lam, ~self.flipped)


def auc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counting ½
    (the Mann-Whitney statistic)."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"auc needs both classes; got {len(pos)} positives, {len(neg)} negatives")
    above = (pos[:, None] > neg[None, :]).to(torch.float64).mean()
    ties = (pos[:, None] == neg[None, :]).to(torch.float64).mean()
    return (above + 0.5 * ties).item()


def hypercleaning(
    dim: int = 10,
    train: int = 200,
    val: int = 100,
    test: int = 2000,
    flip_fraction: float = 0.3,
    l2: float = 1e-2,
    seed: int = 0,
) -> HyperCleaning:
    """Gaussian features labelled by a random hyperplane y = 1[xᵀw_true > 0], then a fraction
    `flip_fraction` of the training labels flipped; validation and test labels are clean."""
    if min(dim, train, val, test) < 1:
        raise ValueError(f"hypercleaning: dim={dim}, train={train}, val={val}, test={test} must all be >= 1")
    if not 0 < flip_fraction < 0.5:
        raise ValueError(f"hypercleaning: flip_fraction={flip_fraction} must lie in (0, 0.5)")
    if l2 <= 0:
        raise ValueError(f"hypercleaning: l2={l2} must be > 0 (it makes the inner problem strongly convex)")
    generator = torch.Generator().manual_seed(seed)
    w_true = torch.randn(dim, generator=generator, dtype=torch.float64)

    def draw(n: int) -> tuple[Tensor, Tensor]:
        x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
        return torch.cat([x, x.new_ones(n, 1)], dim=1), (x @ w_true > 0).to(torch.float64)

    if round(flip_fraction * train) < 1:
        raise ValueError(
            f"hypercleaning: flip_fraction={flip_fraction} flips round({flip_fraction}·{train}) = 0 of the "
            f"train={train} labels: nothing to clean, and no flipped example for the clean AUC to rank; "
            "valid: flip_fraction·train > 0.5"
        )
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = draw(train), draw(val), draw(test)
    flipped = torch.zeros(train, dtype=torch.bool)
    flipped[torch.randperm(train, generator=generator)[: round(flip_fraction * train)]] = True
    y_train = torch.where(flipped, 1 - y_train, y_train)
    problem = HyperCleaning(
        x_train, y_train, flipped, x_val, y_val, x_test, y_test, l2, torch.zeros(train, dtype=torch.float64)
    )
    floor = float(f"{torch.finfo(torch.float64).eps * problem.curvature:.3g}")
    if l2 < floor:
        raise ValueError(
            f"hypercleaning: l2={l2} is lost in float64's rounding of the data term's curvature, up to "
            f"¼λ_max(XᵀX/n) = {problem.curvature:.3g}, leaving the inner Hessian singular once train <= dim "
            f"or the data separate; valid: l2 >= 2⁻⁵² of it, {floor:g}"
        )
    return problem
