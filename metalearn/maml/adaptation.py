"""Inner-loop adaptation as pure functions of a parameter dict, so torch.func can batch it over tasks.

One inner step on a task's support set (Finn et al. 2017, eq. 1; Li et al. 2017 for per-parameter
rates α):  θ_A ← θ_A − α ⊙ ∇_{θ_A} L_support(θ),  where A is the set of adapted parameters (all of
them for MAML, the head only for ANIL, Raghu et al. 2020). Parameters outside A stay shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from metalearn.fewshot.tasks import Tasks

Params = dict[str, torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Step = Callable[[Params, torch.Tensor, torch.Tensor], Params]  # (params, x, y) -> params after one inner step


def criterion(kind: str) -> Loss:
    """Mean squared error for regression, cross-entropy for classification."""
    return F.mse_loss if kind == "regression" else F.cross_entropy


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == labels).float().mean()


def head_names(model: nn.Module) -> list[str]:
    """Names of the parameters of `model.head`, as they appear in `model.named_parameters()`."""
    return [f"head.{name}" for name, _ in model.head.named_parameters()]


def fine_tune(
    model: nn.Module,
    params: Params,
    rates: Mapping[str, torch.Tensor | float],
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    loss_fn: Loss,
    first_order: bool = False,
) -> Params:
    """`steps` gradient steps on (x, y) for the parameters named in `rates`, each with its rate.

    Differentiable in `params` and `rates` (second order) unless `first_order`, which treats the
    inner gradients as constants (FOMAML). One task, unbatched: wrap in `vmap` for a meta-batch.
    """
    for _ in range(steps):
        fast = {name: params[name] for name in rates}

        def support_loss(fast: Params) -> torch.Tensor:
            return loss_fn(functional_call(model, {**params, **fast}, (x,)), y)

        grads = grad(support_loss)(fast)
        if first_order:
            grads = {name: g.detach() for name, g in grads.items()}
        params = {**params, **{name: fast[name] - rates[name] * grads[name] for name in rates}}
    return params


def adaptation_curve(
    model: nn.Module,
    params: Params,
    inner_step: Step,
    tasks: Tasks,
    steps: int,
    loss_fn: Loss,
    classification: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Query loss (and accuracy) of every task after 0, 1, ..., `steps` applications of
    `inner_step` (a learner's test-time step) from `params`: (steps + 1, T), steps first, as every
    adaptation curve in `metalearn`."""

    def one_task(sx, sy, qx, qy):
        # every output depends on the task: vmap in torch 2.11 cannot place an unbatched output
        # at out_dims=1
        losses, accuracies, task_params = [], [], params
        for step in range(steps + 1):
            if step:
                task_params = inner_step(task_params, sx, sy)
            out = functional_call(model, task_params, (qx,))
            losses.append(loss_fn(out, qy))
            if classification:
                accuracies.append(accuracy(out, qy))
        return torch.stack(losses), *([torch.stack(accuracies)] if classification else [])

    losses, *accuracies = vmap(one_task, out_dims=1)(*tasks)
    return losses, (accuracies[0] if classification else None)
