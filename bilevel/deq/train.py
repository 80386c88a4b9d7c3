"""Training a DEQ model: Adam on minibatches, the forward solve's residual and NFE logged at every
step, optionally the Jacobian regulariser, and at intervals the spectral radius of ∂f/∂z at z* and
the cosine of the configured gradient to an exact-adjoint IFT one."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from bilevel.deq.diagnostics import cosine, jacobian_penalty, spectral_radius
from bilevel.deq.layer import Backward, Equilibrium, equilibrium, ift, phantom

Log = Callable[[int, dict], None]
Progress = Callable[..., Iterable]


class DEQModel(nn.Module):
    """y = readout(z*), z* = cell(z*, x), solved from z₀ = 0."""

    def __init__(self, cell: nn.Module, readout: nn.Module, dim: int):
        super().__init__()
        self.cell, self.readout, self.dim = cell, readout, dim

    def forward(self, x: Tensor, solver: Callable, backward: Backward) -> tuple[Tensor, Equilibrium]:
        z0 = x.new_zeros(len(x), self.dim)
        found = equilibrium(self.cell, x, z0, solver, backward)
        return self.readout(found.z), found


def readout(
    dim: int, outputs: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> nn.Linear:
    """A linear readout z ↦ Az + c with A drawn from `generator` (std 1/√dim) and c = 0."""
    layer = nn.Linear(dim, outputs, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(outputs, dim, generator=generator, dtype=dtype) / dim**0.5)
        layer.bias.zero_()
    return layer


class TrainResult(NamedTuple):
    steps: int  # steps taken
    nfe: list[int]  # forward evaluations of f at each step
    residuals: list[float]  # the forward solve's relative residual at each step
    unconverged_steps: int  # steps whose forward solve hit its iteration cap
    diagnostics: list[dict]  # step, spectral radius (mean, max), phantom/IFT cosine
    diverged_step: int | None  # the first step with a non-finite residual or loss


def train_deq(
    model: DEQModel,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    solver: Callable,
    backward: Backward,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    jac_reg: float = 0.0,
    probe: Tensor | None = None,
    probe_y: Tensor | None = None,
    diagnose_every: int = 0,
    spectral: str = "eig",
    phantom_steps: int = 5,
    damping: float = 0.5,
    log: Log = lambda step, metrics: None,
    progress: Progress = lambda iterable, total=None, desc=None: iterable,
) -> TrainResult:
    """Adam (lr) on loss_fn(model(x_batch), y_batch) + jac_reg·‖J‖²_F/numel (Bai et al. 2021) over
    `steps` minibatches drawn without replacement by epoch. Every `diagnose_every` steps (0: never)
    and at the end, on (probe, probe_y): `diagnose`."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order, nfes, residuals, diagnostics, unconverged = torch.empty(0, dtype=torch.long), [], [], [], 0

    def measure(step: int) -> None:
        diagnostics.append(
            diagnose(
                model, probe, probe_y, loss_fn, solver, backward, spectral, phantom(phantom_steps, damping)
            )
        )
        log(step, diagnostics[-1])
        diagnostics[-1] = {"step": step, **diagnostics[-1]}

    diagnosing = bool(diagnose_every) and probe is not None
    for step in progress(range(steps), total=steps, desc="deq"):
        if diagnosing and step % diagnose_every == 0:
            measure(step)
        if len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(x), generator=generator)])
        batch, order = order[:batch_size], order[batch_size:]
        prediction, found = model(x[batch], solver, backward)
        loss = loss_fn(prediction, y[batch])
        total = loss
        metrics = {
            "loss/train": loss.item(),
            "deq/nfe": found.solve.nfe,
            "deq/residual": found.solve.residual,
            "deq/converged": int(found.solve.converged),
        }
        if jac_reg > 0:
            penalty = jacobian_penalty(model.cell, x[batch], found.solve.z, generator)
            total = loss + jac_reg * penalty
            metrics["jac/penalty"] = penalty.item()
        nfes.append(found.solve.nfe)
        residuals.append(found.solve.residual)
        unconverged += not found.solve.converged
        log(step, metrics)
        if not (math.isfinite(found.solve.residual) and math.isfinite(total.item())):
            return TrainResult(step, nfes, residuals, unconverged, diagnostics, step)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    if diagnosing:
        measure(steps)
    return TrainResult(steps, nfes, residuals, unconverged, diagnostics, None)


def diagnose(
    model: DEQModel,
    x: Tensor,
    y: Tensor,
    loss_fn,
    solver,
    backward,
    spectral: str,
    phantom_backward: Backward,
) -> dict:
    """On (x, y): ρ(∂f/∂z) at z* (mean and max over the examples), and the cosines of the phantom
    gradient's and the training backward's parameter gradients to the exact-adjoint IFT one."""
    reference = parameter_gradient(model, x, y, loss_fn, solver, ift("exact"))
    with torch.no_grad():
        z_star = model(x, solver, ift("exact"))[1].solve.z
    radius = spectral_radius(model.cell, x, z_star, method=spectral)
    return {
        "jacobian/spectral_radius": radius.mean().item(),
        "jacobian/spectral_radius_max": radius.max().item(),
        "grad/phantom_cosine": cosine(
            parameter_gradient(model, x, y, loss_fn, solver, phantom_backward), reference
        ),
        "grad/cosine_to_ift": cosine(parameter_gradient(model, x, y, loss_fn, solver, backward), reference),
    }


def parameter_gradient(model: DEQModel, x: Tensor, y: Tensor, loss_fn, solver, backward) -> list[Tensor]:
    """d loss_fn(model(x), y)/dθ with the given backward pass, one tensor per parameter."""
    prediction, _ = model(x, solver, backward)
    return list(torch.autograd.grad(loss_fn(prediction, y), list(model.parameters())))
