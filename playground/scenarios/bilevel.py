"""Scenario `bilevel`: tune λ by gradient descent on F(λ) = L_val(w*(λ), λ) with one hypergradient
method, after measuring every method's error and cost at the start point.

    python -m playground run bilevel problem=ridge method=ift_cg
    python -m playground run bilevel problem=ridge method=truncated inner_steps=1000 k=10
    python -m playground run bilevel problem=lr_horizon inner_steps=1 outer_lr=30  # greedy: one step
    python -m playground run bilevel problem=hypercleaning problem.flip_fraction=0.4
    python -m playground run bilevel problem=ridge method=stn method.tau=0.01    # Self-Tuning Networks
    python -m playground run bilevel problem=darts_toy method=one_step method.xi=0.5  # DARTS' Figure 2

The outer optimiser is plain gradient descent, λ ← λ − β dF/dλ (`outer_lr` = β), so the path on
the plot of F(λ) reads directly. Each outer step logs F(λ) from the problem's exact or reference
solve (`outer/val_loss`), λ, and the hypergradient's norm and cost. The summary has the final λ
and F, `hypergrad/rel_error` (the method's error at the start point against the exact or reference
hypergradient) and `hypergrad/seconds` (the median over the outer steps), the grid-search minimiser
for a scalar λ (`reference/...`), and per problem: `lr_horizon` the greedy (T = 1) optimum beside
the T-step one; `hypercleaning` the AUC of the learned weights separating clean from flipped
examples and the test accuracy against training on all data with equal weights; `method=stn`
(ridge only) its learned best response ŵ against w* (`best_response/...`) and where STN settles
in closed form (`reference/stn_lambda`, figures `best_response` and `stn_bias`); `darts_toy` the
fixed point the chosen method is known to settle at (`reference/method_lambda`) and the paths
of first_order, one_step and ift_exact on F (figure `method_paths`). `alternate=k` takes k inner
steps between outer steps and the hypergradient at that inner iterate, as DARTS does (the default
on darts_toy, k = 1), instead of at the accurate inner solution. With `compare=true` (default)
every method runs at the start point over a range of budgets (`hypergradients.json` and the
error-vs-cost figure). Runs on the CPU in float64 whatever `device` says: the problems have tens
to a thousand parameters.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import ClassVar

import torch

import bilevel
from bilevel import stn
from playground.resources import check_memory
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, keywords, option
from playground.scenarios import _bilevel_plots as plots
from playground.scenarios import _stn_plots as stn_plots

_DEFAULTS = {  # per problem, for the options left at None
    "ridge": dict(method="ift_cg", outer_steps=40, outer_lr=0.5, inner_steps=1000),
    "lr_horizon": dict(method="unrolled", outer_steps=30, outer_lr=1.0, inner_steps=None),  # T = horizon
    "hypercleaning": dict(method="ift_cg", outer_steps=100, outer_lr=30.0, inner_steps=300),
    "darts_toy": dict(method="one_step", outer_steps=100, outer_lr=0.2, inner_steps=50, alternate=1),
}
_STN_INNER_STEPS = 100  # its default best-response steps per outer step
_K_METHODS = ("truncated", "ift_cg", "ift_neumann")
_TOY_PATHS = ("first_order", "one_step", "ift_exact")  # drawn together on darts_toy's F
_COSTS = ("inner_steps", "products", "solves", "seconds")


@dataclass(frozen=True)
class BilevelConfig(RunConfig):
    problem: str = option("ridge", f"the bilevel problem: {', '.join(bilevel.PROBLEMS)}, or module:factory")
    method: str | None = option(
        None,
        f"hypergradient method of the outer steps: {', '.join(bilevel.METHODS)}, or module:factory; "
        "default ift_cg, unrolled on lr_horizon, one_step on darts_toy; "
        "stn: Self-Tuning Networks (ridge only)",
    )
    outer_steps: int | None = option(
        None,
        "outer gradient steps on λ, default 40 (ridge), 30 (lr_horizon), 100 (hypercleaning)",
        min=1,
    )
    outer_lr: float | None = option(
        None,
        "outer step size β, default 0.5 (ridge), 1 (lr_horizon), 30 (hypercleaning)",
        min=0,
    )
    inner_steps: int | None = option(
        None,
        "T, inner steps of unrolled, truncated and forward, default 1000 "
        "(ridge), 300 (hypercleaning), horizon (lr_horizon); stn: best-response steps per outer step (100)",
        min=1,
    )
    k: int | None = option(
        None,
        "truncated: steps back-propagated (default 10); ift_cg: iterations "
        "(default dim w); ift_neumann: series terms (default inner_steps)",
        min=1,
    )
    alternate: int | None = option(
        None,
        "inner steps between outer steps, the hypergradient taken at that inner iterate "
        "(DARTS); 0: at the accurate inner solution. Default 1 on darts_toy, else 0",
        min=0,
    )
    problem_options: dict = keywords(bilevel.PROBLEMS)
    method_options: dict = keywords(bilevel.METHODS)
    compare: bool = option(True, "measure every method's error and cost at the start point")
    plots: bool = option(True, "write the PNG plots")
    threads: int = option(1, "torch CPU threads (0: torch's default); one is fastest for these sizes", min=0)

    # flat names of the factories' keywords, kept for one release beside `problem.<kw>=`, `method.<kw>=`
    renamed: ClassVar[dict[str, str]] = {
        **{
            name: f"problem.{name}"
            for name in ("dim", "train", "noise", "horizon", "chains", "flip_fraction")
        },
        **{name: f"method.{name}" for name in ("xi", "hvp", "tol", "scale", "tau", "samples")},
    }

    def __post_init__(self):
        bilevel.PROBLEMS.factory(self.problem)  # an unknown name: one line naming the valid ones
        defaults = _DEFAULTS.get(self.problem, _DEFAULTS["ridge"])  # a user's problem: ridge's
        for name in ("method", "outer_steps", "outer_lr"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[name])
        if self.alternate is None:
            object.__setattr__(self, "alternate", defaults.get("alternate", 0))
        if self.alternate and self.method == "stn":
            raise ValueError(
                f"alternate={self.alternate} does not apply to method=stn, which keeps its own ŵ(λ)"
            )
        if self.alternate and self.problem == "lr_horizon":
            raise ValueError(
                f"alternate={self.alternate} does not apply to problem={self.problem}; it applies to: "
                "ridge, hypercleaning, darts_toy"
            )
        bilevel.METHODS.factory(self.method)
        if self.method == "stn" and self.problem != "ridge":
            raise ValueError(
                f"method=stn applies to problem=ridge only (a linear model's gated layer), not {self.problem}"
            )
        if self.k is not None and self.method not in _K_METHODS:
            raise ValueError(
                f"k={self.k} does not apply to method={self.method}; it applies to: {', '.join(_K_METHODS)}"
            )
        sizes = _sizes(self)  # checked here, not in the scenario's check: the problem is built below
        check_memory(
            memory(self),
            torch.device("cpu"),
            f"problem={self.problem} with {', '.join(f'{k}={v}' for k, v in sizes.items())}",
            ", ".join(k for k in sizes if k != "inner_steps") + " or inner_steps",
        )
        problem = make_problem(self)
        if self.inner_steps is None:
            steps = _STN_INNER_STEPS if self.method == "stn" else defaults["inner_steps"] or problem.horizon
            object.__setattr__(self, "inner_steps", steps)
        if isinstance(problem, bilevel.LrHorizon) and self.inner_steps > problem.horizon:
            raise ValueError(
                f"inner_steps={self.inner_steps} exceeds horizon={problem.horizon}: "
                "lr_horizon's SGD noise is drawn for `horizon` steps"
            )
        if self.method == "truncated" and self.k is not None and self.k > self.inner_steps:
            raise ValueError(
                f"k={self.k} exceeds inner_steps={self.inner_steps}: truncated "
                "back-propagates through at most all of them"
            )
        make_method(self, problem)


# For each built-in problem, from its options: (floats of its data, size of w, size of λ, floats
# one inner step saves for the backward pass)
_SIZES = {
    "ridge": lambda o: ((o["train"] + o["val"]) * (o["dim"] + 1), o["dim"], 1, o["train"] + o["dim"]),
    "hypercleaning": lambda o: (
        (o["train"] + o["val"] + o["test"]) * (o["dim"] + 2),
        o["dim"] + 1,
        o["train"],
        o["train"] + o["dim"],
    ),
    "lr_horizon": lambda o: (o["horizon"] * o["chains"] * o["dim"], o["dim"], 1, o["chains"] * o["dim"]),
    "darts_toy": lambda o: (0, 1, 1, 1),
}


def _problem_options(config: BilevelConfig) -> dict:
    """The options of a built-in problem: those given, the others at their factory's default."""
    defaults = {name: option.default for name, option in bilevel.PROBLEMS.options(config.problem).items()}
    return defaults | config.problem_options


