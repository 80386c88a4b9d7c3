"""Meta-training on fresh in-context regression prompts: Adam on the model's own loss.

Each step draws `batch` new prompts (or prompts from the finite task pool), as in von Oswald et
al. (2023) and Garg et al. (2022). A non-finite loss stops training and is reported, not raised.
In a torch.distributed group of several ranks each trains on its share of every batch and the
gradients are all-reduced (`metalearn.distributed`): every rank holds the same weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from metalearn.distributed import AllReducedOptimizer, reduced, share, world
from metalearn.icl.data import TaskDistribution
from reporting import History, Log, Progress, no_log, no_progress


class TrainResult(NamedTuple):
    steps: int  # steps taken, the diverging one included
    diverged_step: int | None  # first step whose loss was not finite; None if none
    last_finite: dict[str, float]  # the last finite value of each metric (loss/train from every step)
    history: History  # the rows this call logged (a resumed run's from `start` on)


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
    checkpoint: Callable[[int, dict[str, float], dict], None] | None = None,
    checkpoint_every: int = 0,
    start: int = 0,
    last_finite: dict[str, float] | None = None,
    optimizer_state: dict | None = None,
) -> TrainResult:
    """Train `model` (which has `.loss(Prompts)`) with Adam(lr) for steps `start + 1 .. steps`,
    on `batch` prompts a step drawn from `tasks`. The `icl` scenario's lr is 1e-3 (3e-3 in the
    README's 2-layer run); returns a `TrainResult` whose `history` holds what was logged.

    Every `every` steps (and at the last one) `log(step, {"loss/train": ..., **evaluate()})`; the
    first non-finite loss is logged and ends training. Prompts are drawn with `generator` (on the
    CPU) and moved to the model's device. Every `checkpoint_every` steps calls `checkpoint(step,
    last finite metrics, Adam's state_dict)`; `start`, `last_finite` and `optimizer_state` continue
    from such a checkpoint: with the model's weights and the generator's state restored, training
    gives the numbers of an uninterrupted run.
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    rank, size = world()
    if size > 1:
        optimizer = AllReducedOptimizer(optimizer)
    last_finite = dict(last_finite or {})
    history = History(then=log)

    def report(step: int) -> None:
        metrics = {"loss/train": last_finite["loss/train"], **(evaluate() if evaluate is not None else {})}
        history(step, metrics)
        last_finite.update((key, v) for key, v in metrics.items() if math.isfinite(v))

    for step in progress(range(start + 1, steps + 1), total=steps - start, desc="icl"):
        prompts = tasks.sample(batch, generator)
        if size > 1:
            prompts, optimizer.weight = share(prompts, rank, size, "batch")
        loss = model.loss(prompts.to(device))
        value = loss.item() if size == 1 else reduced(loss.detach(), optimizer.weight)
        if not math.isfinite(value):
            history(step, {"loss/train": value})
            return TrainResult(step, step, last_finite, history)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        last_finite["loss/train"] = value
        if step % every == 0:
            report(step)
        if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
            checkpoint(step, last_finite, optimizer.state_dict())
    if steps % every:  # after the checkpoint: a run that goes on past this step does not log it
        report(steps)
    return TrainResult(steps, None, last_finite, history)
