"""Scenario `deq`: deep equilibrium models, z* = f(z*, x), solved forward by fixed-point iteration,
Anderson or Broyden and differentiated by the implicit function theorem, a phantom gradient or
unrolling (bilevel.deq).

    python -m playground run deq task=linear                       # closed forms: z*, dL/d(W, U, b)
    python -m playground run deq task=linear solver=broyden backward=ift adjoint=cg
    python -m playground run deq task=synthetic1d jac_reg=4        # Bai, Koltun & Kolter 2021, §5.1
    python -m playground run deq task=digits backward=phantom
    python -m playground run deq task=mnist download=true data_dir=~/data

`task=linear`: f(z, x) = Wz + Ux + b with ρ(W) = `radius`, float64; the summary has the forward
solve's error against z* = (I − W)⁻¹(Ux + b) (`deq/forward_error`) and the gradient's error against
the closed form (`deq/grad_error`), and with `compare=true` every solver's and every backward's.
Training tasks (float32): Adam on minibatches, the forward solve's residual and NFE logged at every
step (`deq/converged` 0 marks a solve that hit `max_iter`), ρ(∂f/∂z) at z* and the phantom
gradient's cosine to the exact IFT one every `diagnose_every` steps; the summary has `deq/nfe`, the
evaluations to reach `tol` on the held-out inputs at the end (cap 4·max_iter). A non-finite residual
or loss ends the run `diverged` at its step. Runs on the CPU whatever `device` says (widths of tens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bilevel import deq
from bilevel.deq import DEQModel, load_mnist, mnist_available, readout, synthetic1d, train_deq
from playground.errors import BadInput
from playground.resources import check_memory
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, option
from playground.scenarios import _deq_plots as plots

TASKS = ("linear", "synthetic1d", "digits", "mnist")
_TRAINING_DEFAULTS = dict(tol=1e-4, max_iter=50, adjoint="neumann", adjoint_iters=20, steps=300, lr=3e-3)
_DEFAULTS = {  # per task, for the options left at None
    "linear": dict(tol=1e-12, max_iter=500, adjoint="exact", adjoint_iters=200, dim=10),
    "synthetic1d": _TRAINING_DEFAULTS | dict(dim=50, width=50, batch_size=256),
    "digits": _TRAINING_DEFAULTS | dict(dim=64, width=64, batch_size=64),
    "mnist": _TRAINING_DEFAULTS | dict(dim=100, width=100, batch_size=128, steps=None, lr=1e-3),  # one epoch
}
_TRAINING = ("steps", "batch_size", "lr", "jac_reg", "width", "diagnose_every")
_PER_TASK = {
    "radius": ("linear",),
    "batch": ("linear",),
    "inputs": ("linear",),
    "train": ("synthetic1d",),
    "val": ("synthetic1d",),
    "noise": ("synthetic1d",),
    "data_dir": ("mnist",),
    **{name: TASKS[1:] for name in _TRAINING},
}
_EIG_LIMIT = 128  # dims up to this get every eigenvalue of ∂f/∂z; larger ones power iteration


@dataclass(frozen=True)
class DeqConfig(RunConfig):
    task: str = option("linear", "linear (closed forms), synthetic1d, digits, mnist", choices=TASKS)
    solver: str = option("anderson", "forward solver", choices=tuple(deq.FORWARD_SOLVERS))
    tol: float | None = option(
        None, "forward tolerance on ‖f(z) − z‖/‖f(z)‖, default 1e-12 linear, 1e-4", above=0
    )
    max_iter: int | None = option(None, "forward evaluations cap, default 500 linear, 50", min=1)
    memory: int | None = option(None, "anderson: memory m (6)", min=1)
    lam: float | None = option(None, "anderson: regularisation λ, relative to GGᵀ (1e-4)", min=0)
    backward: str = option(
        "ift", "ift, phantom or unrolled (through the forward iterations)", choices=tuple(deq.BACKWARDS)
    )
    adjoint: str | None = option(
        None, "ift: adjoint solve, default exact (linear), neumann", choices=deq.ADJOINT_SOLVERS
    )
    adjoint_iters: int | None = option(
        None, "ift cg/neumann: iterations or terms, default 200 linear, 20", min=1
    )
    adjoint_tol: float | None = option(None, "ift cg: relative tolerance < 1 (0: all iterations)", min=0)
    phantom_steps: int | None = option(None, "phantom: steps k (5)", min=1)
    damping: float | None = option(None, "phantom: damping τ (0.5)", above=0, max=1)
    dim: int | None = option(
        None, "size of z, default 10 linear, 50 synthetic1d, 64 digits, 100 mnist", min=1
    )
    inputs: int | None = option(None, "linear: size of x (4)", min=1)
    radius: float | None = option(None, "linear: spectral radius of W (0.9)", min=0)
    batch: int | None = option(None, "linear: examples x (8)", min=1)
    width: int | None = option(
        None, "hidden units of f = W₂ᵀReLU(W₁z + Ux + b), default 50, 64 digits, 100 mnist", min=1
    )
    jac_reg: float | None = option(None, "Jacobian regularisation weight γ on ‖∂f/∂z‖²_F/numel (0)", min=0)
    steps: int | None = option(None, "Adam steps, default 300, one epoch on mnist (469 at batch 128)", min=1)
    batch_size: int | None = option(
        None, "minibatch size, default 256 synthetic1d, 64 digits, 128 mnist", min=1
    )
    lr: float | None = option(
        None,
        "Adam step size, default 3e-3, 1e-3 mnist (its first step, 10·lr, a float32 number)",
        above=0,
        max=3.4e37,
    )
    train: int | None = option(None, "synthetic1d: training points (4096)", min=1)
    val: int | None = option(None, "synthetic1d: validation points (1000)", min=1)
    noise: float | None = option(None, "synthetic1d: label noise std (5)", min=0)
    data_dir: str | None = option(None, "mnist: folder of torchvision's MNIST/ (default ~/.cache/playground)")
    download: bool = option(False, "mnist: fetch the data with torchvision into data_dir first")
    diagnose_every: int | None = option(
        None, "steps between spectral radius / cosine measurements (steps/10)", min=1
    )
    compare: bool = option(True, "every solver's residual trace, and on linear every backward's error")
    plots: bool = option(True, "write the PNG plots")
    threads: int = option(1, "torch CPU threads (0: torch's default); one is fastest for these sizes", min=0)

    def __post_init__(self):
        defaults = _DEFAULTS[self.task]
        for name, tasks in _PER_TASK.items():
            if getattr(self, name) is not None and self.task not in tasks:
                raise ValueError(
                    f"{name}={getattr(self, name)} does not apply to task={self.task}; "
                    f"it applies to: {', '.join(tasks)}"
                )
        if self.download and self.task != "mnist":
            raise ValueError(f"download=true does not apply to task={self.task}; it applies to: mnist")
        for name, owner, valid in (
            ("memory", "solver", "anderson"),
            ("lam", "solver", "anderson"),
            ("adjoint", "backward", "ift"),
            ("adjoint_iters", "backward", "ift"),
            ("adjoint_tol", "backward", "ift"),
            ("phantom_steps", "backward", "phantom"),
            ("damping", "backward", "phantom"),
        ):
            if getattr(self, name) is not None and getattr(self, owner) != valid:
                raise ValueError(
                    f"{name}={getattr(self, name)} does not apply to {owner}="
                    f"{getattr(self, owner)}; it applies to: {owner}={valid}"
                )
        if self.backward == "ift" and self.adjoint is None:
            object.__setattr__(self, "adjoint", defaults["adjoint"])
        if self.adjoint_iters is not None and self.adjoint == "exact":
            raise ValueError(
                f"adjoint_iters={self.adjoint_iters} does not apply to adjoint=exact; "
                "it applies to: cg, neumann"
            )
        if self.adjoint_tol is not None and self.adjoint != "cg":
            raise ValueError(
                f"adjoint_tol={self.adjoint_tol} does not apply to adjoint={self.adjoint}; it applies to: cg"
            )
        if self.adjoint_tol is not None and self.adjoint_tol >= 1:
            raise ValueError(
                f"adjoint_tol={self.adjoint_tol}: a relative residual >= 1 is met by u = 0 before any CG "
                "iteration, so no gradient would flow; valid: 0 <= adjoint_tol < 1"
            )
        for name in ("tol", "max_iter", "dim", "width", "steps", "batch_size", "lr"):
            if getattr(self, name) is None and name in defaults:
                object.__setattr__(self, name, defaults[name])
        if self.radius is not None and self.radius >= 1:
            raise ValueError(f"radius={self.radius}; valid: 0 <= radius < 1 (a contraction)")
        if self.task == "mnist" and not self.download and not mnist_available(_mnist_dir(self)):
            raise ValueError(
                f"no MNIST under data_dir={_mnist_dir(self)!r}; valid: download=true, or "
                "torchvision's MNIST/raw files there"
            )


# (training, held-out) examples and inputs of each training task: synthetic1d's are options
_SIZES = {"digits": (1797, 1797, 64), "mnist": (60_000, 10_000, 784)}


def check(config: DeqConfig, device: torch.device) -> None:
    """The memory a run needs (`memory`), on the CPU, where it runs."""
    sizes = ", ".join(
        f"{name}={getattr(config, name)}"
        for name in ("dim", "width", "batch", "batch_size", "max_iter", "memory", "train", "val")
        if getattr(config, name) is not None
    )
    check_memory(
        memory(config), torch.device("cpu"), sizes, "dim, width, max_iter, batch, batch_size or train"
    )


def memory(config: DeqConfig) -> int:
    """Bytes a run needs at its peak, roughly. Per example, a solver keeps its iterates (Broyden
    a rank-one update of two d-vectors per iteration, Anderson two per remembered iterate), and an
    unrolled backward what each of `max_iter` evaluations of f saves (3·width + 2·d floats).
    linear (float64): the d×d Jacobians (W, the closed forms, one per example for the spectral
    radius) and a batch of examples, with every solver and backward compared. Training (float32):
    the data, the cell's weights with Adam's moments, a minibatch through the solve and the backward,
    and the held-out inputs (at most 1,000 compared) solved with a cap of 4·max_iter."""
    d, k = config.dim, config.max_iter

    def solver(cap: int) -> int:  # floats a solve keeps per example, whichever solver runs
        return 2 * d * max(cap, (config.memory or 6) + 2)

    if config.task == "linear":
        batch, inputs = config.batch or 8, config.inputs or 4
        per_example = solver(4 * k) + k * 5 * d + d * d
        return 8 * (6 * d * d + d * inputs + batch * per_example)
    train, held, inputs = _SIZES.get(config.task, (config.train or 4096, config.val or 1000, 1))
    width = config.width
    weights = 2 * width * d + width * inputs + width + d * 10
    per_example = solver(k) + k * (3 * width + 2 * d) + 4 * width
    solving = min(held, 1000) * solver(4 * k) + held * (d + width)
    return 4 * ((train + held) * (inputs + 1) + 4 * weights + config.batch_size * per_example + solving)


def _mnist_dir(config: DeqConfig) -> str:
    return config.data_dir or "~/.cache/playground"


def make_solver(config: DeqConfig, name: str | None = None, max_iter: int | None = None):
    options = {"tol": config.tol, "max_iter": max_iter or config.max_iter}
    if (name or config.solver) == "anderson":
        options.update({k: v for k, v in (("memory", config.memory), ("lam", config.lam)) if v is not None})
    return deq.FORWARD_SOLVERS[name or config.solver](**options)


def make_backward(config: DeqConfig):
    if config.backward == "ift":
        iters = config.adjoint_iters or _DEFAULTS[config.task]["adjoint_iters"]
        return deq.ift(config.adjoint, iters=iters, tol=config.adjoint_tol or 0.0)
    if config.backward == "phantom":
        return deq.phantom(config.phantom_steps or 5, config.damping or 0.5)
    return deq.unrolled()


def run(config: DeqConfig, run) -> dict:
    if config.task == "linear":
        return run_linear(config, run)
    return run_training(config, run)


def run_linear(config: DeqConfig, run) -> dict:
    """z* and dL/dθ of L = ½‖z* − t‖² (summed over the batch) against their closed forms."""
    generator = torch.Generator().manual_seed(config.seed)
    dim, inputs, batch = config.dim, config.inputs or 4, config.batch or 8
    radius = 0.9 if config.radius is None else config.radius
    cell = deq.LinearCell(dim, inputs, radius=radius, generator=generator)
    x = torch.randn(batch, inputs, generator=generator, dtype=torch.float64)
    target = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    main = deq.check_linear(cell, x, target, make_solver(config), make_backward(config))
    solve = main.solve
    run.log(0, {"deq/nfe": solve.nfe, "deq/residual": solve.residual, "deq/converged": int(solve.converged)})
    summary = {
        "deq/forward_error": main.forward_error,
        "deq/grad_error": main.grad_error,
        "deq/nfe": solve.nfe,
        "deq/residual": solve.residual,
        "deq/converged": solve.converged,
        "deq/unconverged_steps": int(not solve.converged),
        "jacobian/spectral_radius": deq.spectral_radius(cell, x, cell.fixed_point(x)).max().item(),
    }
    traces = {}
    if config.compare:
        rows, traces = _compare_linear(config, cell, x, target)
        for row in rows:
            if "solver" in row:
                summary[f"solver/{row['solver']}_forward_error"] = row["forward_error"]
                summary[f"solver/{row['solver']}_nfe"] = row["nfe"]
            else:
                summary[f"backward/{row['backward']}_grad_error"] = row["grad_error"]
        summary["grad/phantom_cosine"] = next(r for r in rows if r.get("backward") == _PHANTOM)[
            "cosine_to_ift"
        ]
        run.save_json("comparison", rows)
    if config.plots:
        if traces:
            run.save_figure(plots.residual_vs_nfe(traces, config.tol, "linear"), "residual_vs_nfe")
        eigenvalues = deq.jacobian_eigenvalues(cell, x[:1], cell.fixed_point(x[:1]))[0]
        run.save_figure(
            plots.spectrum({"W (= ∂f/∂z)": eigenvalues}, "linear: eigenvalues of ∂f/∂z"), "spectrum"
        )
    return summary


_PHANTOM = "phantom_k5_tau0.5"


def _compare_linear(config: DeqConfig, cell, x, target) -> tuple[list[dict], dict]:
    """Every forward solver (with the exact adjoint) and every backward (with the configured
    solver) on the linear cell: one row each, and the solvers' residual traces."""
    rows, traces = [], {}
    for name in deq.FORWARD_SOLVERS:
        check = deq.check_linear(cell, x, target, make_solver(config, name), deq.ift("exact"))
        traces[name] = check.solve.trace
        solve = check.solve
        rows.append(
            {
                "solver": name,
                "forward_error": check.forward_error,
                "nfe": solve.nfe,
                "residual": solve.residual,
                "converged": solve.converged,
            }
        )
    reference = deq.check_linear(cell, x, target, make_solver(config), deq.ift("exact")).grads
    backwards = {
        "ift_exact": deq.ift("exact"),
        "ift_cg": deq.ift("cg", iters=4 * x.shape[0] * cell.W.shape[0], tol=1e-14),
        "ift_neumann": deq.ift("neumann", iters=config.max_iter),
        _PHANTOM: deq.phantom(5, 0.5),
        f"phantom_k{config.max_iter}_tau1": deq.phantom(config.max_iter, 1.0),
        "unrolled": deq.unrolled(),
    }
    for name, backward in backwards.items():
        check = deq.check_linear(cell, x, target, make_solver(config), backward)
        rows.append(
            {
                "backward": name,
                "grad_error": check.grad_error,
                "cosine_to_ift": deq.cosine(check.grads, reference),
            }
        )
    return rows, traces


