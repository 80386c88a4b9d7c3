"""iMAML (Rajeswaran et al. 2019): meta-gradients through the inner problem's optimality condition.

Task τ's inner problem is proximal: φ*_τ(θ) = argmin_φ f_τ(φ), f_τ(φ) = L_s,τ(φ) + (λ/2)‖φ − θ‖²,
solved approximately by `steps` descent steps from φ = θ. Its optimality condition
∇L_s,τ(φ*) + λ(φ* − θ) = 0 and the implicit function theorem give dφ*/dθ = (I + H_τ/λ)⁻¹,
H_τ = ∇²L_s,τ(φ*_τ), so the meta-gradient of the query loss L_q,τ(φ*_τ(θ)) is

    g_τ = (I + H_τ/λ)⁻¹ ∇L_q,τ(φ*_τ),

found by conjugate gradient from Hessian-vector products alone. It depends on where the inner loop
ends, not on how it got there: nothing is kept for a backward pass through the inner steps.

The descent steps backtrack (Armijo 1966). With a fixed rate α the inner loop diverges once the
support loss's curvature passes 2/α − λ, and on sine meta-training raises it past that within a
thousand iterations: unlike MAML's, the implicit meta-gradient does not see the inner loop's path,
so nothing holds the curvature back.

The inner loops and query gradients of the whole meta-batch run in one `vmap`; the solves run task
by task, since conjugate gradient's stopping test is data-dependent control flow, which `vmap`
cannot batch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vjp, vmap

from bilevel import conjugate_gradient
from metalearn.fewshot.tasks import Tasks
from metalearn.maml.adaptation import Loss, Params

BACKTRACKS = 5  # candidate rates α, α/2, ..., α/2⁴ per step


def proximal_step(
    model: nn.Module,
    theta: Params,
    phi: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Loss,
    prox_lambda: float,
    lr: float,
    backtracks: int = BACKTRACKS,
) -> Params:
    """φ − t∇f(φ) for f(φ) = L(φ) + (λ/2)‖φ − θ‖², L the loss on (x, y).

    t is the largest of lr, lr/2, ..., lr/2^(backtracks−1) that passes Armijo's test
    f(φ − t∇f) ≤ f(φ) − (t/2)‖∇f‖² + ε, or 0 if none does, so f never rises by more than ε:
    eight units of f's rounding, which lets through steps too small to change f measurably near
    the minimiser. Branch-free, so `vmap` batches it over tasks.
    """

    def objective(phi: Params) -> torch.Tensor:
        distance = sum(((phi[name] - theta[name]) ** 2).sum() for name in phi)
        return loss_fn(functional_call(model, phi, (x,)), y) + prox_lambda / 2 * distance

    gradient, value = grad_and_value(objective)(phi)
    norm_sq = sum((g**2).sum() for g in gradient.values())
    rates = lr * 0.5 ** torch.arange(backtracks, dtype=value.dtype, device=value.device)  # (J,)
    values = torch.stack([objective(_descend(phi, gradient, t)) for t in rates])  # (J,)
    passed = values <= value - rates / 2 * norm_sq + 8 * torch.finfo(value.dtype).eps * value.abs()
    first = passed & (passed.cumsum(0) == 1)
    return _descend(phi, gradient, (rates * first).sum())


def implicit_meta_gradient(
    model: nn.Module,
    tasks: Tasks,
    loss_fn: Loss,
    prox_lambda: float,
    inner_lr: float,
    inner_steps: int,
    cg_iters: int,
) -> tuple[Params, torch.Tensor]:
    """mean_τ g_τ for each parameter of `model` (by name), and each task's query loss at φ*_τ: (T,).

    φ*_τ is `inner_steps` proximal steps from θ with rates up to `inner_lr`; (I + H_τ/λ)⁻¹ is
    applied by `cg_iters` iterations of conjugate gradient.
    """
    theta = {name: p.detach() for name, p in model.named_parameters()}

    def adapt(sx, sy, qx, qy):
        phi = theta
        for _ in range(inner_steps):
            phi = proximal_step(model, theta, phi, sx, sy, loss_fn, prox_lambda, inner_lr)

        def query_loss(phi: Params) -> torch.Tensor:
            return loss_fn(functional_call(model, phi, (qx,)), qy)

        return phi, *grad_and_value(query_loss)(phi)

    with torch.no_grad():
        adapted, query_grads, query_losses = vmap(adapt)(*tasks)
    total = torch.zeros_like(_flat(theta))
    for task in range(tasks.n_tasks):
        phi = {name: value[task] for name, value in adapted.items()}
        sx, sy = tasks.support_x[task], tasks.support_y[task]

        def support_loss(phi: Params) -> torch.Tensor:
            return loss_fn(functional_call(model, phi, (sx,)), sy)

        # H is the Jacobian of a gradient, so symmetric: the vector-Jacobian product of ∇L_s is Hv
        _, hessian_vjp = vjp(grad(support_loss), phi)

        def matvec(v: torch.Tensor) -> torch.Tensor:
            return v + _flat(hessian_vjp(_unflat(v, theta))[0]) / prox_lambda

        query_grad = _flat({name: value[task] for name, value in query_grads.items()})
        total += conjugate_gradient(matvec, query_grad, cg_iters).detach()
    return _unflat(total / tasks.n_tasks, theta), query_losses


def _descend(phi: Params, direction: Params, rate: torch.Tensor) -> Params:
    return {name: phi[name] - rate * direction[name] for name in phi}


def _flat(params: Params) -> torch.Tensor:
    return torch.cat([value.flatten() for value in params.values()])


def _unflat(flat: torch.Tensor, like: Params) -> Params:
    chunks = flat.split([value.numel() for value in like.values()])
    return {name: chunk.view_as(value) for (name, value), chunk in zip(like.items(), chunks)}
