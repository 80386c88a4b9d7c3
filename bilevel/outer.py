"""The outer loop: gradient descent on λ with a hypergradient method.

λ_{s+1} = λ_s − β dF/dλ(λ_s). Plain gradient descent rather than Adam, so that on a scalar λ the
step is a fixed multiple of the hypergradient and the path is easy to read on the plot of F(λ).
Each hypergradient is taken where the method puts the inner problem (the accurate w*, or w₀ for
the unrolled methods), or, alternating as DARTS does (Liu et al. 2019), at an inner iterate that
the loop keeps: `alternate` = k > 0 inner steps w ← w − η∇_wL_train(w, λ_s) from where the last
outer step left it, then the step on λ from the hypergradient at that w.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

from bilevel.hypergradients import Hypergradient, Method
from bilevel.problem import BilevelProblem
from reporting import History, Log, Progress, no_log, no_progress


class OuterResult(NamedTuple):
    lambdas: list[Tensor]  # λ_0, ..., λ_S
    losses: list[float]  # F(λ_s), the reference outer loss
    hypergradients: list[Hypergradient]  # the method's at λ_0, ..., λ_{S−1}
    iterates: list[Tensor]  # with alternate > 0: the inner iterate w at λ_0, ..., λ_{S−1}; else empty
    diverged_step: int | None  # the first step whose λ or F is not finite
    last_finite: dict[str, float]  # the metrics logged at the last finite step
    history: History  # every step's metrics as logged: `history["outer/val_loss"]` is (steps, values)


def outer_descent(
    problem: BilevelProblem,
    method: Method,
    steps: int,
    lr: float,
    log: Log = no_log,
    progress: Progress = no_progress,
    alternate: int = 0,
) -> OuterResult:
    """`steps` steps of gradient descent on λ from the problem's λ₀, each after `alternate` inner
    steps when it is positive; logs step s with F(λ_s) (`outer/val_loss`), λ_s, the hypergradient
    taken there and, when alternating, the distance of the inner iterate to w*(λ_s)."""
    if alternate < 0:
        raise ValueError(f"outer_descent: alternate={alternate} must be >= 0")
    lam, w = problem.lam0, problem.w0
    history = History(then=log)
    lambdas, losses, hypergradients, iterates, last = [lam], [], [], [], {}
    for step in progress(range(steps + 1), total=steps + 1, desc="outer"):
        losses.append(problem.outer_loss(lam).item())
        metrics = {"outer/val_loss": losses[-1], **lambda_metrics(lam)}
        if not (math.isfinite(losses[-1]) and lam.isfinite().all()):
            history(step, metrics)
            return OuterResult(lambdas, losses, hypergradients, iterates, step, last, history)
        if step < steps:
            if alternate:
                for t in range(step * alternate, (step + 1) * alternate):
                    w = problem.inner_step(w, lam, t)
                iterates.append(w)
                metrics["inner/distance"] = (w - problem.inner_solution(lam)).norm().item()
            hypergradients.append(method(problem, lam, w) if alternate else method(problem, lam))
            metrics.update(hypergradient_metrics(hypergradients[-1]))
            lam = lam - lr * hypergradients[-1].value
            lambdas.append(lam)
        history(step, metrics)
        last = metrics
    return OuterResult(lambdas, losses, hypergradients, iterates, None, last, history)


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