def _sizes(config: BilevelConfig) -> dict[str, int]:
    """The options that size a built-in problem, by their `problem.<keyword>` names, and
    `inner_steps` when given."""
    options = _problem_options(config) if config.problem in _SIZES else {}
    sizes = {
        f"problem.{k}": v
        for k, v in options.items()
        if k in ("dim", "train", "val", "test", "horizon", "chains")
    }
    return sizes | ({"inner_steps": config.inner_steps} if config.inner_steps is not None else {})


def memory(config: BilevelConfig) -> int:
    """Bytes a run of a built-in problem needs at its peak, roughly (float64; 0 for a problem of
    one's own, whose sizes are its own): its data, the dense w×w Hessians (ift_exact, and the
    reference hypergradient) and w×λ mixed derivatives (forward mode carries dw/dλ), two of each,
    and what `inner_steps` inner steps save for unrolled differentiation, which the comparison of
    methods runs whatever the method (twice: the graph and its gradient)."""
    if config.problem not in _SIZES:
        return 0
    options = _problem_options(config)
    data, w, lam, step = _SIZES[config.problem](options)
    default = _DEFAULTS[config.problem]["inner_steps"] or options.get("horizon", 1)
    steps = config.inner_steps or (_STN_INNER_STEPS if config.method == "stn" else default)
    return 8 * (data + 2 * w * w + 2 * w * lam + 2 * steps * step)


