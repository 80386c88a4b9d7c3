"""The `metarl` scenario's figures: return against adaptation steps, meta-training, trajectories.

They draw what the scenario hands them (curves with their confidence intervals, the logged rows,
the paths of adapted policies) and compute nothing.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

Curve = tuple[list[float], list[float]]  # mean return over tasks after 0..K steps, and its 95% CI


def save_all(
    run,
    env: str,
    curves: dict[str, Curve],
    maml_rows: list[dict],
    pretrain_rows: list[dict],
    paths: list[np.ndarray] | None,
    goals: list[tuple[float, float]] | None,
) -> None:
    """Every figure; `paths` and `goals` (Navigation2D only, else None) for the trajectories."""
    run.save_figure(adaptation(env, curves), "adaptation")
    run.save_figure(training(env, maml_rows, pretrain_rows), "training")
    if paths is not None:
        run.save_figure(trajectories(paths, goals), "trajectories")


def adaptation(env: str, curves: dict[str, Curve]) -> Figure:
    """Return on fresh tasks against adaptation steps, one line per policy (Finn et al. 2017, fig. 5)."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for name, (means, cis) in curves.items():
        ax.errorbar(range(len(means)), means, yerr=cis, marker="o", capsize=3, label=name)
    steps = max(len(means) for means, _ in curves.values())
    ax.set(
        xlabel="adaptation steps",
        ylabel="average return",
        title=f"{env}: fresh tasks, 95% CI",
        xticks=range(steps),
    )
    ax.legend()
    return fig


def training(env: str, maml_rows: list[dict], pretrain_rows: list[dict]) -> Figure:
    """Mean training return per iteration: MAML before and after adaptation, the multi-task policy.
    Rows are `{"step": iteration, **metrics}`, each training counting its own iterations."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for rows, key, label in (
        (maml_rows, "train/pre_adapt_return", "MAML before adaptation"),
        (maml_rows, "train/post_adapt_return", "MAML after adaptation"),
        (pretrain_rows, "pretrain/return", "multi-task policy"),
    ):
        if rows:
            ax.plot([row["step"] for row in rows], [row[key] for row in rows], label=label)
    ax.set(xlabel="iteration", ylabel="average return", title=f"{env}: meta-training")
    ax.legend()
    return fig


def trajectories(paths: list[np.ndarray], goals: list[tuple[float, float]]) -> Figure:
    """Navigation2D: paths (positions before each step, (length, 2) each) towards their goals."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    for path, goal in zip(paths, goals):
        (line,) = ax.plot(path[:, 0], path[:, 1], lw=1)
        ax.plot(*goal, marker="*", ms=12, color=line.get_color())
    ax.plot(0, 0, "ko", ms=4)
    ax.set(
        xlim=(-0.6, 0.6), ylim=(-0.6, 0.6), aspect="equal", title="after one adaptation step (stars: goals)"
    )
    return fig
