"""A test scenario with a closed form: gradient descent on f(x) = ½·a·x² gives x_t = (1 − ηa)^t x₀.

Loaded by the CLI tests through PLAYGROUND_MODULES, the way users add their own scenarios.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure

from playground.errors import BadInput
from playground.scenario import RunConfig, Scenario, option


@dataclass(frozen=True)
class ToyConfig(RunConfig):
    lr: float = option(0.1, "step size η")
    curvature: float = option(1.0, "a in f(x) = ½·a·x²")
    steps: int = option(20, "number of steps")
    init: tuple[float, ...] = option((1.0,), "starting point x₀ (one value per coordinate)")
    noise: float = option(0.0, "std of Gaussian noise added to each step (seeded)")
    pause: float = option(0.0, "seconds to sleep per step (to test Ctrl-C)")
    label: str | None = option(None, "free text")
    fail: str | None = option(
        None,
        "fail at the step given by `fail_step`: bug (a RuntimeError) or input (BadInput)",
        choices=("bug", "input"),
    )
    fail_step: int = option(0, "the step at which `fail` fails", min=0)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def run(config: ToyConfig, run) -> dict:
    generator = torch.Generator().manual_seed(config.seed)
    x = torch.tensor(config.init, dtype=torch.float64)
    losses = []
    for step in run.progress(range(config.steps + 1), desc="toy"):
        loss = 0.5 * config.curvature * float(x @ x)
        run.log(step, {"loss/f": loss, "x": x.tolist()})
        if config.fail == "bug" and step == config.fail_step:
            raise RuntimeError("toy bug")
        if config.fail == "input" and step == config.fail_step:
            raise BadInput("toy input: wrong")
        losses.append(loss)
        if step == config.steps or not math.isfinite(loss):
            break
        time.sleep(config.pause)
        noise = config.noise * torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = x - config.lr * config.curvature * x + noise
    fig = Figure()
    fig.add_subplot().semilogy(losses)
    run.save_figure(fig, "loss")
    return {"final/x": x.tolist(), "final/loss": losses[-1]}


SCENARIO = Scenario(
    name="toy",
    help="gradient descent on a quadratic (test scenario)",
    config=ToyConfig,
    run=run,
    demo=({"label": "small-lr", "lr": 0.1}, {"label": "large-lr", "lr": 0.5}),
)
