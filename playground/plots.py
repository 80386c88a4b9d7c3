"""Plots the runner draws itself: the curves of runs that differ in one setting, on shared axes."""

from __future__ import annotations

import math

import matplotlib
from matplotlib.figure import Figure

CI_SUFFIX = "_ci95"  # a metric's 95% confidence half-width is logged as <metric>_ci95
_COLOURS = matplotlib.colormaps["tab20"]


def scalar_keys(rows: list[dict]) -> list[str]:
    """Metric keys with numeric scalar values, namespaced ones first; confidence half-widths
    (`<metric>_ci95`) are not curves of their own."""
    keys = dict.fromkeys(
        k
        for row in rows
        for k, v in row.items()
        if k != "step" and not k.endswith(CI_SUFFIX) and is_number(v)
    )
    return sorted(keys, key=lambda k: ("/" not in k, k))


def overlay_curves(
    runs: dict[str, list[dict]],
    keys: list[str],
    varying: str,
    references: dict[str, list[tuple[float, str]]] | None = None,
) -> Figure | None:
    """One panel per key that some run logged, each run one line named by its label (its value of
    the option `varying` names, the legend's title), its `<key>_ci95` drawn as a band around it,
    and each (value, source) of `references[key]` as a dashed horizontal line; a log y axis where
    the values span more than two decades."""
    logged = set(scalar_keys([row for rows in runs.values() for row in rows]))
    keys = [k for k in keys if k in logged]
    if not keys:
        return None
    columns = min(3, len(keys))
    width = max(4.2 * columns, 6.4)  # room for the legend of many runs
    fig = Figure(figsize=(width, 3.0 * math.ceil(len(keys) / columns)), layout="constrained")
    styles = {label: _style(index) for index, label in enumerate(runs)}
    for index, key in enumerate(keys):
        ax = fig.add_subplot(math.ceil(len(keys) / columns), columns, index + 1)
        values: list[float] = []
        for label, rows in runs.items():
            points = [
                (r["step"], r[key], r.get(key + CI_SUFFIX))
                for r in rows
                if is_number(r.get(key)) and math.isfinite(r[key])
            ]
            if not points:
                continue
            steps, ys, cis = zip(*points)
            line = ax.plot(
                steps,
                ys,
                label=_literal(label),
                lw=1.2,
                marker="o" if len(points) < 3 else None,
                **styles[label],
            )
            if all(is_number(c) and math.isfinite(c) for c in cis):
                low, high = [y - c for y, c in zip(ys, cis)], [y + c for y, c in zip(ys, cis)]
                ax.fill_between(steps, low, high, color=line[0].get_color(), alpha=0.15, lw=0)
            values += ys
        for value, source in (references or {}).get(key, []):
            ax.axhline(value, color="k", ls="--", lw=0.9, label=_literal(f"known: {value:.4g} ({source})"))
            values.append(value)
        if values and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_yscale("log")
        ax.set_title(_literal(key), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    legend: dict[str, object] = {}
    for ax in fig.axes:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    if legend:
        fig.legend(
            list(legend.values()),
            list(legend),
            title=_literal(varying),
            loc="outside lower center",
            ncol=min(4, len(legend)),
            fontsize=8,
            title_fontsize=8,
        )
    return fig


def _literal(text: str) -> str:
    """Text drawn as written: a `$` would otherwise start mathtext (tick labels keep theirs)."""
    return str(text).replace("$", r"\$")


def is_number(value) -> bool:
    """A real number (int or float, not bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _style(index: int) -> dict:
    """A colour and line style per run: 20 colours, then the same colours dashed, dotted, ..."""
    return {"color": _COLOURS(index % 20), "linestyle": ("-", "--", ":", "-.")[index // 20 % 4]}
