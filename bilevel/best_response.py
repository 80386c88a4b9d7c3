"""A learned local best response ŵ(λ) ≈ w*(λ), and the outer step through it (Self-Tuning
Networks, MacKay et al. 2019).

Around the current λ₀ fit ŵ(λ) = w₀ + B(λ − λ₀) by gradient descent on E_ε L_train(ŵ(λ₀ + rε),
λ₀ + rε), ε ~ N(0, I) drawn afresh each step; then step λ along d/dλ L_val(ŵ(λ), λ) at λ₀, which
is ∂_λL_val + Bᵀ∇_wL_val. B is fitted as S = rB, whose curvature equals that of w₀, so one step
size serves both. Each fit starts from the previous response moved to the new centre.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.hypergradients import Hypergradient
from bilevel.problem import BilevelProblem
from bilevel.ridge import Ridge, ridge


class LinearBestResponse(NamedTuple):
    centre: Tensor  # λ₀
    w: Tensor  # ŵ(λ₀), (d,)
    slope: Tensor  # B = dŵ/dλ, (d, n) for λ with n entries

    def __call__(self, lam: Tensor) -> Tensor:
        """ŵ(λ) = w₀ + B(λ − λ₀)."""
        return self.w + self.slope @ (lam - self.centre).reshape(-1)


class SelfTuning:
    """A hypergradient method through a learned best response, fitted anew at each call with
    `fit_steps` gradient steps of `samples` perturbations λ₀ + rε; `responses` keeps every fit.
    It is stateful (each fit warm-starts from the last), so use one per outer run."""

    def __init__(
        self, radius: float = 0.1, samples: int = 16, fit_steps: int = 20, warmup: int = 1000, seed: int = 0
    ):
        if radius <= 0 or min(samples, fit_steps) < 1 or warmup < 0:
            raise ValueError(
                f"best response: radius={radius} must be > 0, samples={samples} and "
                f"fit_steps={fit_steps} >= 1, warmup={warmup} >= 0"
            )
        self.radius, self.samples, self.fit_steps, self.warmup = radius, samples, fit_steps, warmup
        self.generator = torch.Generator().manual_seed(seed)
        self.responses: list[LinearBestResponse] = []

    def fit(self, problem: BilevelProblem, lam: Tensor, steps: int) -> LinearBestResponse:
        """`steps` steps of gradient descent on (w₀, S) from the last response, re-centred at λ."""
        if self.responses:
            last = self.responses[-1]
            w, scaled = last(lam), self.radius * last.slope
        else:
            w, scaled = problem.w0, problem.w0.new_zeros(problem.w0.numel(), lam.numel())
        gradient = torch.func.vmap(problem.train_grad)
        for _ in range(steps):
            eps = torch.randn(self.samples, lam.numel(), generator=self.generator, dtype=lam.dtype)  # (S, n)
            grads = gradient(w + eps @ scaled.T, lam + self.radius * eps.reshape(-1, *lam.shape))  # (S, d)
            w, scaled = (
                w - problem.inner_lr * grads.mean(0),
                scaled - problem.inner_lr * grads.T @ eps / self.samples,
            )
        response = LinearBestResponse(lam, w, scaled / self.radius)
        self.responses.append(response)
        return response

    def __call__(self, problem: BilevelProblem, lam: Tensor) -> Hypergradient:
        start = time.perf_counter()
        lam = lam.detach()
        steps = self.fit_steps + (0 if self.responses else self.warmup)
        response = self.fit(problem, lam, steps)
        value = torch.func.grad(lambda at: problem.val_loss(response(at), at))(lam)
        return Hypergradient(value, steps * self.samples, 1, 0, time.perf_counter() - start)


@functools.wraps(ridge, assigned=(), updated=())  # its signature is ridge's, for make_problem
def best_response(**options) -> Ridge:
    """`ridge`, to be tuned through a learned best response (`SelfTuning`) rather than a
    hypergradient method; takes the options of `ridge`."""
    return dataclasses.replace(ridge(**options), name="best_response")
