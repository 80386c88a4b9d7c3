"""Trust-region step (Schulman et al. 2015, TRPO) over a list of parameters, given closures.

maximise L(theta) s.t. KL(theta_old, theta) <= delta: x = F^(-1) g by conjugate gradient with
F v = grad(grad KL . v) + damping v, step sqrt(2 delta / x^T F x) x, then a backtracking line search
that accepts the first step improving L with KL <= delta.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel import conjugate_gradient


class TRPOStats(NamedTuple):
    surrogate_before: float
    surrogate_after: float
    kl: float
    line_search_steps: int  # backtracks taken; = max steps + 1 when no step was accepted


def _flat(tensors) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def trpo_step(
    params: list[Tensor],
    objective: Callable[[], tuple[Tensor, Tensor]],
    fisher_kl: Callable[[], Tensor],
    max_kl: float,
    cg_iters: int = 10,
    damping: float = 1e-5,
    backtrack: float = 0.8,
    max_backtracks: int = 15,
) -> TRPOStats:
    """Update `params` in place by one TRPO step.

    `objective()` recomputes (surrogate L, KL to the old policy) from `params`; `fisher_kl()` a
    KL whose Hessian at the old parameters is the metric F (the same KL, or a cheaper stand-in:
    the line search always checks `objective`'s KL).
    """
    loss, _ = objective()
    g = _flat(torch.autograd.grad(loss, params))
    grad_kl = _flat(torch.autograd.grad(fisher_kl(), params, create_graph=True))

    def fisher_vector(v: Tensor) -> Tensor:
        return _flat(torch.autograd.grad(grad_kl @ v, params, retain_graph=True)) + damping * v

    direction = conjugate_gradient(fisher_vector, g, cg_iters, atol=1e-5)  # stops once ‖r‖² < 1e-10
    step = torch.sqrt(2 * max_kl / (direction @ fisher_vector(direction)).clamp(min=1e-12)) * direction
    old = [p.detach().clone() for p in params]
    before = float(loss.detach())
    for k in range(max_backtracks + 1):
        _assign(params, old, backtrack**k * step)
        with torch.no_grad():
            after, divergence = (float(x) for x in objective())
        if after > before and divergence <= max_kl:
            return TRPOStats(before, after, divergence, k)
    _assign(params, old, torch.zeros_like(step))
    return TRPOStats(before, before, 0.0, max_backtracks + 1)


def _assign(params: list[Tensor], old: list[Tensor], step: Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for p, p0 in zip(params, old):
            p.copy_(p0 + step[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
