"""The `maml` scenario's figures: training curves, error vs adaptation steps, and the tasks themselves.

They draw what the scenario hands them (the logged rows, the summary, the adapted fits and the
sampled tasks) and compute nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from metalearn.fewshot import Tasks


class SineFits(NamedTuple):
    tasks: Tasks  # support points, and each task's whole curve as its query set: (T, points, 1)
    steps: list[int]  # the adaptation steps drawn
    predictions: dict[str, torch.Tensor]  # by summary prefix: (len(steps), T, points, 1)


def save_all(
    run,
    labels: dict[str, str],
    rows: list[dict],
    summary: dict,
    kind: str,
    fits: SineFits | None,
    tasks: Tasks | None,
) -> None:
    """Every figure; `labels` names each summary prefix drawn, `fits` or `tasks` the examples shown."""
    run.save_figure(training_curves(rows, labels), "training")
    run.save_figure(error_vs_steps(summary, labels, kind), "adaptation")
    if fits is not None:
        run.save_figure(sine_fits(fits, labels), "sine_fits")
    if tasks is not None:
        run.save_figure(task_grid(tasks), "tasks")


def training_curves(rows: list[dict], labels: dict) -> Figure:
    """Meta-training loss and validation post-adaptation error against iterations."""
    fig = Figure(figsize=(9, 3.5))
    loss_ax, eval_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, ax in (("loss/meta_train", loss_ax), ("loss/pretrain", loss_ax)):
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*zip(*points), lw=1, label=key.split("/")[1])
    for prefix, label in labels.items():
        keys = (f"{prefix}/post_adapt_mse", f"{prefix}/post_adapt_acc")
        key = next((k for k in keys if any(k in r for r in rows)), None)
        if key:
            eval_ax.plot(*zip(*[(r["step"], r[key]) for r in rows if key in r]), marker="o", label=label)
            eval_ax.set_ylabel(key.split("/")[1])
    loss_ax.set(xlabel="iteration", ylabel="training loss", yscale="log", title="meta-training")
    eval_ax.set(xlabel="iteration", title="held-out tasks, after adaptation")
    for ax in (loss_ax, eval_ax):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.subplots_adjust(wspace=0.3)
    return fig


def error_vs_steps(summary: dict, labels: dict, kind: str) -> Figure:
    """Post-adaptation error (or accuracy) against test-time steps, with 95% bands (Finn et al. 2017,
    fig. 3)."""
    name = "mse" if kind == "regression" else "acc"
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for prefix, label in labels.items():
        mean = torch.tensor(summary[f"{prefix}/{name}_by_step"])
        ci = torch.tensor(summary[f"{prefix}/{name}_ci95_by_step"])
        steps = torch.arange(len(mean))
        ax.plot(steps, mean, marker="o", label=label)
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2)
    ax.set(xlabel="adaptation steps", ylabel=f"query {name} (test tasks)", title="after adaptation")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def sine_fits(fits: SineFits, labels: dict) -> Figure:
    """Adapted fits against the true sinusoid on held-out tasks (Finn et al. 2017, fig. 2)."""
    tasks = fits.tasks
    n_tasks, shots = tasks.support_x.shape[:2]
    fig = Figure(figsize=(4 * n_tasks, 3.2 * len(fits.predictions)))
    for row, (prefix, predictions) in enumerate(fits.predictions.items()):
        for i in range(n_tasks):
            ax = fig.add_subplot(len(fits.predictions), n_tasks, row * n_tasks + i + 1)
            ax.plot(tasks.query_x[i, :, 0], tasks.query_y[i, :, 0], "k", lw=2, label="ground truth")
            for step, prediction in zip(fits.steps, predictions[:, i]):
                ax.plot(tasks.query_x[i, :, 0], prediction[:, 0], "--", lw=1, label=f"{step} steps")
            ax.scatter(
                tasks.support_x[i, :, 0],
                tasks.support_y[i, :, 0],
                marker="^",
                color="C3",
                zorder=3,
                label="support",
            )
            ax.set_title(f"{labels[prefix]}, K={shots}", fontsize=9)
            ax.set_ylim(-5.5, 5.5)
    fig.axes[0].legend(fontsize=7)
    fig.subplots_adjust(hspace=0.35, wspace=0.25)
    return fig


def task_grid(tasks: Tasks) -> Figure:
    """Support sets of a few training tasks, one task per row, columns by class."""
    images = tasks.support_x[..., 0, :, :]  # (T, ways * shots, 28, 28)
    n_tasks, columns = images.shape[:2]
    fig = Figure(figsize=(0.9 * columns, 0.95 * n_tasks))
    for t in range(n_tasks):
        for c in range(columns):
            ax = fig.add_subplot(n_tasks, columns, t * columns + c + 1)
            ax.imshow(images[t, c], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if t == 0:
                ax.set_title(f"class {tasks.support_y[t, c].item()}", fontsize=7)
    fig.suptitle("sample training tasks (support sets)", fontsize=9)
    return fig
