"""In-context linear regression tasks (von Oswald et al., 2023; Garg et al., 2022).

A task is a weight vector w ~ N(0, I_d); its examples are x ~ U(-a, a)^d (or N(0, I_d)) and
y = wᵀx + ε, ε ~ N(0, noise²). A prompt holds `context` examples (x_i, y_i) and one query x_q whose
target y_q the learner must predict. Tasks are fresh on every draw unless a finite pool of
`num_tasks` weight vectors is given (task diversity, Raventós et al., 2023).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

X_DISTS = ("uniform", "gaussian")


class Tasks(NamedTuple):
    """A batch of B prompts with N context examples in d dimensions."""

    xs: torch.Tensor  # (B, N, d) context inputs
    ys: torch.Tensor  # (B, N) context targets
    xq: torch.Tensor  # (B, d) query input
    yq: torch.Tensor  # (B,) query target
    w: torch.Tensor  # (B, d) the task's weight vector

    def scaled(self, x_scale: float = 1.0, w_scale: float = 1.0) -> "Tasks":
        """The same prompts with inputs x -> αx and/or weights w -> αw (out-of-distribution probes).

        Noise is scaled with the targets, so a noiseless prompt stays noiseless.
        """
        s = x_scale * w_scale
        return Tasks(self.xs * x_scale, self.ys * s, self.xq * x_scale, self.yq * s,
                     self.w * w_scale)


@dataclass(frozen=True)
class TaskDistribution:
    """Where prompts come from: `sample(batch, generator)` draws a `Tasks` batch.

    `pool`, if given, is a (num_tasks, d) tensor of weight vectors; each prompt then picks one of
    them uniformly instead of drawing a fresh w.
    """

    dim: int
    context: int
    x_dist: str = "uniform"
    x_range: float = 1.0
    noise: float = 0.0
    pool: torch.Tensor | None = None

    def __post_init__(self):
        if self.x_dist not in X_DISTS:
            raise ValueError(f"unknown x_dist {self.x_dist!r}; valid: {', '.join(X_DISTS)}")
        if self.dim < 1 or self.context < 1:
            raise ValueError(f"dim={self.dim}, context={self.context}: both must be >= 1")

    def sample(self, batch: int, generator: torch.Generator, context: int | None = None) -> Tasks:
        """`batch` prompts with `context` (default `self.context`) examples each."""
        n = self.context if context is None else context
        if self.pool is None:
            w = torch.randn(batch, self.dim, generator=generator)  # (B, d)
        else:
            w = self.pool[torch.randint(len(self.pool), (batch,), generator=generator)]
        x = self.sample_inputs(batch, n + 1, generator)  # (B, N+1, d)
        y = torch.einsum("bnd,bd->bn", x, w)  # (B, N+1)
        if self.noise > 0:
            y = y + self.noise * torch.randn(y.shape, generator=generator)
        return Tasks(x[:, :n], y[:, :n], x[:, n], y[:, n], w)

    def sample_inputs(self, batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` inputs x for each of `batch` prompts, shape (B, n, d)."""
        if self.x_dist == "gaussian":
            return torch.randn(batch, n, self.dim, generator=generator)
        u = torch.rand(batch, n, self.dim, generator=generator)
        return (2 * u - 1) * self.x_range


def task_pool(num_tasks: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """A fixed pool of `num_tasks` weight vectors w ~ N(0, I_d), shape (num_tasks, d)."""
    return torch.randn(num_tasks, dim, generator=generator)


def input_moments(x_dist: str, x_range: float) -> tuple[float, float]:
    """Per-coordinate variance s² and fourth moment m₄ of x: U(-a, a) gives a²/3 and a⁴/5."""
    if x_dist == "gaussian":
        return 1.0, 3.0
    return x_range**2 / 3, x_range**4 / 5
