"""Meta-training on fresh in-context regression prompts: Adam on the model's own loss.

Each step draws `batch` new prompts (or prompts from the finite task pool), as in von Oswald et
al. (2023) and Garg et al. (2022). A non-finite loss stops training and is reported, not raised.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, NamedTuple

import torch
from torch import nn

from metalearn.icl.data import TaskDistribution


class TrainResult(NamedTuple):
    steps: int  # steps taken
    loss: float  # last finite training loss
    diverged_step: int | None  # first step whose loss was not finite


def train(model: nn.Module, tasks: TaskDistribution, steps: int, batch: int, lr: float,
          generator: torch.Generator, log: Callable[[int, dict], None] | None = None,
          every: int = 100, evaluate: Callable[[], dict] | None = None,
          progress: Callable[[Iterable], Iterable] = iter) -> TrainResult:
    """Train `model` (which has `.loss(Tasks)`) with Adam(lr) for `steps` steps.

    Every `every` steps (and at the last one) `log(step, {"loss/train": ..., **evaluate()})`.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    last = math.nan
    for step in progress(range(1, steps + 1)):
        loss = model.loss(tasks.sample(batch, generator))
        value = loss.item()
        if not math.isfinite(value):
            if log is not None:
                log(step, {"loss/train": value})
            return TrainResult(step, last, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last = value
        if log is not None and (step % every == 0 or step == steps):
            log(step, {"loss/train": value, **(evaluate() if evaluate is not None else {})})
    return TrainResult(steps, last, None)
