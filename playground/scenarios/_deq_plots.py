"""The `deq` scenario's figures, drawn from numbers the scenario computed: residual against function
evaluations per solver, eigenvalues of ∂f/∂z at z*, training curves with the diagnostics, and the
1-D fit."""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure

_FLOOR = 1e-17  # an exact zero residual drawn at the bottom of the log axis


def residual_vs_nfe(traces: dict[str, list[float]], tol: float, task: str) -> Figure:
    """‖f(z) − z‖/‖f(z)‖ at each evaluation of f, one line per forward solver, the tolerance dotted."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, trace) in enumerate(traces.items()):
        values = [max(v, _FLOOR) if math.isfinite(v) else float("nan") for v in trace]
        ax.plot(range(1, len(values) + 1), values, color=f"C{k}", lw=1.2, label=f"{name} ({len(values)})")
    ax.axhline(tol, color="grey", ls=":", lw=1, label=f"tol {tol:g}")
    ax.set(
        yscale="log",
        xlabel="evaluations of f (NFE)",
        ylabel="relative residual",
        title=f"{task}: forward solvers from z = 0",
    )
    ax.legend(fontsize=8)
    return fig


def spectrum(eigenvalues: dict[str, torch.Tensor], title: str) -> Figure:
    """Eigenvalues in the complex plane with the unit circle: fixed-point iteration contracts
    where all lie inside it."""
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot()
    angle = torch.linspace(0, 2 * math.pi, 200)
    ax.plot(angle.cos(), angle.sin(), color="grey", lw=1, ls="--", label="|λ| = 1")
    for k, (label, values) in enumerate(eigenvalues.items()):
        ax.plot(values.real, values.imag, "o", color=f"C{k}", ms=4, mfc="none", label=label)
    ax.set(aspect="equal", xlabel="Re λ", ylabel="Im λ", title=title)
    ax.legend(fontsize=8)
    return fig


def training(result, task: str) -> Figure:
    """NFE per step (and the cap hits), ρ(∂f/∂z) at z* over training, and the phantom gradient's
    cosine to the IFT one."""
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    nfe, radius, cosines = fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3)
    nfe.plot(result.nfe, color="C0", lw=0.8)
    nfe.set(xlabel="step", ylabel="forward NFE", title=f"{task}: NFE per training step")
    steps = [d["step"] for d in result.diagnostics]
    radius.plot(steps, [d["jacobian/spectral_radius"] for d in result.diagnostics], "o-", ms=3, label="mean")
    radius.plot(
        steps, [d["jacobian/spectral_radius_max"] for d in result.diagnostics], "s--", ms=3, label="max"
    )
    radius.axhline(1.0, color="grey", ls=":", lw=1)
    radius.set(xlabel="step", ylabel="ρ(∂f/∂z) at z*", title="spectral radius over training")
    radius.legend(fontsize=8)
    cosines.plot(steps, [d["grad/phantom_cosine"] for d in result.diagnostics], "o-", ms=3, label="phantom")
    cosines.plot(
        steps, [d["grad/cosine_to_ift"] for d in result.diagnostics], "s--", ms=3, label="training backward"
    )
    cosines.set(xlabel="step", ylabel="cosine to exact IFT gradient", title="gradient agreement")
    cosines.legend(fontsize=8)
    return fig


def fit(x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, prediction: torch.Tensor) -> Figure:
    """The held-out points, the noiseless curve and the DEQ's prediction."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    order = x[:, 0].argsort()
    ax.plot(x[:, 0], y[:, 0], ".", color="grey", ms=2, alpha=0.5, label="validation")
    ax.plot(x[order, 0], clean[order, 0], color="k", lw=1, label="1.5x³ + x² − 5x + 2 sin x − 3")
    ax.plot(x[order, 0], prediction[order, 0], color="C1", lw=1.5, label="DEQ")
    ax.set(xlabel="x", ylabel="y", title="synthetic1d: fit")
    ax.legend(fontsize=8)
    return fig
