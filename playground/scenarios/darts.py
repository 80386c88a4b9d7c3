"""Scenario `darts`: differentiable architecture search (Liu, Simonyan & Yang 2019) on the 8×8
digits, α's gradient from any hypergradient method of `bilevel`, the derived architecture retrained
beside random search at equal compute and the best single operation.

    python -m playground run darts                                   # first order, 10 epochs
    python -m playground run darts method=one_step                   # second order, ξ = w_lr
    python -m playground run darts method=one_step method.hvp=exact  # its product by autograd
    python -m playground run darts method=ift_cg method.iters=20 method.tol=1e-4
    python -m playground run darts method=unrolled method.steps=3

The supernet (`bilevel.darts`): a stem, `cells` cells of `nodes` nodes on `width` features whose
edges mix none, skip, linear and mlp through softmax(α), α shared by the cells. Each step takes an
Adam step on α with the method's dF/dα on a training and a validation batch at the current
weights, then an SGD step on the weights. Logged per epoch: every edge's softmax(α)
(`edge/i-j/op`), `search/skip_fraction`, `search/hessian_eigenvalue` (the dominant eigenvalue of
∇²_α L_val, Zela et al. 2020), `search/ift_cosine` (against CG on the damped weight Hessian).
At the end the architecture derived from α (top_k incoming edges per node, none excluded) is trained
from scratch `repeats` times: `eval/accuracy` is its mean test accuracy. Random search draws
`samples` architectures of the same space, trains each for an equal share of the search's minibatch
steps (two per search step: a weight gradient and a first-order α gradient), and retrains the best
on validation the same way (`baseline/random_search_accuracy`); every edge set to one operation gives
`baseline/best_single_op_accuracy` (the op chosen on validation). Runs on the CPU in float32 (the
diagnostics in float64) whatever `device` says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

import bilevel
from bilevel import darts
from bilevel.digits import load_digits
from metalearn.stats import mean_ci95
from playground.resources import check_memory
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, keywords, option
from playground.scenarios import _darts_plots as plots

_NOT_AT_W = {  # methods that take no current weights w
    "finite_diff": "needs w*(α) solved accurately, which the supernet has not",
    "stn": "learns its own best response ŵ(α) instead of taking the supernet's weights",
}
_DENSE = ("ift_exact",)  # forms the dim(w) × dim(w) weight Hessian
_DENSE_LIMIT = 2000


@dataclass(frozen=True)
class DartsConfig(RunConfig):
    method: str = option(
        "first_order",
        "hypergradient method of α: first_order, one_step (DARTS' second order), ift_cg, unrolled, ...",
        choices=tuple(bilevel.METHODS),
    )
    method_options: dict = keywords(bilevel.METHODS)
    epochs: int = option(10, "search epochs over the 997 training digits", min=1)
    nodes: int = option(3, "intermediate nodes per cell", min=1)
    cells: int = option(1, "cells, sharing α", min=1)
    width: int = option(16, "features per node", min=1)
    top_k: int = option(2, "incoming edges kept per node by the derivation", min=1)
    batch_size: int = option(64, "examples per training and per validation batch", min=1)
    w_lr: float = option(0.05, "SGD rate of the weights (momentum 0.9), also one_step's ξ", above=0)
    alpha_lr: float = option(
        0.01,
        "Adam rate of α (betas 0.5, 0.999, weight decay 1e-3, as DARTS); Adam's first step, "
        "alpha_lr/(1 − 0.5), must be a float32 number",
        above=0,
        max=1.7e38,
    )
    weight_decay: float = option(3e-4, "weight decay in L_train", min=0)
    damping: float = option(
        1.0,
        "δ₀ of the proximal term (δ₀/2)‖w − w_t‖² in L_train: damps the IFT methods' weight Hessian",
        min=0,
    )
    power_iters: int = option(10, "Hessian-vector products per eigenvalue estimate (0: none)", min=0)
    ift_iters: int = option(100, "CG iterations at most of the IFT reference (0: no ift_cosine)", min=0)
    ift_tol: float = option(1e-6, "CG relative residual of the IFT reference (< 1)", min=0)
    retrain_epochs: int = option(
        20, "epochs of training from scratch, for every architecture compared", min=1
    )
    repeats: int = option(3, "trainings from scratch per compared architecture (seeds)", min=1)
    samples: int = option(8, "architectures drawn by random search", min=1)
    plots: bool = option(True, "write the PNG plots")
    threads: int = option(1, "torch CPU threads (0: torch's default); one is fastest for these sizes", min=0)

    def __post_init__(self):
        if self.method in _NOT_AT_W:
            raise ValueError(
                f"method={self.method} {_NOT_AT_W[self.method]}; "
                f"valid: {', '.join(m for m in bilevel.METHODS if m not in _NOT_AT_W)}"
            )
        if self.ift_tol >= 1:
            raise ValueError(
                f"ift_tol={self.ift_tol}: a relative residual >= 1 is met by q = 0 before any CG "
                "iteration, so the IFT reference would be no hypergradient; valid: 0 <= ift_tol < 1"
            )
        if self.top_k > self.nodes:
            raise ValueError(f"top_k={self.top_k} exceeds nodes={self.nodes}: valid: top_k <= nodes")
        weights = supernet_weights(self.nodes, self.cells, self.width)
        if self.method in _DENSE and weights > _DENSE_LIMIT:
            raise ValueError(
                f"method={self.method} forms the {weights}×{weights} weight Hessian; valid: "
                f"ift_cg, or a supernet of at most {_DENSE_LIMIT} weights (width, nodes)"
            )
        bilevel.make_method(self.method, **self.method_options)


def supernet_weights(nodes: int, cells: int, width: int) -> int:
    """The supernet's weights, counted without building it (a large one would allocate them): per
    cell, each of its E = nodes·(nodes + 1)/2 edges has linear's and mlp's three width×width layers
    with biases; a stem from 64 pixels, a projection between cells, a classifier to 10 classes."""
    edges = nodes * (nodes + 1) // 2
    return (
        (64 + 1) * width
        + cells * edges * 3 * (width + 1) * width
        + (cells - 1) * (nodes * width + 1) * width
        + (nodes * width + 1) * 10
    )


_DIGITS = 1797  # examples of the 8×8 digits (bilevel.digits): the most a pass over a split takes
_EDGE_BYTES = 40_000  # Python's objects of one edge's mixed operation (measured: 37 kB)
_FLOATS_PER_EDGE_FEATURE = 16  # autograd's saved floats per example, edge and feature (measured: 15)


def check(config: DartsConfig, device: torch.device) -> None:
    """The memory a search needs (`memory`), on the CPU, where it runs."""
    check_memory(
        memory(config),
        torch.device("cpu"),
        f"nodes={config.nodes}, cells={config.cells}, width={config.width}",
        "width, nodes or cells",
    )


def memory(config: DartsConfig) -> int:
    """Bytes a search needs at its peak, roughly (float32): the supernet's modules and weights, ten
    copies of the weights (gradient, momentum, the methods' second-order products and unrolled
    copies), and what autograd saves of a forward pass over four batches at once (a training and a
    validation batch, and their second-order products; a batch holds at most every digit), or over
    all the digits."""
    edges = config.cells * config.nodes * (config.nodes + 1) // 2
    weights = supernet_weights(config.nodes, config.cells, config.width)
    examples = max(4 * min(config.batch_size, _DIGITS), _DIGITS)
    saved = _FLOATS_PER_EDGE_FEATURE * edges * config.width * examples
    return edges * _EDGE_BYTES + 4 * (11 * weights + saved)


def settings(config: DartsConfig) -> darts.SearchSettings:
    return darts.SearchSettings(
        nodes=config.nodes,
        cells=config.cells,
        width=config.width,
        top_k=config.top_k,
        epochs=config.epochs,
        batch_size=config.batch_size,
        w_lr=config.w_lr,
        alpha_lr=config.alpha_lr,
        weight_decay=config.weight_decay,
        damping=config.damping,
        power_iters=config.power_iters,
        ift_iters=config.ift_iters,
        ift_tol=config.ift_tol,
    )


def run(config: DartsConfig, run) -> dict:
    data = load_digits(seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    method = bilevel.make_method(config.method, **config.method_options)
    result = darts.search(data, method, settings(config), generator, log=run.log, progress=run.progress)
    last = result.epochs[-1]
    summary = {
        "search/genotype": result.genotype.describe(),
        "search/steps": result.steps,
        "search/seconds": result.seconds,
        "search/seconds_per_step": result.seconds / max(result.steps, 1),
        "search/derived_skip_fraction": sum(e.op == "skip" for e in result.genotype.edges)
        / len(result.genotype.edges),
        **{k: last[k] for k in _FINAL if k in last},
        **{f"{k}_start": result.epochs[0][k] for k in _FINAL if k in result.epochs[0]},
    }
    if result.diverged_step is not None:
        summary.update(diverged(result.diverged_step))
        return summary
    found, picked, single, best = _compare(config, data, result, generator, run, summary)
    if config.plots:
        _plot(run, config, result, found, picked, single, best)
    compared = {k: v for k, v in summary.items() if k.startswith(("eval/", "baseline/"))}
    return compared | summary  # the accuracies first: they lead the CLI's one-line headline


def _compare(config: DartsConfig, data, result: darts.SearchResult, generator, run, summary: dict) -> tuple:
    """The derived cell, random search's pick and each single operation everywhere, each trained
    from scratch `repeats` times; their accuracies go into `summary`."""
    train = darts.TrainSettings(
        width=config.width, batch_size=config.batch_size, lr=config.w_lr, weight_decay=config.weight_decay
    )
    steps = config.retrain_epochs * math.ceil(len(data.train.y) / config.batch_size)
    retrain = lambda genotype: [
        darts.train_architecture(genotype, data, steps, train, generator)
        for _ in run.progress(range(config.repeats), desc="retrain")
    ]
    found = retrain(result.genotype)
    summary.update(_accuracies("eval/accuracy", found))
    budget = 2 * result.steps
    random = darts.random_search(
        data, budget, config.samples, config.nodes, config.cells, config.top_k, train, generator
    )
    picked = retrain(random.best.genotype)
    summary.update(_accuracies("baseline/random_search_accuracy", picked))
    summary.update(
        {
            "baseline/random_search_genotype": random.best.genotype.describe(),
            "baseline/random_search_budget_steps": budget,
            "baseline/random_search_steps_each": random.steps_each,
        }
    )
    single = {
        op: retrain(darts.uniform_genotype(op, config.nodes, config.cells))
        for op in darts.OPS
        if op != "none"
    }
    best = max(single, key=lambda op: sum(t.val_accuracy for t in single[op]))
    summary.update(_accuracies("baseline/best_single_op_accuracy", single[best]))
    summary["baseline/best_single_op"] = best
    for op, trained in single.items():
        summary[f"baseline/single_op_accuracy/{op}"] = _accuracies("accuracy", trained)["accuracy"]
    return found, picked, single, best


_FINAL = (
    "search/skip_fraction",
    "search/hessian_eigenvalue",
    "search/ift_cosine",
    "search/val_accuracy",
    "loss/val",
    "loss/train",
)


def _accuracies(key: str, trained: list[darts.Trained]) -> dict:
    """`key`: the mean test accuracy over the trainings, with its 95% interval (`key`_ci95) and the
    mean validation accuracy (val_ in front of `accuracy`)."""
    mean, ci = mean_ci95(torch.tensor([t.test_accuracy for t in trained], dtype=torch.float64))
    val = sum(t.val_accuracy for t in trained) / len(trained)
    return {key: mean.item(), f"{key}_ci95": ci.item(), key.replace("accuracy", "val_accuracy"): val}


def _plot(run, config: DartsConfig, result, found, picked, single, best) -> None:
    title = f"DARTS on digits, {config.method}"
    edges = darts.edge_list(config.nodes)
    run.save_figure(plots.edge_weights(result.alphas, edges, darts.OPS, title), "edge_weights")
    run.save_figure(plots.diagnostics(result.epochs, title), "diagnostics")
    rows = [
        ("DARTS", [t.test_accuracy for t in found]),
        ("random search", [t.test_accuracy for t in picked]),
        *(
            (f"all {op}" + (" (best)" if op == best else ""), [t.test_accuracy for t in ts])
            for op, ts in single.items()
        ),
    ]
    run.save_figure(plots.accuracies(rows, title), "accuracy")


SCENARIO = Scenario(
    name="darts",
    help="differentiable architecture search on the digits: α by any hypergradient method",
    config=DartsConfig,
    run=run,
    headline=(
        "eval/accuracy",
        "baseline/random_search_accuracy",
        "baseline/best_single_op_accuracy",
        "search/ift_cosine",
    ),
    check=check,
    sizes=("width", "nodes", "cells"),
    demo=(
        {
            "label": "first_order",
            "epochs": 4,
            "repeats": 1,
            "retrain_epochs": 5,
            "samples": 4,
            "power_iters": 5,
            "ift_iters": 20,
        },
    ),
)
