"""The `icl` scenario's figures: training against the baselines, error vs context, probes, weights.

They draw what the scenario hands them (its summary, its logged rows, the attention weights) and
compute nothing.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

_BASELINES = (("gd/loss", "GD, 1 step"), ("ridge/loss", "ridge"), ("ols/loss", "least squares"))


def save_all(
    run, summary: dict, history: list[dict], attention: list[tuple[str, np.ndarray, np.ndarray]] | None
) -> None:
    """Every figure; `attention` holds (title, W_KQ, W_PV) per column of the weights figure, or
    None for a model without them."""
    if len(history) > 1:
        run.save_figure(training(summary, history), "training")
    run.save_figure(context_and_ood(summary), "context")
    run.save_figure(probes(summary), "probes")
    if attention is not None:
        run.save_figure(weights(attention), "weights")


def training(summary: dict, history: list[dict]) -> Figure:
    """Training and evaluation loss against the baselines; alignment with GD over training."""
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_align = fig.subplots(1, 2)
    steps = [row["step"] for row in history]
    ax_loss.plot(steps, [row["loss/train"] for row in history], label="train", alpha=0.6)
    ax_loss.plot(steps, [row["eval/loss"] for row in history], label="eval", lw=2)
    lines = list(_BASELINES)
    if len(summary["gd/steps_loss"]) > 1:
        k = len(summary["gd/steps_loss"])
        summary = {**summary, "gdk": summary["gd/steps_loss"][-1], "gdppk": summary["gdpp/loss"][-1]}
        lines += [("gdk", f"GD, {k} steps"), ("gdppk", f"GD++, {k} steps")]
    for (key, label), style in zip(lines, ("--", ":", "-.", (0, (5, 1)), (0, (1, 3)))):
        ax_loss.axhline(summary[key], color="k", ls=style, lw=1, label=label)
    top = 1.2 * max(max(row["eval/loss"] for row in history), summary["gd/loss"])
    ax_loss.set(xlabel="step", ylabel="MSE", ylim=(0, top), title="in-context loss")
    ax_loss.legend(fontsize=8)
    ax_align.plot(steps, [row["probe/model_cos"] for row in history], label="model cos")
    ax_align.set(xlabel="step", ylabel="cosine", title="alignment with GD")
    twin = ax_align.twinx()
    twin.plot(steps, [row["probe/preds_diff"] for row in history], "C1", label="preds diff")
    twin.plot(steps, [row["probe/model_diff"] for row in history], "C2", label="model diff")
    twin.set(yscale="log", ylabel="distance")
    handles = ax_align.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax_align.legend(handles=handles, loc="center right", fontsize=8)
    return fig


def context_and_ood(summary: dict) -> Figure:
    """Error vs number of in-context examples (Garg et al., 2022); loss under x -> αx, w -> αw."""
    fig = Figure(figsize=(11, 4))
    ax_n, ax_ood = fig.subplots(1, 2)
    for name, label in (("model", "model"), ("gd", "GD (η per N)"), ("ridge", "ridge"), ("ols", "OLS")):
        ax_n.plot(summary["context/n"], summary[f"context/{name}"], "o-", ms=3, label=label)
    ax_n.set(xlabel="in-context examples N", ylabel="MSE", title="error vs context length")
    ax_n.legend(fontsize=8)
    for kind, style in (("x", "-"), ("w", "--")):
        for name, color in (("model", "C0"), ("gd", "C1")):
            ax_ood.plot(
                summary["ood/scale"],
                summary[f"ood/{kind}/{name}"],
                style,
                color=color,
                marker="o",
                ms=3,
                label=f"{name}, {kind} -> α{kind}",
            )
    ax_ood.set(
        xlabel="α",
        ylabel="MSE",
        xscale="log",
        yscale="log",
        xticks=summary["ood/scale"],
        xticklabels=[f"{a:g}" for a in summary["ood/scale"]],
        title="out of distribution",
    )
    ax_ood.minorticks_off()
    ax_ood.legend(fontsize=7)
    return fig


def probes(summary: dict) -> Figure:
    """R² of linear probes on the query token's hidden state, per layer (Akyürek et al., 2022)."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    layers = np.arange(len(summary["probe/r2_xty"]))
    ax.bar(layers - 0.2, summary["probe/r2_xty"], 0.4, label="Xᵀy")
    ax.bar(layers + 0.2, summary["probe/r2_w"], 0.4, label="implied ŵ")
    ax.set(xlabel="layer (0: input)", ylabel="probe R²", xticks=layers, title="linear probes")
    ax.legend(fontsize=8)
    return fig


def weights(attention: list[tuple[str, np.ndarray, np.ndarray]]) -> Figure:
    """Learned W_KQ, W_PV (summed over heads) per layer next to the GD construction."""
    fig = Figure(figsize=(2.6 * len(attention), 5))
    axes = fig.subplots(2, len(attention), squeeze=False)
    for column, (title, kq, pv) in enumerate(attention):
        for row, (name, matrix) in enumerate((("W_KQ", kq), ("W_PV", pv))):
            limit = float(np.abs(matrix).max()) or 1.0
            image = axes[row, column].imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes[row, column].set(title=f"{title}: {name}", xticks=[], yticks=[])
            fig.colorbar(image, ax=axes[row, column], shrink=0.7)
    return fig
