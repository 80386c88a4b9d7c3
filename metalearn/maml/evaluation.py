"""The evaluation protocol: adapt on many held-out tasks, report means with 95% confidence intervals.

For each of n fresh tasks of a split, the learner adapts on the support set and is scored on the
query set before adaptation and after each of 1..steps steps. The interval is the normal one,
mean ± 1.96 s/√n, s the sample standard deviation over tasks (as in Finn et al. 2017, Table 1).
Networks with BatchNorm (the conv-4) are scored transductively, as in MAML: a task's query set
goes through the network as one batch normalised with its own statistics, so each prediction
depends on the other queries of the task (Nichol et al. 2018 name this transduction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.func import functional_call

from metalearn.fewshot.tasks import TaskFamily, Tasks
from metalearn.maml.learners import MetaLearner
from metalearn.stats import mean_ci95


class AdaptationCurve(NamedTuple):
    """Index s holds the value after s adaptation steps (0 = before adaptation)."""

    loss: list[float]
    loss_ci95: list[float]
    accuracy: list[float] | None
    accuracy_ci95: list[float] | None
    n_tasks: int


def evaluate(
    learner: MetaLearner,
    family: TaskFamily,
    *,
    n_tasks: int,
    steps: int,
    generator: torch.Generator,
    split: str = "test",
    chunk: int = 100,
) -> AdaptationCurve:
    """Adapt `learner` on `n_tasks` tasks of `split`, `chunk` tasks at a time to bound memory.

    The tasks are drawn at once, so the numbers do not depend on `chunk`. They are drawn where
    `generator` lives (the CPU), so a seed gives the same tasks on every device; each chunk is moved
    to the learner's device, and the per-task results back to the CPU.
    """
    tasks = family.sample(split, n_tasks, generator)
    device = next(learner.model.parameters()).device
    losses, accuracies = [], []
    for start in range(0, n_tasks, chunk):
        chunk_tasks = Tasks(*(t[start : start + chunk].to(device) for t in tasks))
        loss, acc = learner.adaptation_curve(chunk_tasks, steps)  # (steps + 1, chunk)
        losses.append(loss.cpu())
        accuracies.append(None if acc is None else acc.cpu())
    loss_mean, loss_ci = _over_tasks(torch.cat(losses, 1))
    if accuracies[0] is None:
        return AdaptationCurve(loss_mean, loss_ci, None, None, n_tasks)
    acc_mean, acc_ci = _over_tasks(torch.cat(accuracies, 1))
    return AdaptationCurve(loss_mean, loss_ci, acc_mean, acc_ci, n_tasks)


def adapted_predictions(learner: MetaLearner, tasks: Tasks, steps: Sequence[int]) -> torch.Tensor:
    """The model's outputs at each task's query inputs after each count in `steps` of the learner's
    test-time steps (`inner_step()`, those its evaluation takes) on its support set:
    (len(steps), T, Q, outputs). Task by task, for the few tasks a figure shows (Finn et al. 2017,
    fig. 2)."""
    params = {name: p.detach() for name, p in learner.model.named_parameters()}
    step = learner.inner_step()
    curves = []
    for count in steps:
        outputs = []
        for support_x, support_y, query_x in zip(tasks.support_x, tasks.support_y, tasks.query_x):
            fast = params
            for _ in range(count):
                fast = step(fast, support_x, support_y)
            with torch.no_grad():
                outputs.append(functional_call(learner.model, fast, (query_x,)))
        curves.append(torch.stack(outputs))
    return torch.stack(curves)


def _over_tasks(curves: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean and 95% half-width of (steps + 1, tasks) curves at each step."""
    mean, ci = mean_ci95(curves, dim=1)
    return mean.tolist(), ci.tolist()
