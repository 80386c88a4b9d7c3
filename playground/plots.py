"""Plots the runner draws itself: the curves of several runs overlaid on shared axes."""

from __future__ import annotations

import math

import matplotlib
from matplotlib.figure import Figure

MAX_PANELS = 12
_COLOURS = matplotlib.colormaps["tab20"]


def scalar_keys(rows: list[dict]) -> list[str]:
    """Metric keys with numeric scalar values, namespaced ones first."""
    keys = dict.fromkeys(
        k
        for row in rows
        for k, v in row.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
    )
    return sorted(keys, key=lambda k: ("/" not in k, k))


def overlay_curves(runs: dict[str, list[dict]], title: str) -> Figure | None:
    """One panel per metric shared by the runs, each run one line (log y where values span decades)."""
    keys = [k for k in scalar_keys([r for rows in runs.values() for r in rows])][:MAX_PANELS]
    if not keys:
        return None
    columns = min(3, len(keys))
    rows_n = math.ceil(len(keys) / columns)
    fig = Figure(figsize=(4.2 * columns, 3.0 * rows_n), layout="constrained")
    fig.suptitle(title)
    styles = {label: _style(index) for index, label in enumerate(runs)}
    for index, key in enumerate(keys):
        ax = fig.add_subplot(rows_n, columns, index + 1)
        values = []
        for label, rows in runs.items():
            points = [
                (r["step"], r[key])
                for r in rows
                if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
            ]
            if points:
                steps, ys = zip(*points)
                ax.plot(
                    steps,
                    ys,
                    label=label,
                    linewidth=1.2,
                    marker="o" if len(points) < 3 else None,
                    **styles[label],
                )
                values += ys
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    legend = {}
    for ax in fig.axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    if len(legend) > 1:
        fig.legend(
            list(legend.values()),
            list(legend),
            loc="outside lower center",
            ncol=min(4, len(legend)),
            fontsize=8,
        )
    return fig


def _style(index: int) -> dict:
    """A colour and line style per run: 20 colours, then the same colours dashed, dotted, ..."""
    return {"color": _COLOURS(index % 20), "linestyle": ("-", "--", ":", "-.")[index // 20 % 4]}
