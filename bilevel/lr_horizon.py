"""`lr_horizon`: tune the log learning rate λ of T steps of SGD on a noisy quadratic (Wu et al. 2018).

The loss is L(w) = ½ Σ_i h_i w_i², and SGD sees g = h ⊙ (w − σ ⊙ ξ), ξ ~ N(0, I) fresh each step
(the minimum drawn anew per sample). With α = e^λ each coordinate's mean and variance follow
m_{t+1} = (1 − αh)m_t and v_{t+1} = (1 − αh)²v_t + α²h²σ², so the expected loss after T steps,
F_T(λ) = ½ Σ_i h_i (m_{T,i}² + v_{T,i}), is known in closed form. Wu et al. find that rates
tuned greedily over a short horizon come out too small. Here the start is at the minimum in the
high-curvature half of the directions and far off in the low-curvature half: the next step's loss
is dominated by the noise a large rate injects into the high-curvature directions, while over
many steps the progress along the low-curvature ones pays; with the defaults the one-step
optimum is α = 0.18 and the 100-step one α = 0.42.

In flat form w holds `chains` independent SGD runs driven by fixed seeded noise (common random
numbers), so unrolling T steps is a differentiable function of λ whose average loss estimates
F_T. L_train and L_val are that average; neither depends on λ, so its minimiser w* = 0 does not
either, and the implicit-function hypergradient of a learning rate is zero: only methods that
differentiate the optimisation itself see it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from bilevel.problem import BilevelProblem


@dataclass(frozen=True, eq=False)
class LrHorizon(BilevelProblem):
    curvature: Tensor  # h, (d,)
    noise: Tensor  # σ, (d,): the standard deviation of the per-sample minimum
    start: Tensor  # w₀ of every chain, (d,)
    draws: Tensor  # ξ, (horizon, chains, d)
    lam0: Tensor  # ()
    lambda_range: tuple[float, float]
    name: str = "lr_horizon"

    @property
    def horizon(self) -> int:
        return self.draws.shape[0]

    @property
    def chains(self) -> int:
        return self.draws.shape[1]

    @property
    def w0(self) -> Tensor:  # (chains · d,)
        return self.start.repeat(self.chains)

    @property
    def inner_lr(self) -> float:
        """1/L for the chain-averaged loss, whose curvature is h/chains."""
        return self.chains / self.curvature.max().item()

    def train_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return 0.5 * (self.curvature * w.reshape(self.chains, -1).square()).sum() / self.chains

    def val_loss(self, w: Tensor, lam: Tensor) -> Tensor:
        return self.train_loss(w, lam)

    def inner_step(self, w: Tensor, lam: Tensor, t: int) -> Tensor:
        """SGD: w_{t+1} = w_t − e^λ h ⊙ (w_t − σ ⊙ ξ_t), every chain with its own ξ_t."""
        if t >= self.horizon:
            raise ValueError(f"lr_horizon draws noise for {self.horizon} steps; step {t} asked for")
        w = w.reshape(self.chains, -1)
        return (w - lam.exp() * self.curvature * (w - self.noise * self.draws[t])).reshape(-1)

    def inner_solution(self, lam: Tensor) -> Tensor:
        return torch.zeros_like(self.w0)

    def expected_loss(self, lam: Tensor, steps: int) -> Tensor:
        """F_T(λ) = ½ Σ h(m_T² + v_T), m_T = r^T m₀, v_T = α²h²σ² (1 − r^{2T})/(1 − r²), r = 1 − αh."""
        rate = 1 - lam.exp() * self.curvature
        mean = rate**steps * self.start
        variance = (
            (lam.exp() * self.curvature * self.noise).square() * (1 - rate ** (2 * steps)) / (1 - rate**2)
        )
        return 0.5 * (self.curvature * (mean.square() + variance)).sum()

    def outer_loss(self, lam: Tensor) -> Tensor:
        return self.expected_loss(lam, self.horizon)

    def hypergradient(self, lam: Tensor) -> Tensor:
        return torch.func.grad(self.outer_loss)(lam)


def lr_horizon(
    dim: int = 10,
    horizon: int = 100,
    chains: int = 100,
    noise: float = 1.0,
    distance: float = 5.0,
    lr0: float = 0.05,
    condition: float = 100.0,
    seed: int = 0,
) -> LrHorizon:
    """Curvatures log-spaced from 1 down to 1/condition; the low-curvature half of the
    coordinates starts at `distance`, the rest at 0; SGD from learning rate lr0."""
    if min(dim, horizon, chains) < 1:
        raise ValueError(f"lr_horizon: dim={dim}, horizon={horizon}, chains={chains} must all be >= 1")
    if not 0 < lr0 < 2:
        raise ValueError(f"lr_horizon: lr0={lr0} must lie in (0, 2), where SGD on curvature 1 is stable")
    if noise <= 0 or condition < 1:
        raise ValueError(f"lr_horizon: noise={noise} must be > 0 and condition={condition} >= 1")
    curvature = torch.logspace(0, -math.log10(condition), dim, dtype=torch.float64)
    start = torch.zeros(dim, dtype=torch.float64)  # float64 throughout: distance is not rounded to float32
    start[dim // 2 :] = distance
    draws = torch.randn(
        horizon, chains, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return LrHorizon(
        curvature,
        torch.full((dim,), noise, dtype=torch.float64),
        start,
        draws,
        torch.tensor(math.log(lr0), dtype=torch.float64),
        lambda_range=(math.log(min(lr0, 0.01)), math.log(1.9)),
    )