def make_problem(config: BilevelConfig, **changed) -> bilevel.BilevelProblem:
    """The problem with its `problem.<kw>` options (and `changed` ones), seeded by the run's seed
    when it draws anything and no `problem.seed` is given."""
    options = {**config.problem_options, **changed}
    if "seed" in bilevel.PROBLEMS.options(config.problem):  # darts_toy draws nothing
        options.setdefault("seed", config.seed)
    return bilevel.make_problem(config.problem, **options)


def make_method(config: BilevelConfig, problem: bilevel.BilevelProblem) -> bilevel.Method:
    """The outer steps' method with this run's budget; stn is stateful, so one per run."""
    steps, k = config.inner_steps, config.k
    budget = {  # the budgets `inner_steps` and `k` set; a `method.<kw>` given wins
        "unrolled": {"steps": steps},
        "forward": {"steps": steps},
        "truncated": {"steps": steps, "last": k or min(10, steps)},
        "ift_cg": {"iters": k or problem.w0.numel()},
        "ift_neumann": {"terms": k or steps},
        "stn": {"inner_steps": steps, "seed": config.seed},
    }.get(config.method, {})
    return bilevel.make_method(config.method, **{**budget, **config.method_options})


def run(config: BilevelConfig, run) -> dict:
    problem = make_problem(config)
    reference = problem.hypergradient(problem.lam0)
    comparison = compare_methods(problem, config, reference) if config.compare else []
    method = make_method(config, problem)
    result = bilevel.outer_descent(
        problem,
        method,
        config.outer_steps,
        config.outer_lr,
        log=run.log,
        progress=run.progress,
        alternate=config.alternate,
    )
    final = result.lambdas[-1]
    summary = {
        "outer/lambda": final.tolist(),
        "outer/val_loss": result.losses[-1],
        "outer/val_loss_start": result.losses[0],
        "steps_run": len(result.losses) - 1,
        "hypergrad/method": config.method,
    }
    if result.hypergradients:
        first = result.hypergradients[0]
        summary["hypergrad/rel_error"] = bilevel.relative_error(first.value, reference)
        summary["hypergrad/seconds"] = statistics.median(h.seconds for h in result.hypergradients)
        if comparison and isinstance(method, bilevel.SelfTuningNetwork):  # its first step, at λ₀
            comparison.append(
                {
                    "method": "stn",
                    "rel_error": summary["hypergrad/rel_error"],
                    **{k: getattr(first, k) for k in _COSTS},
                }
            )
    if result.diverged_step is not None:
        summary.update(diverged(result.diverged_step, result.last_finite))
    curves = _curves(problem, config) if problem.lambda_range is not None else {}
    learned = isinstance(method, bilevel.SelfTuningNetwork) and method.sigmas
    check = _stn_check(problem, method, final, config.seed) if learned else None  # summary and figure
    summary.update(_problem_summary(problem, config, final, curves, check))
    if comparison:
        run.save_json("hypergradients", comparison)
    if config.plots:
        _plot(run, problem, config, result, comparison, curves, method, check)
    return summary


