"""The task API every few-shot family implements: a batch of tasks, and the family that samples it.

A family draws `n` tasks at once as stacked tensors with a leading task dimension T, so the same
batch feeds a per-task loop (learn2learn) or one vectorised computation (torch.func) alike:

    tasks = family.sample("train", 25, generator)   # Tasks of shape (T, ...)
    model = family.make_model(generator)             # the paper's network for this family

Regression: x float (T, K, 1), y float (T, K, 1). Classification: x float (T, ways*shots, 1, 28, 28),
y int64 (T, ways*shots) with labels 0..ways-1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

SPLITS = ("train", "validation", "test")
KINDS = ("regression", "classification")


class Tasks(NamedTuple):
    """A meta-batch of tasks; every field has a leading task dimension T."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    @property
    def n_tasks(self) -> int:
        return self.support_x.shape[0]


@runtime_checkable
class TaskFamily(Protocol):
    """A distribution over tasks with train / validation / test splits, and its network."""

    kind: str  # one of KINDS

    def sample(self, split: str, n: int, generator: torch.Generator) -> Tasks: ...

    def with_queries(self, queries: int) -> TaskFamily:
        """The same family drawing `queries` query examples (per class) per task."""
        ...

    def make_model(self, generator: torch.Generator) -> nn.Module:
        """The paper's network, with submodules `features` (the body) and `head` (the last linear
        layer), forward(x) = head(features(x).flatten(1)): ANIL adapts `head`, ProtoNets embed with
        `features`."""
        ...


def check_split(split: str) -> None:
    """Raise ValueError naming `split` unless it is one of SPLITS."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


def seeded_module(build: Callable[[], nn.Module], generator: torch.Generator) -> nn.Module:
    """`build()` with torch's default initialisers seeded from `generator`, global RNG untouched."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class HeadedNetwork(nn.Module):
    """forward(x) = head(features(x).flatten(1)): the split ANIL (head only) and ProtoNets
    (features) rely on."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
