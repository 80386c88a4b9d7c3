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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def option(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    above: float | None = None,
    max: float | None = None,
    choices: tuple | None = None,
    **kwargs,
) -> Any:
    """A config field with its one-line help, shown by `playground list`, and the bounds the
    config parser checks for every scenario (each item of a list): `min` (inclusive), `above`
    (exclusive), `max` (inclusive), `choices`."""
    bounds = {"min": min, "above": above, "max": max, "choices": None if choices is None else tuple(choices)}
    metadata = {"help": help, **{k: v for k, v in bounds.items() if v is not None}}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=metadata, **kwargs)
    return field(default=default, metadata=metadata, **kwargs)


def keywords(
    namespace: str,
    registry: Mapping[str, Callable],
    lookup: Callable[[str], Callable] | None = None,
    skip: tuple[str, ...] = (),
    help: str = "",
) -> Any:
    """A config field holding the keyword options of a factory picked by name: the field named
    `namespace` names it in `registry` (or `lookup(name)` finds it), and the user sets its keywords
    as `namespace.<keyword>=value`, typed and defaulted from the factory's signature (`skip`: the
    keywords the scenario passes itself). The value is a dict of the keywords given."""
    metadata = {
        "help": help,
        "namespace": namespace,
        "registry": registry,
        "lookup": lookup or (lambda name: registry[name]),
        "skip": tuple(skip),
    }
    return field(default_factory=dict, metadata=metadata)


@dataclass(frozen=True)
class RunConfig:
    """Options every scenario takes. Scenario configs subclass this.

    Bounds go in `option(..., min=, max=, choices=)`; checks that relate options go in the
    config's `__post_init__`, raising `ValueError` with one line that names the bad value and the
    valid ones: the CLI turns it into exit status 2.
    """

    seed: int = option(0, "random seed: same seed, same numbers", min=0, max=2**63 - 1)
    tensorboard: bool = option(False, "also write TensorBoard events to the run directory")
    threads: int = option(0, "torch CPU threads for the run (0: torch's default)", min=0)
    device: str = option("auto", "torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N")


@dataclass(frozen=True)
class Scenario:
    """A job the runner can run, sweep and put in the demo."""

    name: str
    help: str
    config: type  # a RunConfig subclass
    run: Callable[[Any, Any], dict]  # (config, Run) -> summary metrics
    demo: tuple[dict, ...] = ()  # override sets run by `playground demo`, each with a "label"
