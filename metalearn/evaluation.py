"""The evaluation protocol: adapt on many held-out tasks, report means with 95% confidence intervals.

For each of n fresh tasks of a split, the learner adapts on the support set and is scored on the
query set before adaptation and after each of 1..steps steps. The interval is the normal one,
mean ± 1.96 s/√n, s the sample standard deviation over tasks (as in Finn et al. 2017, Table 1).
Networks with BatchNorm (the conv-4) are scored transductively, as in MAML: a task's query set
goes through the network as one batch normalised with its own statistics, so each prediction
depends on the other queries of the task (Nichol et al. 2018 name this transduction).
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

    The tasks are drawn at once, so the numbers do not depend on `chunk`. They are drawn where
    `generator` lives (the CPU), so a seed gives the same tasks on every device; each chunk is moved
    to the learner's device, and the per-task results back to the CPU.
    """
    tasks = family.sample(split, n_tasks, generator)
    device = next(learner.model.parameters()).device
    losses, accuracies = [], []
    for start in range(0, n_tasks, chunk):
        chunk_tasks = Tasks(*(t[start : start + chunk].to(device) for t in tasks))
        loss, acc = learner.adaptation_curve(chunk_tasks, steps)
        losses.append(loss.cpu())
        accuracies.append(None if acc is None else acc.cpu())
    loss_mean, loss_ci = mean_ci95(torch.cat(losses))
    if accuracies[0] is None:
        return AdaptationCurve(loss_mean, loss_ci, None, None, n_tasks)
    acc_mean, acc_ci = mean_ci95(torch.cat(accuracies))
    return AdaptationCurve(loss_mean, loss_ci, acc_mean, acc_ci, n_tasks)


def summary_metrics(curve: AdaptationCurve, prefix: str = "eval") -> dict[str, float | list[float]]:
    """Namespaced metrics: MSE (regression) or accuracy and loss (classification) at three points.

    `pre_adapt_*` is before adaptation, `post_adapt_*` after one step (the headline of Finn et al.
    2017 for sinusoids and MAML-RL, and the meaning `metarl` gives the same key), and
    `post_eval_steps_*` after the curve's last step; `*_by_step` holds the whole curve. A curve
    without adaptation steps has only the `pre_adapt_*` and `*_by_step` keys.
    """
    names = [("mse", curve.loss, curve.loss_ci95)] if curve.accuracy is None else [
        ("acc", curve.accuracy, curve.accuracy_ci95),
        ("loss", curve.loss, curve.loss_ci95),
    ]
    metrics: dict[str, float | list[float]] = {}
    for name, mean, ci in names:
        points = {"pre_adapt": 0}
        if len(mean) > 1:
            points |= {"post_adapt": 1, "post_eval_steps": len(mean) - 1}
        for point, step in points.items():
            metrics |= {f"{prefix}/{point}_{name}": mean[step], f"{prefix}/{point}_{name}_ci95": ci[step]}
        metrics |= {f"{prefix}/{name}_by_step": mean, f"{prefix}/{name}_ci95_by_step": ci}
    return metrics
