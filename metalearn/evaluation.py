"""The evaluation protocol: adapt on many held-out tasks, report means with 95% confidence intervals.

For each of n fresh tasks of a split, the learner adapts on the support set and is scored on the
query set before adaptation and after each of 1..steps steps. The interval is the normal one,
mean ± 1.96 s/√n, s the sample standard deviation over tasks (as in Finn et al. 2017, Table 1).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from metalearn.fewshot.tasks import TaskFamily, Tasks
from metalearn.maml.learners import MetaLearner


class AdaptationCurve(NamedTuple):
    """Index s holds the value after s adaptation steps (0 = before adaptation)."""

    loss: list[float]
    loss_ci95: list[float]
    accuracy: list[float] | None
    accuracy_ci95: list[float] | None
    n_tasks: int


def mean_ci95(values: torch.Tensor) -> tuple[list[float], list[float]]:
    """Mean and 95% half-width over the first dimension (tasks), for each remaining column."""
    n = values.shape[0]
    spread = values.double().std(0, correction=1) if n > 1 else torch.zeros(values.shape[1:])
    return values.double().mean(0).tolist(), (1.96 * spread / math.sqrt(n)).tolist()


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

    The tasks are drawn at once, so the numbers do not depend on `chunk`.
    """
    tasks = family.sample(split, n_tasks, generator)
    losses, accuracies = [], []
    for start in range(0, n_tasks, chunk):
        loss, acc = learner.adaptation_curve(Tasks(*(t[start : start + chunk] for t in tasks)), steps)
        losses.append(loss)
        accuracies.append(acc)
    loss_mean, loss_ci = mean_ci95(torch.cat(losses))
    if accuracies[0] is None:
        return AdaptationCurve(loss_mean, loss_ci, None, None, n_tasks)
    acc_mean, acc_ci = mean_ci95(torch.cat(accuracies))
    return AdaptationCurve(loss_mean, loss_ci, acc_mean, acc_ci, n_tasks)


def summary_metrics(curve: AdaptationCurve, prefix: str = "eval") -> dict[str, float | list[float]]:
    """Namespaced metrics: pre/post-adaptation MSE (regression) or accuracy and loss (classification)."""
    names = [("mse", curve.loss, curve.loss_ci95)] if curve.accuracy is None else [
        ("acc", curve.accuracy, curve.accuracy_ci95),
        ("loss", curve.loss, curve.loss_ci95),
    ]
    metrics: dict[str, float | list[float]] = {}
    for name, mean, ci in names:
        metrics |= {
            f"{prefix}/pre_adapt_{name}": mean[0],
            f"{prefix}/pre_adapt_{name}_ci95": ci[0],
            f"{prefix}/post_adapt_{name}": mean[-1],
            f"{prefix}/post_adapt_{name}_ci95": ci[-1],
            f"{prefix}/{name}_by_step": mean,
            f"{prefix}/{name}_ci95_by_step": ci,
        }
    return metrics
