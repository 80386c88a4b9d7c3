"""Sinusoid regression (Finn et al. 2017, *Model-Agnostic Meta-Learning*, section 5.1).

A task is y = A sin(x − φ) with amplitude A ~ U[0.1, 5], phase φ ~ U[0, π], inputs x ~ U[−5, 5];
the learner sees K support points and is scored by MSE on query points of the same task. The
network is the paper's 1-40-40-1 ReLU MLP. Every split draws from the same distribution: held-out
tasks are fresh draws, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import nn

from metalearn.fewshot.tasks import HeadedNetwork, Tasks, check_split, seeded_module

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, torch.pi)
INPUT = (-5.0, 5.0)


@dataclass(frozen=True)
class Sine:
    """Sinusoid tasks with `shots` support and `queries` query points each."""

    shots: int = 10
    queries: int = 10
    kind: ClassVar[str] = "regression"

    def __post_init__(self):
        if self.shots < 1 or self.queries < 1:
            raise ValueError(f"shots={self.shots}, queries={self.queries}; both must be >= 1")

    def sample(self, split: str, n: int, generator: torch.Generator) -> Tasks:
        check_split(split)
        amplitude, phase = sample_sine_params(n, generator)
        x = _uniform((n, self.shots + self.queries, 1), INPUT, generator)  # (T, K + Q, 1)
        y = sine(x, amplitude, phase)
        k = self.shots
        return Tasks(x[:, :k], y[:, :k], x[:, k:], y[:, k:])

    def sample_on_grid(self, n: int, generator: torch.Generator, points: int = 200) -> Tasks:
        """`n` fresh tasks of `shots` support points whose query set is `points` evenly spaced inputs
        spanning the input range, the same for every task: each task's whole curve, for figures."""
        amplitude, phase = sample_sine_params(n, generator)
        support_x = _uniform((n, self.shots, 1), INPUT, generator)  # (T, K, 1)
        grid = torch.linspace(*INPUT, points)[None, :, None].expand(n, -1, -1)  # (T, points, 1)
        return Tasks(support_x, sine(support_x, amplitude, phase), grid, sine(grid, amplitude, phase))

    def with_queries(self, queries: int) -> Sine:
        """The same family drawing `queries` query points per task (say, more for evaluation)."""
        return replace(self, queries=queries)

    def make_model(self, generator: torch.Generator) -> nn.Module:
        return seeded_module(_mlp, generator)


def sample_sine_params(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Amplitudes and phases of `n` tasks, each of shape (n,)."""
    return _uniform((n,), AMPLITUDE, generator), _uniform((n,), PHASE, generator)


def sine(x: torch.Tensor, amplitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """A sin(x − φ) for x of shape (T, N, 1) and per-task A, φ of shape (T,)."""
    return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])


def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(shape, generator=generator)


def _mlp() -> nn.Module:
    features = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU())
    return HeadedNetwork(features, nn.Linear(40, 1))
