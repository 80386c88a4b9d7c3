"""The `bilevel` scenario's figures, drawn from numbers the scenario computed: hypergradient error
against cost, the outer path on F(λ), and exact against learned best responses."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

_FLOOR = 1e-17  # an exact zero error drawn at the bottom of the log axis
_MARKERS = "osD^vPX"  # methods that coincide (unrolled and forward) stay visible


def error_vs_cost(rows: list[dict], problem: str) -> Figure:
    """Relative error of each method at λ₀ against gradient-sized operations (inner steps plus
    Hessian/Jacobian-vector products) and against seconds, one line per method over its budgets."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    by_products, by_seconds = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    for k, method in enumerate(methods):
        mine = [row for row in rows if row["method"] == method]
        errors = [max(row["rel_error"], _FLOOR) for row in mine]
        style = dict(
            color=f"C{k}", marker=_MARKERS[k % len(_MARKERS)], ms=7 - k % 3, mfc="none", lw=1, label=method
        )
        counted = [
            (row["inner_steps"] + row["products"], e)
            for row, e in zip(mine, errors)
            if row["inner_steps"] + row["products"] > 0
        ]
        if counted:
            by_products.plot(*zip(*counted), **style)
        by_seconds.plot([row["seconds"] for row in mine], errors, **style)
    by_products.set(
        xscale="log",
        yscale="log",
        xlabel="inner steps + Hessian/Jacobian-vector products",
        ylabel="relative error of dF/dλ",
        title=f"{problem}: error against operations",
    )
    by_seconds.set(
        xscale="log", yscale="log", xlabel="seconds", title="against time (finite_diff: exact inner solves)"
    )
    by_seconds.legend(fontsize=8)
    return fig


def outer_path(curves: dict, lambdas: list[float], losses: list[float], title: str) -> Figure:
    """F(λ) on the grid with the outer iterates on it; for lr_horizon also the greedy F_1."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    grid, values = curves["grid"], curves["losses"]
    ax.plot(grid, values, color="grey", lw=1.5, label="F(λ)")
    ax.axvline(grid[values.argmin()].item(), color="grey", ls=":", lw=1, label="grid minimiser")
    ax.plot(lambdas, losses, "o-", color="C0", ms=3, lw=0.8, label="outer steps")
    ax.plot(lambdas[0], losses[0], "s", color="C0", ms=6)
    ax.set_ylim(top=1.2 * max(*losses, values[0].item()))  # F may soar at the grid's far end
    if "greedy_losses" in curves:
        greedy, one_step = ax.twinx(), curves["greedy_losses"]
        greedy.plot(grid, one_step, color="C1", ls="--", lw=1.2)
        greedy.axvline(grid[one_step.argmin()].item(), color="C1", ls=":", lw=1)
        rise = (one_step[0] - one_step.min()).item()
        greedy.set_ylim(one_step.min().item() - 0.2 * rise, one_step.min().item() + 4 * rise)
        greedy.set_ylabel("F_1(λ): loss after one step", color="C1")
        ax.plot([], [], color="C1", ls="--", label="greedy F_1 (right axis)")
        ax.set_ylabel("F_T(λ): expected loss after T steps")
    else:
        ax.set_ylabel("validation loss F(λ)")
    ax.set(xlabel="λ", title=title)
    ax.legend(fontsize=8)
    return fig


def method_paths(curves: dict, paths: dict[str, tuple[list, list]], fixed: dict[str, float]) -> Figure:
    """F(λ) with each method's outer path on it (left) and λ against outer step (right), each
    method's known fixed point dotted."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    on_f, over_steps = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    on_f.plot(curves["grid"], curves["losses"], color="grey", lw=1.5, label="F(λ)")
    for k, (name, (lambdas, losses)) in enumerate(paths.items()):
        on_f.plot(lambdas, losses, "o-", color=f"C{k}", ms=2.5, lw=0.8, label=name)
        over_steps.plot(lambdas, color=f"C{k}", lw=1.2, label=f"{name} (fixed point {fixed[name]:.3g})")
        over_steps.axhline(fixed[name], color=f"C{k}", ls=":", lw=1)
    on_f.set(xlabel="λ (α)", ylabel="validation loss F(λ)", title="outer paths on F")
    over_steps.set(xlabel="outer step", ylabel="λ (α)", title="where each method settles")
    on_f.legend(fontsize=8)
    over_steps.legend(fontsize=8)
    return fig


def outer_losses_and_weights(
    losses: list[float], clean: torch.Tensor, flipped: torch.Tensor, title: str
) -> Figure:
    """F against outer step, and the final weights σ(λ_i) of clean and of flipped examples."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    loss_ax, weight_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    loss_ax.plot(losses, color="C0")
    loss_ax.set(xlabel="outer step", ylabel="validation loss F(λ)", title=title)
    bins = torch.linspace(0, 1, 26).tolist()
    weight_ax.hist(clean.tolist(), bins=bins, alpha=0.6, label=f"clean ({len(clean)})")
    weight_ax.hist(flipped.tolist(), bins=bins, alpha=0.6, label=f"flipped ({len(flipped)})")
    weight_ax.set(xlabel="weight σ(λ_i)", ylabel="training examples", title="learned weights")
    weight_ax.legend(fontsize=8)
    return fig


def best_responses(
    grid: torch.Tensor, exact: torch.Tensor, responses: dict, radius: float, coordinates: int = 4
) -> Figure:
    """A few coordinates of w*(λ) and of a learned affine ŵ(λ) (STN's, `method=stn`), each
    response drawn within max(3r, 1) of λ₀, the λ it was trained around, where λ₀ ± r is shaded."""
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for j in range(min(coordinates, exact.shape[1])):
        ax.plot(grid, exact[:, j], color=f"C{j}", lw=1.5, label=f"w*_{j}(λ)" if j == 0 else None)
        for (label, (centre, values)), style in zip(responses.items(), ("--", "-.")):
            near = (grid - centre).abs() <= max(3 * radius, 1.0)
            ax.plot(
                grid[near],
                values[near, j],
                color="black",
                ls=style,
                lw=1,
                label=f"ŵ(λ), {label} fit" if j == 0 else None,
            )
    for centre, _ in responses.values():
        ax.axvspan(centre - radius, centre + radius, color="grey", alpha=0.15)
    ax.set(
        xlabel="λ",
        ylabel="weights (first coordinates)",
        title="exact best response w*(λ) and the learned one",
    )
    ax.legend(fontsize=8)
    return fig
