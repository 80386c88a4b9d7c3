"""Self-Tuning Networks as a hypergradient method (`method=stn`): the weights are a structured best
response ŵ(λ) learned alongside λ, and λ steps on L_val through it (MacKay et al. 2019, Alg. 1).

The response is STN's gated layer with one output unit and no bias, the layer of a linear model
(x ↦ ŵᵀx, as in `ridge`): ŵ(λ) = s·w + (aᵀλ̃)·v, λ̃ = λ unconstrained (the paper's code feeds the
network the unconstrained hyperparameter as is). For one λ it is an affine function, ŵ(λ) = w̄ +
λ·u with u = a·v, the tangent class of w*(λ); for n hyperparameters its Jacobian v aᵀ has rank one.
Each call, at the current λ:

1. `inner_steps` Adam steps on φ = (w, v, s, a) of E_ε L_train(ŵ(λ + σ⊙ε), λ + σ⊙ε), ε ~ N(0, I),
   `samples` draws a step, each on the whole L_train (a problem gives no per-example losses; the
   MLP of `bilevel.stn.mlp` perturbs per example), the first call adding `warmup` steps (the
   paper's warm-up epochs);
2. the hypergradient d/dλ E_ε L_val(ŵ(λ + σ⊙ε), λ + σ⊙ε) on fresh draws, returned for the caller's
   step on λ, and one Adam step (rate `scale_lr`, Adam as in the paper's code; 0 holds σ fixed)
   on log σ of the same objective minus the entropy bonus τ·Σ log σ (the paper's τ·H[q(·|λ, σ)],
   constants dropped).

Cost per call: (inner_steps, plus warmup on the first) × samples gradients of L_train, counted as
`inner_steps`, and `samples` gradients of L_val through ŵ, counted as `products`; no solves.

The σ step balances E L_val's growth with σ against the bonus; on a quadratic L_val its fixed
point is σ_i² = τ/(u_iᵀ ∇²_ww L_val u_i), u_i = ∂ŵ/∂λ_i. The paper's code parametrises σ by a
softplus; log σ here makes the bonus's gradient the constant τ. The method is stateful (φ and σ
carry over from call to call, as the paper alternates its two steps): use one per outer run.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from bilevel.hypergradients import Hypergradient
from bilevel.problem import BilevelProblem
from bilevel.stn.layers import GatedLinear, gated_linear_init, gated_weight


class SelfTuningNetwork:
    """`method=stn`; `sigmas` keeps σ after each call."""

    def __init__(
        self,
        scale: float = 0.5,
        tau: float = 1e-3,
        inner_steps: int = 100,
        samples: int = 16,
        lr: float = 0.01,
        scale_lr: float = 0.05,
        warmup: int = 1000,
        seed: int = 0,
    ):
        if scale <= 0 or tau < 0 or lr <= 0 or scale_lr < 0 or min(inner_steps, samples) < 1 or warmup < 0:
            raise ValueError(
                f"stn: scale={scale} and lr={lr} must be > 0, tau={tau} and scale_lr={scale_lr} >= 0, "
                f"inner_steps={inner_steps} and samples={samples} >= 1, warmup={warmup} >= 0"
            )
        self.scale, self.tau, self.inner_steps, self.samples = scale, tau, inner_steps, samples
        self.lr, self.scale_lr, self.warmup = lr, scale_lr, warmup
        self.generator = torch.Generator().manual_seed(seed)
        self.layer: GatedLinear | None = None
        self.log_sigma: Tensor | None = None  # (n,)
        self.optimizer: torch.optim.Optimizer | None = None
        self.sigmas: list[Tensor] = []

    def response(self, lam: Tensor) -> Tensor:
        """ŵ(λ) = s·w + (aᵀλ)·v, (d,); differentiable in λ and in the layer."""
        return self.responses(lam[None])[0]

    def responses(self, lams: Tensor) -> Tensor:
        """ŵ at a batch of λ, (B, *λ.shape) -> (B, d)."""
        return gated_weight(self.layer, lams.reshape(len(lams), -1))[0][:, 0]

    @property
    def sigma(self) -> Tensor:
        """σ, shaped like λ."""
        return self.log_sigma.detach().exp().reshape(self.shape)

    def _start(self, problem: BilevelProblem, lam: Tensor) -> None:
        self.shape, n = lam.shape, lam.numel()
        self.layer = gated_linear_init(problem.w0.numel(), 1, n, self.generator, bias=False, dtype=lam.dtype)
        for tensor in self.layer.tensors():
            tensor.requires_grad_(True)
        self.log_sigma = torch.full((n,), math.log(self.scale), dtype=lam.dtype, requires_grad=True)
        self.optimizer = torch.optim.Adam(self.layer.tensors(), lr=self.lr)
        self.scale_optimizer = torch.optim.Adam([self.log_sigma], lr=self.scale_lr)

    def _perturbed(self, lam: Tensor, log_sigma: Tensor) -> Tensor:
        """`samples` draws of λ + σ⊙ε, (S, *λ.shape)."""
        eps = torch.randn(self.samples, lam.numel(), generator=self.generator, dtype=lam.dtype)
        return (lam.reshape(-1) + log_sigma.exp() * eps).reshape(self.samples, *lam.shape)

    def _expected(self, loss, lams: Tensor) -> Tensor:
        """The mean of loss(ŵ(λ'), λ') over the draws λ'."""
        return torch.func.vmap(loss)(self.responses(lams), lams).mean()

    def __call__(self, problem: BilevelProblem, lam: Tensor, w: Tensor | None = None) -> Hypergradient:
        if w is not None:
            raise ValueError("stn keeps its own best response ŵ(λ); it takes no inner iterate w")
        start = time.perf_counter()
        lam = lam.detach()
        first = self.layer is None
        if first:
            self._start(problem, lam)
        steps = self.inner_steps + (self.warmup if first else 0)
        train_grad = torch.func.vmap(problem.train_grad)
        for _ in range(steps):
            self.optimizer.zero_grad()
            lams = self._perturbed(lam, self.log_sigma.detach())
            responses = self.responses(lams)  # (S, d)
            # the chain rule through ŵ from the problem's ∇_w L_train, cheaper than autograd's
            responses.backward(train_grad(responses.detach(), lams) / self.samples)
            self.optimizer.step()
        at = lam.clone().requires_grad_(True)
        outer = self._expected(problem.val_loss, self._perturbed(at, self.log_sigma))
        value, sigma_grad = torch.autograd.grad(outer - self.tau * self.log_sigma.sum(), (at, self.log_sigma))
        if self.scale_lr > 0:
            self.log_sigma.grad = sigma_grad
            self.scale_optimizer.step()
        self.sigmas.append(self.sigma.detach().clone())
        return Hypergradient(value, steps * self.samples, self.samples, 0, time.perf_counter() - start)
