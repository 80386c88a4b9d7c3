"""The `darts` scenario's figures, drawn from numbers the scenario computed: every edge's softmax(α)
over the search, the per-epoch diagnostics of collapse, and the test accuracies compared."""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure


def edge_weights(
    alphas: list[torch.Tensor], edges: list[tuple[int, int]], ops: tuple[str, ...], title: str
) -> Figure:
    """One panel per edge i→j: softmax(α_ij) of each operation against the epoch."""
    columns = min(len(edges), 3)
    rows = math.ceil(len(edges) / columns)
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows + 0.4), layout="constrained")
    weights = torch.softmax(torch.stack(alphas), dim=-1)  # (epochs + 1, edges, ops)
    epochs = range(len(alphas))
    for e, (i, j) in enumerate(edges):
        ax = fig.add_subplot(rows, columns, e + 1)
        for k, op in enumerate(ops):
            ax.plot(epochs, weights[:, e, k], color=f"C{k}", lw=1.5, label=op)
        ax.set(title=f"edge {i}→{j}", xlabel="epoch", ylim=(0, None))
        if e == 0:
            ax.set_ylabel("softmax(α)")
            ax.legend(fontsize=7)
    fig.suptitle(title)
    return fig


def diagnostics(epochs: list[dict], title: str) -> Figure:
    """Per epoch: the fraction of edges won by skip or none, the dominant eigenvalue of ∇²_α L_val,
    and the cosine of the method's hypergradient to the IFT one (panels for what was measured)."""
    panels = [
        ("search/skip_fraction", "edges won by skip/none"),
        ("search/hessian_eigenvalue", "dominant eigenvalue of ∇²_α L_val"),
        ("search/ift_cosine", "cos(method, IFT)"),
        ("search/val_accuracy", "supernet validation accuracy"),
    ]
    panels = [(key, label) for key, label in panels if key in epochs[0]]
    fig = Figure(figsize=(3.3 * len(panels), 3), layout="constrained")
    for p, (key, label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        ax.plot(range(len(epochs)), [e[key] for e in epochs], "o-", ms=3, color=f"C{p}")
        ax.set(xlabel="epoch", title=label)
    fig.suptitle(title)
    return fig


def accuracies(rows: list[tuple[str, list[float]]], title: str) -> Figure:
    """Test accuracy of each compared architecture: every training from scratch as a dot, the mean
    as a bar."""
    fig = Figure(figsize=(1.3 * len(rows) + 1.5, 3.5), layout="constrained")
    ax = fig.add_subplot()
    for r, (_, values) in enumerate(rows):
        ax.bar(r, sum(values) / len(values), color=f"C{r}", alpha=0.5)
        ax.plot([r] * len(values), values, "o", color=f"C{r}", ms=4)
    low = min(min(v) for _, v in rows)
    ax.set(xticks=range(len(rows)), ylabel="test accuracy", ylim=(max(0.0, low - 0.05), 1.0), title=title)
    ax.set_xticklabels([label for label, _ in rows], rotation=20, fontsize=8)
    return fig
