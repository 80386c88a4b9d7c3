"""The outer loop: gradient descent on λ with a hypergradient method.

λ_{s+1} = λ_s − β dF/dλ(λ_s). Plain gradient descent rather than Adam, so that on a scalar λ the
step is a fixed multiple of the hypergradient and the path is easy to read on the plot of F(λ).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

from bilevel.hypergradients import Hypergradient, Method
from bilevel.problem import BilevelProblem
from reporting import Log, Progress, no_log, no_progress


class OuterResult(NamedTuple):
    lambdas: list[Tensor]  # λ_0, ..., λ_S
    losses: list[float]  # F(λ_s), the reference outer loss
    hypergradients: list[Hypergradient]  # the method's at λ_0, ..., λ_{S−1}
    diverged_step: int | None  # the first step whose λ or F is not finite
    last_finite: dict[str, float]  # the metrics logged at the last finite step


def outer_descent(
    problem: BilevelProblem,
    method: Method,
    steps: int,
    lr: float,
    log: Log = no_log,
    progress: Progress = no_progress,
) -> OuterResult:
    """`steps` steps of gradient descent on λ from the problem's λ₀; logs step s with F(λ_s)
    (`outer/val_loss`), λ_s and the hypergradient taken there."""
    lam = problem.lam0
    lambdas, losses, hypergradients, last = [lam], [], [], {}
    for step in progress(range(steps + 1), total=steps + 1, desc="outer"):
        losses.append(problem.outer_loss(lam).item())
        metrics = {"outer/val_loss": losses[-1], **lambda_metrics(lam)}
        if not (math.isfinite(losses[-1]) and lam.isfinite().all()):
            log(step, metrics)
            return OuterResult(lambdas, losses, hypergradients, step, last)
        if step < steps:
            hypergradients.append(method(problem, lam))
            metrics.update(hypergradient_metrics(hypergradients[-1]))
            lam = lam - lr * hypergradients[-1].value
            lambdas.append(lam)
        log(step, metrics)
        last = metrics
    return OuterResult(lambdas, losses, hypergradients, None, last)


def lambda_metrics(lam: Tensor) -> dict[str, float]:
    """λ itself when it is one number; its mean and range otherwise."""
    if lam.dim() == 0:
        return {"outer/lambda": lam.item()}
    return {
        "outer/lambda_mean": lam.mean().item(),
        "outer/lambda_min": lam.min().item(),
        "outer/lambda_max": lam.max().item(),
    }


def hypergradient_metrics(hypergradient: Hypergradient) -> dict[str, float]:
    return {
        "hypergrad/norm": hypergradient.value.norm().item(),
        "hypergrad/seconds": hypergradient.seconds,
        "hypergrad/products": hypergradient.products,
        "hypergrad/inner_steps": hypergradient.inner_steps,
    }