def compare_methods(
    problem: bilevel.BilevelProblem, config: BilevelConfig, reference: torch.Tensor
) -> list[dict]:
    """Every method at λ₀ over a range of budgets: relative error and costs, one row per call.
    Each method runs once first on its smallest budget so that one-time setup is not timed."""
    steps, dim = config.inner_steps, problem.w0.numel()
    sweeps = {
        "unrolled": [{"steps": s} for s in _geometric(steps)],
        "truncated": [{"steps": steps, "last": s} for s in _geometric(steps)],
        "forward": [{"steps": s} for s in _geometric(steps)],
        "ift_exact": [{}],
        "ift_cg": [{"iters": s} for s in _geometric(dim)],
        "ift_neumann": [{"terms": s} for s in _geometric(steps)],
        "finite_diff": [{}],
        "first_order": [{}],
        "one_step": [{"hvp": "fd"}, {"hvp": "exact"}],
    }
    rows = []
    for name, budgets in sweeps.items():
        bilevel.make_method(name, **budgets[0])(problem, problem.lam0)
        for options in budgets:
            hypergradient = bilevel.make_method(name, **options)(problem, problem.lam0)
            rows.append(
                {
                    "method": name,
                    **options,
                    "rel_error": bilevel.relative_error(hypergradient.value, reference),
                    **{k: getattr(hypergradient, k) for k in _COSTS},
                }
            )
    return rows


def _geometric(top: int, points: int = 7) -> list[int]:
    """About `points` budgets from 1 to `top`, evenly spaced on a log scale."""
    return sorted({round(top ** (j / (points - 1))) for j in range(points)})


def _curves(problem: bilevel.BilevelProblem, config: BilevelConfig) -> dict:
    """F on a λ grid (and for lr_horizon also F_1, the greedy one-step objective)."""
    grid, losses = bilevel.outer_loss_curve(problem)
    curves = {"grid": grid, "losses": losses}
    if isinstance(problem, bilevel.LrHorizon):
        greedy = make_problem(config, horizon=1)
        curves["greedy_losses"] = bilevel.outer_loss_curve(greedy)[1]
    return curves


def _problem_summary(
    problem, config: BilevelConfig, final: torch.Tensor, curves: dict, check: stn.ResponseCheck | None
) -> dict:
    summary = {}
    if curves:
        best = curves["grid"][curves["losses"].argmin()].item()
        summary.update(
            {
                "reference/lambda": best,
                "reference/val_loss": curves["losses"].min().item(),
                "outer/lambda_rel_error": abs(final.item() - best) / abs(best),
            }
        )
    if isinstance(problem, bilevel.LrHorizon):
        greedy = curves["grid"][curves["greedy_losses"].argmin()].item()
        summary.update(
            {
                "outer/lr": _exp(final.item()),
                "reference/lr": math.exp(summary["reference/lambda"]),
                "reference/greedy_lambda": greedy,
                "reference/greedy_lr": math.exp(greedy),
            }
        )
    if isinstance(problem, bilevel.HyperCleaning):
        weights = torch.sigmoid(final)
        summary.update(
            {
                "clean/auc": problem.clean_auc(final),
                "clean/weight_mean_clean": weights[~problem.flipped].mean().item(),
                "clean/weight_mean_flipped": weights[problem.flipped].mean().item(),
                "test/accuracy": problem.accuracy(problem.inner_solution(final)),
                "test/accuracy_all_data": problem.accuracy(problem.inner_solution(problem.lam0)),
            }
        )
    if isinstance(problem, bilevel.DartsToy):
        summary["reference/method_lambda"] = _toy_fixed_point(
            problem, config.method, config.method_options.get("xi")
        )
    if check is not None:
        summary.update(_stn_summary(check))
    return summary


