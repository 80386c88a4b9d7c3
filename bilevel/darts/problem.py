"""The supernet as a `BilevelProblem`, so that every hypergradient method of the library computes α's
gradient: w is every supernet weight as one flat vector, λ = α flattened, over fixed batches.

L_train(w, α) = CE(f(x_train; w, softmax α), y_train) + (wd/2)‖w‖² + (δ/2)‖w − w̄‖²,
L_val(w, α) = CE(f(x_val; w, softmax α), y_val)            (Liu, Simonyan & Yang 2019, eq. 3–4).

The weight decay wd is part of DARTS's training loss (its virtual step includes it). The proximal
term with anchor w̄ = the current weights (δ = 0 by default) is for the implicit function theorem at
a w that is not a minimum: its gradient vanishes at w = w̄, so first_order and one_step are
unchanged (unrolled methods, which step away from w̄, feel its pull), while it adds
δI to ∂²_ww L_train, making the Hessian of a network (indefinite away from a minimum) positive
definite for CG once δ exceeds its most negative eigenvalue (iMAML's proximal regulariser,
Rajeswaran et al. 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel.darts.supernet import Flat
from bilevel.problem import BilevelProblem


class SupernetProblem(BilevelProblem):
    """L_train and L_val of the supernet `flat` on one training and one validation batch."""

    name = "darts"

    def __init__(
        self,
        flat: Flat,
        train: tuple[Tensor, Tensor],  # x (B, 64), y (B,)
        val: tuple[Tensor, Tensor],
        w: Tensor,  # the current weights: w0 of unrolled methods, and the proximal anchor
        alpha: Tensor,  # (edges, ops): λ0 = α flattened
        inner_lr: float,
        weight_decay: float = 0.0,
        damping: float = 0.0,
    ):
        self.flat, self.train, self.val = flat, train, val
        self.shape = alpha.shape
        self.w0, self.lam0 = w.detach(), alpha.detach().reshape(-1)
        self.inner_lr, self.weight_decay, self.damping = inner_lr, weight_decay, damping

    def edge_weights(self, lam: Tensor) -> Tensor:
        """softmax(α) per edge, (edges, ops)."""
        return torch.softmax(lam.view(self.shape), dim=-1)

    def logits(self, w: Tensor, lam: Tensor, x: Tensor) -> Tensor:
        return self.flat(w, x, self.edge_weights(lam))

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        x, y = self.train
        loss = F.cross_entropy(self.logits(w, lam, x), y)
        if self.weight_decay:
            loss = loss + 0.5 * self.weight_decay * w.square().sum()
        if self.damping:
            loss = loss + 0.5 * self.damping * (w - self.w0).square().sum()
        return loss

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        x, y = self.val
        return F.cross_entropy(self.logits(w, lam, x), y)

    def inner_solution(self, lam: Tensor) -> Tensor:
        raise NotImplementedError("the supernet's w* is not solved for: methods take the current w")