def _data(config: DeqConfig):
    """(train x, train y, held-out x, held-out y, loss, outputs, extra) for a training task."""
    generator = torch.Generator().manual_seed(config.seed)
    if config.task == "synthetic1d":
        noise = 5.0 if config.noise is None else config.noise
        train = synthetic1d(config.train or 4096, generator, noise=noise)
        val = synthetic1d(config.val or 1000, generator, noise=noise)
        # the model fits standardised targets (y − mean)/std of the training set, so that the loss is
        # O(1) beside the Jacobian penalty; predictions are scaled back for the reported MSEs
        mean, std = train.y.mean(), train.y.std()
        scale = {"mean": mean, "std": std, "clean": val.clean}
        return train.x, (train.y - mean) / std, val.x, (val.y - mean) / std, F.mse_loss, 1, scale
    if config.task == "digits":
        from bilevel.digits import load_digits

        digits = load_digits(seed=config.seed)
        return digits.train.x, digits.train.y, digits.test.x, digits.test.y, F.cross_entropy, 10, {}
    try:
        (x, y), (x_test, y_test) = load_mnist(_mnist_dir(config), download=config.download)
    except ValueError as error:
        raise BadInput(str(error)) from None
    return x, y, x_test, y_test, F.cross_entropy, 10, {}