def _exp(x: float) -> float:
    """e^x, and inf past float64's range (the learning rate of a diverged λ) where math.exp raises."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _stn_check(problem, method, lam: torch.Tensor, seed: int) -> stn.ResponseCheck:
    """The learned ŵ at the final λ against w*, over its final perturbation (Monte Carlo, seeded)."""
    slope = torch.func.jacfwd(method.response)(lam).detach()
    generator = torch.Generator().manual_seed(seed)
    responses = lambda lams: method.responses(lams).detach()  # noqa: E731
    return stn.check_response(problem, responses, slope, lam, method.sigma.item(), generator)


def _stn_summary(check: stn.ResponseCheck) -> dict:
    return {
        "best_response/jacobian_cosine": check.jacobian_cosine,
        "best_response/error": check.error,
        "best_response/sigma": check.sigma,
        "reference/stn_jacobian_cosine": check.optimum_jacobian_cosine,
        "reference/stn_error": check.optimum_error,
        "reference/stn_lambda": check.settles_at,
    }


def _toy_fixed_point(problem: bilevel.DartsToy, method: str, xi: float | None) -> float:
    """Where each method settles on DARTS' toy: ∂_αL_val = w − 2 vanishes at α = 2; the one-step
    approximation at 2/(1 + 2ξ); every exact or converged method at the optimum α = 1."""
    if method == "first_order":
        return 2.0
    if method == "one_step":
        return 2 / (1 + 2 * (problem.inner_lr if xi is None else xi))
    return 1.0


def _toy_paths(problem: bilevel.DartsToy, config: BilevelConfig) -> dict[str, tuple[list, list]]:
    """The outer path (λ_s, F(λ_s)) of each of first_order, one_step and ift_exact with this run's
    settings, for one figure."""
    paths = {}
    for name in _TOY_PATHS:
        options = config.method_options if name == config.method == "one_step" else {}
        result = bilevel.outer_descent(
            problem,
            bilevel.make_method(name, **options),
            config.outer_steps,
            config.outer_lr,
            alternate=config.alternate,
        )
        paths[name] = (torch.stack(result.lambdas).tolist(), result.losses)
    return paths


def _plot(
    run,
    problem,
    config: BilevelConfig,
    result,
    comparison: list[dict],
    curves: dict,
    method,
    check: stn.ResponseCheck | None,
) -> None:
    title = f"{config.problem}: {config.method}"
    if comparison:
        run.save_figure(plots.error_vs_cost(comparison, config.problem), "hypergradient_cost")
    if curves:
        lambdas = torch.stack(result.lambdas).tolist()
        run.save_figure(plots.outer_path(curves, lambdas, result.losses, title), "outer_path")
    if isinstance(problem, bilevel.DartsToy):
        xi = config.method_options.get("xi") if config.method == "one_step" else None
        fixed = {name: _toy_fixed_point(problem, name, xi) for name in _TOY_PATHS}
        run.save_figure(plots.method_paths(curves, _toy_paths(problem, config), fixed), "method_paths")
    elif isinstance(problem, bilevel.HyperCleaning):
        weights = torch.sigmoid(result.lambdas[-1])
        run.save_figure(
            plots.outer_losses_and_weights(
                result.losses, weights[~problem.flipped], weights[problem.flipped], title
            ),
            "outer_path",
        )
    if check is not None:
        final, sigma = result.lambdas[-1], method.sigma.item()
        grid = torch.linspace(*problem.lambda_range, 201, dtype=torch.float64)
        exact = torch.func.vmap(problem.inner_solution)(grid)  # (201, d)
        responses = {"final": (final.item(), method.responses(grid).detach())}
        run.save_figure(plots.best_responses(grid, exact, responses, sigma), "best_response")
        sigmas, taus = [0.01 * 2**k for k in range(9)], [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
        bias = stn.bias_curves(problem, final, sigmas, taus, torch.Generator().manual_seed(config.seed))
        measured = {**check._asdict(), "tau": method.tau, "lambda": final.item()}
        best = curves["grid"][curves["losses"].argmin()].item()
        run.save_figure(stn_plots.bias(bias, measured, best), "stn_bias")


SCENARIO = Scenario(
    name="bilevel",
    help="tune λ through a hypergradient; every method's error vs cost",
    config=BilevelConfig,
    run=run,
    headline=("outer/lambda", "outer/lambda_rel_error", "hypergrad/rel_error", "outer/val_loss"),
    demo=(
        {"label": "ridge-ift_cg", "problem": "ridge", "method": "ift_cg"},
        {"label": "hypercleaning", "problem": "hypercleaning", "outer_steps": 50},
        {"label": "darts_toy-one_step", "problem": "darts_toy"},
        {"label": "ridge-stn", "problem": "ridge", "method": "stn", "compare": False},
    ),
)
