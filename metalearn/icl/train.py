"""Meta-training on fresh in-context regression prompts: Adam on the model's own loss.

Each step draws `batch` new prompts (or prompts from the finite task pool), as in von Oswald et
al. (2023) and Garg et al. (2022). A non-finite loss stops training and is reported, not raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from metalearn.icl.data import TaskDistribution
from reporting import Log, Progress, no_log, no_progress


class TrainResult(NamedTuple):
    steps: int  # steps taken, the diverging one included
    diverged_step: int | None  # first step whose loss was not finite; None if none
    last_finite: dict[str, float]  # the last finite value of each metric (loss/train from every step)


def train(
    model: nn.Module,
    tasks: TaskDistribution,
    steps: int,
    batch: int,
    lr: float,
    generator: torch.Generator,
    log: Log = no_log,
    every: int = 100,
    evaluate: Callable[[], dict[str, float]] | None = None,
    progress: Progress = no_progress,
) -> TrainResult:
    """Train `model` (which has `.loss(Prompts)`) with Adam(lr) for `steps` steps.

    Every `every` steps (and at the last one) `log(step, {"loss/train": ..., **evaluate()})`; the
    first non-finite loss is logged and ends training. Prompts are drawn with `generator` (on the
    CPU) and moved to the model's device.
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    last_finite: dict[str, float] = {}
    for step in progress(range(1, steps + 1), total=steps, desc="icl"):
        loss = model.loss(tasks.sample(batch, generator).to(device))
        value = loss.item()
        if not math.isfinite(value):
            log(step, {"loss/train": value})
            return TrainResult(step, step, last_finite)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last_finite["loss/train"] = value
        if step % every == 0 or step == steps:
            metrics = {"loss/train": value, **(evaluate() if evaluate is not None else {})}
            log(step, metrics)
            last_finite.update((key, v) for key, v in metrics.items() if math.isfinite(v))
    return TrainResult(steps, None, last_finite)