def run_training(config: DeqConfig, run) -> dict:
    x, y, x_held, y_held, loss_fn, outputs, extra = _data(config)
    generator = torch.Generator().manual_seed(config.seed)
    cell = deq.ReluCell(config.dim, x.shape[1], config.width, generator=generator)
    model = DEQModel(cell, readout(config.dim, outputs, generator), config.dim)
    steps = config.steps or math.ceil(len(x) / config.batch_size)  # mnist: one epoch
    result = train_deq(
        model,
        x,
        y,
        loss_fn,
        make_solver(config),
        make_backward(config),
        steps,
        config.batch_size,
        config.lr,
        generator,
        jac_reg=config.jac_reg or 0.0,
        probe=x_held[:16],
        probe_y=y_held[:16],
        diagnose_every=config.diagnose_every or max(steps // 10, 1),
        spectral="eig" if config.dim <= _EIG_LIMIT else "power",
        phantom_steps=config.phantom_steps or 5,
        damping=config.damping or 0.5,
        log=run.log,
        progress=run.progress,
    )
    summary = {
        "steps_run": result.steps,
        "deq/unconverged_steps": result.unconverged_steps,
        "deq/train_nfe_mean_last10": sum(result.nfe[-10:]) / len(result.nfe[-10:]),
    }
    if result.diverged_step is not None:
        return {**summary, **diverged(result.diverged_step), "deq/residual": result.residuals[-1]}
    if result.diagnostics:
        summary.update({k: v for k, v in result.diagnostics[-1].items() if k != "step"})
    prediction, z_star, held = _evaluate(config, model, x_held, y_held, outputs, extra, summary)
    traces = {}
    if config.compare:  # on at most 1,000 held-out inputs: Broyden keeps a rank-k update per example
        compared = x_held[:1000]
        with torch.no_grad():
            for name in deq.FORWARD_SOLVERS:
                solve = make_solver(config, name, 4 * config.max_iter)
                traces[name] = solve(
                    lambda z: cell(z, compared), z_star.new_zeros(len(compared), config.dim)
                ).trace
                summary[f"solver/{name}_nfe"] = len(traces[name])
    if config.plots:
        _plot_training(run, config, result, traces, cell, x_held, z_star, prediction, held, extra)
    return summary


def _evaluate(config: DeqConfig, model, x_held, y_held, outputs: int, extra: dict, summary: dict):
    """NFE to `tol` on the held-out inputs (cap 4·max_iter) and the held-out error, into summary."""
    with torch.no_grad():
        prediction, found = model(x_held, make_solver(config, max_iter=4 * config.max_iter), deq.ift("exact"))
    solve = found.solve
    summary.update({"deq/nfe": solve.nfe, "deq/residual": solve.residual, "deq/converged": solve.converged})
    if outputs == 1:
        prediction, y_held = (t * extra["std"] + extra["mean"] for t in (prediction, y_held))
        summary["val/mse"] = F.mse_loss(prediction, y_held).item()
        summary["val/mse_clean"] = F.mse_loss(prediction, extra["clean"]).item()
    else:
        summary["test/accuracy"] = (prediction.argmax(1) == y_held).float().mean().item()
        summary["test/error"] = 1 - summary["test/accuracy"]
    return prediction, solve.z, y_held


def _plot_training(run, config: DeqConfig, result, traces, cell, x_held, z_star, prediction, y_held, extra):
    if traces:
        run.save_figure(plots.residual_vs_nfe(traces, config.tol, config.task), "residual_vs_nfe")
    run.save_figure(plots.training(result, config.task), "training")
    if config.dim <= _EIG_LIMIT:
        eigenvalues = deq.jacobian_eigenvalues(cell, x_held[:4], z_star[:4])
        examples = {f"example {i}": e for i, e in enumerate(eigenvalues)}
        run.save_figure(
            plots.spectrum(examples, f"{config.task}: eigenvalues of ∂f/∂z at z* (end)"), "spectrum"
        )
    if "clean" in extra:
        run.save_figure(plots.fit(x_held, y_held, extra["clean"], prediction), "fit")


SCENARIO = Scenario(
    name="deq",
    help="deep equilibrium models: forward solvers, implicit/phantom/unrolled gradients, exact checks",
    config=DeqConfig,
    run=run,
    headline=("deq/forward_error", "deq/grad_error", "val/mse", "test/accuracy", "jacobian/spectral_radius"),
    check=check,
    sizes=("dim", "width", "batch", "batch_size", "max_iter", "memory", "train", "val"),
    demo=(
        {"label": "linear-anderson-ift", "task": "linear"},
        {"label": "synthetic1d-jac_reg", "task": "synthetic1d", "steps": 100, "jac_reg": 1.0},
    ),
)
