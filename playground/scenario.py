"""What a scenario is: a typed config, a run function, and the runs that make up its demo.

A scenario adapts one library job (a game, MAML, an in-context probe, meta-RL) to the runner:

    def run(config: MyConfig, run: Run) -> dict:   # returns the summary metrics
        for step in run.progress(range(config.steps), desc="game"):
            run.log(step, {"loss/x": ..., "dist": ...})
        run.save_figure(fig, "trajectory")
        return {"rate/measured": ...}

Adding a scenario is one module in `playground/scenarios/` and one line in its registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


def option(default: Any, help: str, **kwargs) -> Any:
    """A config field with its one-line help, shown by `playground list`."""
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata={"help": help}, **kwargs)
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass(frozen=True)
class RunConfig:
    """Options every scenario takes. Scenario configs subclass this.

    Validation of a scenario's own options goes in its `__post_init__`, raising `ValueError` with
    one line that names the bad value and the valid ones: the CLI turns it into exit status 2.
    """

    seed: int = option(0, "random seed: same seed, same numbers")
    tensorboard: bool = option(False, "also write TensorBoard events to the run directory")
    threads: int = option(0, "torch CPU threads for the run (0: torch's default)")


@dataclass(frozen=True)
class Scenario:
    """A job the runner can run, sweep and put in the demo."""

    name: str
    help: str
    config: type  # a RunConfig subclass
    run: Callable[[Any, Any], dict]  # (config, Run) -> summary metrics
    demo: tuple[dict, ...] = ()  # override sets run by `playground demo`, each with a "label"
