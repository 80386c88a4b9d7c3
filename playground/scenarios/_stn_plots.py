"""The `stn` scenario's figure, from numbers the scenario computed: the hyperparameter schedule STN
followed, beside the random-search trials and their validation accuracy."""

from __future__ import annotations

from matplotlib.figure import Figure


def schedule(rows: list[dict], names: list[str], trials: list[dict], summary: dict) -> Figure:
    """Left: each dropout rate against training step, the best random-search trial's as dotted
    lines; middle: the weight decay (log axis); right: the trials' validation accuracy against
    their weight decay, STN's final point and accuracy marked."""
    fig = Figure(figsize=(13, 4), layout="constrained")
    rates, decay, search = (fig.add_subplot(1, 3, k) for k in (1, 2, 3))
    steps = [row["step"] for row in rows]
    best = max(trials, key=lambda t: t["val_accuracy"])
    for k, name in enumerate(names[:-1]):
        rates.plot(steps, [row[name] for row in rows], color=f"C{k}", label=f"{name} (STN)")
        rates.axhline(best[name], color=f"C{k}", ls=":", lw=1)
    rates.plot([], [], color="grey", ls=":", label="best random-search trial")
    rates.set(xlabel="training step", ylabel="dropout rate", ylim=(0, 1), title="STN's dropout schedule")
    rates.legend(fontsize=8)
    decay.plot(steps, [row["weight_decay"] for row in rows], color="C4", label="STN")
    decay.axhline(best["weight_decay"], color="C4", ls=":", lw=1, label="best random-search trial")
    decay.set(xlabel="training step", ylabel="weight decay β", yscale="log", title="weight decay")
    decay.legend(fontsize=8)
    search.scatter(
        [t["weight_decay"] for t in trials],
        [t["val_accuracy"] for t in trials],
        color="grey",
        label="random search",
    )
    search.scatter(
        [rows[-1]["weight_decay"]],
        [summary["eval/val_accuracy"]],
        color="C3",
        marker="*",
        s=120,
        label="STN (final)",
    )
    search.set(
        xscale="log",
        xlabel="weight decay β",
        ylabel="validation accuracy",
        title=f"test accuracy: STN {summary['eval/accuracy']:.3f}, "
        f"random search {summary['baseline/random_search_accuracy']:.3f}",
    )
    search.legend(fontsize=8)
    return fig


def bias(curves: dict[str, list[dict]], measured: dict, reference_lambda: float) -> Figure:
    """STN's bias on ridge (`bilevel problem=ridge method=stn`): the closed-form fully trained
    response against the exact best response, over σ (top) and over τ at the σ it settles at
    (bottom): 1 − cosine of dŵ/dλ to dw*/dλ, E‖ŵ − w*‖, and where λ settles against the minimiser
    of F; the run's own trained response as a star at its final σ and its τ."""
    fig = Figure(figsize=(13, 7), layout="constrained")
    columns = (
        ("1 − cos(dŵ/dλ, dw*/dλ)", lambda r: 1 - r["jacobian_cosine"], "log", "1 - jacobian_cosine"),
        ("E‖ŵ(λ+δ) − w*(λ+δ)‖", lambda r: r["error"], "log", "error"),
        ("λ where STN settles", lambda r: r["lambda"], "linear", "lambda"),
    )
    for row, axis in enumerate(("sigma", "tau")):
        rows = [r for r in curves[axis] if r["sigma"] == r["sigma"]]  # σ* is nan where it runs off
        xs = [r[axis] for r in rows]
        for column, (label, value, scale, key) in enumerate(columns):
            ax = fig.add_subplot(2, 3, 3 * row + column + 1)
            ax.plot(
                xs, [value(r) for r in rows], "o-", color="grey", ms=3, label="fully trained (closed form)"
            )
            ax.plot([measured[axis]], [value(measured)], "*", color="C3", ms=12, label="this run's STN")
            if key == "lambda":
                ax.axhline(reference_lambda, color="black", ls=":", lw=1, label="minimiser of F")
            ax.set(xscale="log", yscale=scale, xlabel="σ" if axis == "sigma" else "τ (σ at its fixed point)")
            ax.set_ylabel(label)
            if row == 0 and column == 0:
                ax.legend(fontsize=8)
    fig.suptitle("STN on ridge: the bias of a perturbed best response (Bae & Grosse 2020)")
    return fig
