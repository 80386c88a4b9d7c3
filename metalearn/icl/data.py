"""In-context linear regression tasks (von Oswald et al., 2023; Garg et al., 2022).

A task is a weight vector w ~ N(0, I_d); its examples are x ~ U(-a, a)^d (or N(0, I_d)) and
y = wᵀx + ε, ε ~ N(0, noise²). A prompt holds `context` examples (x_i, y_i) and one query x_q whose
target y_q the learner must predict. Tasks are fresh on every draw unless a finite pool of
`num_tasks` weight vectors is given (task diversity, Raventós et al., 2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch


class InputDistribution(NamedTuple):
    """How the inputs x of a prompt are drawn, i.i.d. per coordinate, given the range a."""

    sample: Callable[[tuple[int, ...], float, torch.Generator], torch.Tensor]  # (shape, a, generator) -> x
    moments: Callable[[float], tuple[float, float]]  # a -> (s², m₄) = (E x², E x⁴) of one coordinate
    scale: Callable[[float], float]  # a -> the inputs' scale: a for U(−a, a), 1 for N(0, 1)


#: The scales a prompt's inputs may have (an input distribution's `scale`, times an OOD factor):
#: prompts are float32, and their Gram matrices XᵀX (∝ N·a²) and the baselines' step sizes η
#: (∝ 1/a²) must stay far inside float32's range [1.2e-38, 3.4e38], which the squares alone
#: leave at a = 1e±19.
INPUT_SCALES = (1e-15, 1e15)


def _uniform(shape: tuple[int, ...], x_range: float, generator: torch.Generator) -> torch.Tensor:
    return (2 * torch.rand(shape, generator=generator) - 1) * x_range


def _gaussian(shape: tuple[int, ...], x_range: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=generator)  # N(0, 1): the range does not apply


#: Input distributions by name: x ~ U(−a, a) (s² = a²/3, m₄ = a⁴/5) or N(0, 1) (s² = 1, m₄ = 3).
X_DISTS: dict[str, InputDistribution] = {
    "uniform": InputDistribution(_uniform, lambda a: (a**2 / 3, a**4 / 5), lambda a: a),
    "gaussian": InputDistribution(_gaussian, lambda a: (1.0, 3.0), lambda a: 1.0),
}


def input_distribution(name: str) -> InputDistribution:
    """The input distribution `name`, one of `X_DISTS`."""
    if name not in X_DISTS:
        raise ValueError(f"unknown x_dist {name!r}; valid: {', '.join(X_DISTS)}")
    return X_DISTS[name]


class Prompts(NamedTuple):
    """A batch of B prompts with N context examples in d dimensions."""

    xs: torch.Tensor  # (B, N, d) context inputs
    ys: torch.Tensor  # (B, N) context targets
    xq: torch.Tensor  # (B, d) query input
    yq: torch.Tensor  # (B,) query target
    w: torch.Tensor  # (B, d) the task's weight vector

    def scaled(self, x_scale: float = 1.0, w_scale: float = 1.0) -> Prompts:
        """The same prompts with inputs x -> αx and/or weights w -> αw (out-of-distribution probes).

        Noise is scaled with the targets, so a noiseless prompt stays noiseless.
        """
        s = x_scale * w_scale
        return Prompts(self.xs * x_scale, self.ys * s, self.xq * x_scale, self.yq * s, self.w * w_scale)

    def to(self, device: torch.device) -> Prompts:
        """The same prompts on `device` (drawn on the CPU, so a seed gives the same prompts anywhere)."""
        return Prompts(*(t.to(device) for t in self))


@dataclass(frozen=True)
class TaskDistribution:
    """Where prompts come from: `sample(batch, generator)` draws a `Prompts` batch.

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
        scale = input_distribution(self.x_dist).scale(self.x_range)
        if self.dim < 1 or self.context < 1:
            raise ValueError(f"dim={self.dim}, context={self.context}: both must be >= 1")
        low, high = INPUT_SCALES
        if not low <= scale <= high:
            raise ValueError(
                f"x_range={self.x_range}: float32 prompts hold x², and sums and inverses of it, "
                f"only for inputs of scale {low:g} to {high:g}; valid: {low:g} <= x_range <= {high:g}"
            )

    def sample(self, batch: int, generator: torch.Generator, context: int | None = None) -> Prompts:
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
        return Prompts(x[:, :n], y[:, :n], x[:, n], y[:, n], w)

    def sample_inputs(self, batch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        """`n` inputs x for each of `batch` prompts, shape (B, n, d)."""
        return input_distribution(self.x_dist).sample((batch, n, self.dim), self.x_range, generator)


def task_pool(num_tasks: int, dim: int, generator: torch.Generator) -> torch.Tensor:
    """A fixed pool of `num_tasks` weight vectors w ~ N(0, I_d), shape (num_tasks, d)."""
    return torch.randn(num_tasks, dim, generator=generator)


def input_moments(x_dist: str, x_range: float) -> tuple[float, float]:
    """Per-coordinate variance s² and fourth moment m₄ of x: U(-a, a) gives a²/3 and a⁴/5."""
    return input_distribution(x_dist).moments(x_range)
