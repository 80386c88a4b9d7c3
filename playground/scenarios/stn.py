"""Scenario `stn`: Self-Tuning Networks tune an MLP's per-layer dropout rates and weight decay on the
8×8 digits during one training run, beside random search over the same hyperparameters.

    python -m playground run stn                          # 2 hidden layers of 64, 2,000 steps
    python -m playground run stn tau=0.01 scale=1         # a wider perturbation, kept wide
    python -m playground run stn trials=20                # more, shorter random-search trials

The network is an MLP of STN's gated layers (MacKay et al. 2019): its weights are a best response
ŵ(λ) to λ = (logit p_0, ..., logit p_L−1, log β), dropout p_l on the input of layer l (0 the
pixels) and weight decay β. Training steps draw λ per example around the current λ (scale σ,
learned with the entropy bonus τ·Σ log σ); every `inner_steps` of them one Adam step on λ and σ
descends the validation loss through ŵ (package `bilevel.stn`). Random search trains `trials`
plain MLPs of the same shape at drawn hyperparameters for steps/trials steps each, the same number
of training steps in all, and keeps the best on validation. With `fixed_baseline=true` a plain MLP
is also trained for `steps` steps at STN's final hyperparameters (the paper's "final value" row:
a schedule against its end point). Logged every `log_every` steps: the hyperparameters, σ, the
losses and validation accuracy; saved: the schedule (`schedule.json`, λ after every step on it,
constrained) and the trials (`random_search.json`). Summary: test accuracy of each (`eval/accuracy`,
`baseline/random_search_accuracy`, `baseline/fixed_final_accuracy`) and the final hyperparameters.
The data split (997/400/400) is fixed; `seed` draws the weights, the batches and the perturbations.
Runs on the CPU whatever `device` says. The paper's result at scale, cited and not reproduced:
on PTB the grid-searched output dropout is 0.68 and STN's schedule, started at 0.05, ends at 0.78
(MacKay et al. 2019, Table 1; the official README's commands).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bilevel.digits import load_digits
from bilevel.stn import mlp
from playground.resources import check_memory
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, option
from playground.scenarios import _stn_plots as plots

# Adam's first step, lr/(1 − β₁) = 10·lr, is added to float32 tensors, and torch refuses a step
# beyond float32's largest number, 3.4e38
_ADAM_LR_MAX = 3.4e37
_ADAM = " (its first step, 10·lr, a float32 number)"
_TAU_MAX = 1e19  # √(3.4e38) = 1.8e19: Adam's square of τ overflows float32 past it


@dataclass(frozen=True)
class StnConfig(RunConfig):
    hidden: int = option(64, "units per hidden layer", min=1)
    depth: int = option(
        2, "hidden layers (depth + 1 dropout rates: the input's and each hidden layer's)", min=1
    )
    steps: int = option(2000, "training steps of STN, and of random search in all", min=1)
    inner_steps: int = option(2, "training steps per hyperparameter step (the paper's 2)", min=1)
    warmup: int = option(200, "training steps before the first hyperparameter step", min=0)
    batch: int = option(64, "examples per training and per hyperparameter step", min=1, max=400)
    lr: float = option(1e-3, f"Adam step size of the weights{_ADAM}", above=0, max=_ADAM_LR_MAX)
    hyper_lr: float = option(0.03, f"Adam step size of λ and log σ{_ADAM}", above=0, max=_ADAM_LR_MAX)
    scale: float = option(0.5, "initial perturbation scale σ of every λ (unconstrained units)", above=0)
    tau: float = option(1e-3, "entropy bonus τ of the perturbation (<= 1e19)", min=0)
    dropout: float = option(0.05, "initial dropout rate of every layer (the paper's 0.05)", above=0, max=0.95)
    weight_decay: float = option(1e-4, "initial weight decay β", above=0)
    trials: int = option(8, "random-search trials, steps/trials training steps each", min=1)
    fixed_baseline: bool = option(True, "also train a plain MLP at STN's final hyperparameters")
    log_every: int = option(100, "training steps between logged rows", min=1)
    plots: bool = option(True, "write the PNG plots")
    threads: int = option(1, "torch CPU threads (0: torch's default); one is fastest for these sizes", min=0)

    def __post_init__(self):
        if self.tau > _TAU_MAX:
            raise ValueError(
                f"tau={self.tau}: Adam squares the bonus's gradient −τ on log σ in float32, which "
                f"overflows past 1.8e19 (σ would freeze or turn NaN); valid: 0 <= tau <= {_TAU_MAX:g}"
            )
        if self.trials > self.steps:
            raise ValueError(f"trials={self.trials} exceeds steps={self.steps}; valid: trials <= steps")
        if self.warmup >= self.steps:
            raise ValueError(f"warmup={self.warmup}; valid: warmup < steps={self.steps}")


_DIGITS = 1797  # examples of the 8×8 digits (bilevel.digits): the most a pass over a split takes
_LAYER_BYTES = 8_000  # Python's objects of one layer


def check(config: StnConfig, device: torch.device) -> None:
    """The memory a run needs (`memory`), on the CPU, where it runs."""
    check_memory(
        memory(config),
        torch.device("cpu"),
        f"hidden={config.hidden}, depth={config.depth}",
        "hidden or depth",
    )


def memory(config: StnConfig) -> int:
    """Bytes a run needs at its peak, roughly (float32): STN's gated layers (W and V, in × out each,
    and out × n gates of the n = depth + 2 hyperparameters, for weights and biases), eight copies
    (gradients, Adam's moments, the plain MLPs trained beside it), and eight floats per unit and
    example of a pass over a whole split."""
    hidden, depth, gates = config.hidden, config.depth, config.depth + 2

    def layer(n_in: int, n_out: int) -> int:
        return 2 * n_in * n_out + 2 * n_out * gates + 3 * n_out

    weights = layer(64, hidden) + (depth - 1) * layer(hidden, hidden) + layer(hidden, 10)
    units = 64 + depth * hidden + 10
    return (depth + 1) * _LAYER_BYTES + 4 * (8 * weights + 8 * _DIGITS * units)


def run(config: StnConfig, run) -> dict:
    data = load_digits()
    train, val, test = (tuple(split) for split in data)
    sizes = [train[0].shape[1], *[config.hidden] * config.depth, 10]
    names = mlp.hyperparameter_names(config.depth + 1)
    lam0 = mlp.unconstrained([config.dropout] * (config.depth + 1), config.weight_decay)
    training = dict(batch=config.batch, lr=config.lr)
    result = mlp.stn_tune(
        train,
        val,
        sizes,
        lam0,
        steps=config.steps,
        inner_steps=config.inner_steps,
        warmup=config.warmup,
        hyper_lr=config.hyper_lr,
        scale=config.scale,
        tau=config.tau,
        seed=config.seed,
        log=run.log,
        progress=run.progress,
        log_every=config.log_every,
        **training,
    )
    final = mlp.constrained(result.lam)
    summary = {
        "eval/accuracy": mlp.accuracy(result.net, test, result.lam),
        "eval/val_accuracy": mlp.accuracy(result.net, val, result.lam),
        **{f"hyper/{name}": value for name, value in zip(names, final.tolist())},
        **{f"hyper/sigma_{name}": value for name, value in zip(names, result.sigma.tolist())},
        "hyper/start": dict(zip(names, mlp.constrained(lam0).tolist())),
    }
    if result.diverged_step is not None:
        summary.update(diverged(result.diverged_step))
        return summary
    trials = mlp.random_search(
        train,
        val,
        sizes,
        config.trials,
        config.steps // config.trials,
        seed=config.seed,
        progress=run.progress,
        **training,
    )
    best = mlp.best_trial(trials)
    summary.update(
        {
            "baseline/random_search_accuracy": mlp.accuracy(best.net, test, best.lam, hnet=False),
            "baseline/random_search_val_accuracy": best.val_accuracy,
            "baseline/random_search_steps_per_trial": config.steps // config.trials,
            **{
                f"baseline/random_search_{name}": value
                for name, value in zip(names, mlp.constrained(best.lam).tolist())
            },
        }
    )
    if config.fixed_baseline:
        net, finite = mlp.train_fixed(train, sizes, result.lam, config.steps, seed=config.seed, **training)
        summary["baseline/fixed_final_accuracy"] = (
            mlp.accuracy(net, test, result.lam, hnet=False) if finite else 0.0
        )
    schedule = [
        {"step": step, **dict(zip(names, mlp.constrained(lam).tolist()))} for step, lam in result.schedule
    ]
    trial_rows = [
        {"val_accuracy": t.val_accuracy, **dict(zip(names, mlp.constrained(t.lam).tolist()))} for t in trials
    ]
    run.save_json("schedule", schedule)
    run.save_json("random_search", trial_rows)
    if config.plots:
        run.save_figure(plots.schedule(schedule, names, trial_rows, summary), "schedule")
    return summary


SCENARIO = Scenario(
    name="stn",
    help="Self-Tuning Networks: dropout rates and weight decay of an MLP tuned in one run",
    config=StnConfig,
    run=run,
    headline=("eval/accuracy", "baseline/random_search_accuracy", "baseline/fixed_final_accuracy"),
    check=check,
    sizes=("hidden", "depth"),
    demo=({"label": "digits-short", "steps": 400, "warmup": 100, "trials": 4, "fixed_baseline": False},),
)
