"""The `maml` scenario's figures: training curves, error vs adaptation steps, and the tasks themselves."""
from __future__ import annotations

import json

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch.func import functional_call

from metalearn.fewshot.sine import sample_sine_params, sine
from metalearn.maml import fine_tune

_LABELS = {"eval": None, "baseline": "pretrain"}  # None: the run's own algorithm


def save_all(run, config, learners: dict, family, summary: dict) -> None:
    labels = {prefix: _LABELS[prefix] or config.algo for prefix in learners}
    run.save_figure(training_curves(run.dir / "metrics.jsonl", labels), "training")
    run.save_figure(error_vs_steps(summary, labels, family.kind), "adaptation")
    if config.task == "sine":
        run.save_figure(sine_fits(learners, labels, config), "sine_fits")
    else:
        run.save_figure(task_grid(family, torch.Generator().manual_seed(config.seed)), "tasks")


def training_curves(metrics_path, labels: dict) -> Figure:
    """Meta-training loss and validation post-adaptation error against iterations."""
    rows = [json.loads(line) for line in open(metrics_path)]
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
    """Post-adaptation error (or accuracy) against test-time steps, with 95% bands (Finn et al. 2017, fig. 3)."""
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


def sine_fits(learners: dict, labels: dict, config, n_tasks: int = 3) -> Figure:
    """Adapted fits against the true sinusoid on held-out tasks (Finn et al. 2017, fig. 2)."""
    generator = torch.Generator().manual_seed(config.seed + 3)  # tasks unseen by the evaluations
    amplitude, phase = sample_sine_params(n_tasks, generator)
    support_x = -5 + 10 * torch.rand(n_tasks, config.shots, 1, generator=generator)
    support_y = sine(support_x, amplitude, phase)
    grid = torch.linspace(-5, 5, 200)[None, :, None].expand(n_tasks, -1, -1)
    truth = sine(grid, amplitude, phase)
    steps = sorted({0, 1, config.eval_steps})
    fig = Figure(figsize=(4 * n_tasks, 3.2 * len(learners)))
    for row, (prefix, learner) in enumerate(learners.items()):
        params = {n: p.detach() for n, p in learner.model.named_parameters()}
        rates = {n: r.detach() if torch.is_tensor(r) else r for n, r in learner.rates().items()}
        for i in range(n_tasks):
            ax = fig.add_subplot(len(learners), n_tasks, row * n_tasks + i + 1)
            ax.plot(grid[i, :, 0], truth[i, :, 0], "k", lw=2, label="ground truth")
            for step in steps:
                fast = fine_tune(learner.model, params, rates, support_x[i], support_y[i], step, learner.loss_fn)
                with torch.no_grad():
                    prediction = functional_call(learner.model, fast, (grid[i],))
                ax.plot(grid[i, :, 0], prediction[:, 0].detach(), "--", lw=1, label=f"{step} steps")
            ax.scatter(support_x[i, :, 0], support_y[i, :, 0], marker="^", color="C3", zorder=3, label="support")
            ax.set_title(f"{labels[prefix]}, K={config.shots}", fontsize=9)
            ax.set_ylim(-5.5, 5.5)
    fig.axes[0].legend(fontsize=7)
    fig.subplots_adjust(hspace=0.35, wspace=0.25)
    return fig


def task_grid(family, generator: torch.Generator, n_tasks: int = 4) -> Figure:
    """Support sets of a few training tasks, one task per row, columns by class."""
    tasks = family.sample("train", n_tasks, generator)
    images = tasks.support_x[..., 0, :, :]  # (T, ways * shots, 28, 28)
    columns = images.shape[1]
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
