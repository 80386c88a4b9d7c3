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

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from registration import Registry


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


def keywords(registry: Registry, help: str = "") -> Any:
    """A config field holding the options of the factory that another field picks from
    `registry`: the field named `registry.kind` names it (a registered name or `module:factory`),
    and the user sets its options as `<kind>.<keyword>=value`, typed and defaulted from the
    factory's signature. The value is a dict of the options given."""
    return field(
        default_factory=dict, metadata={"help": help, "namespace": registry.kind, "registry": registry}
    )


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
class Checkpoint:
    """A scenario whose runs can stop and continue. Its config has the options `checkpoint_every`
    (steps between checkpoints, 0: none) and `resume` (the run directory to continue); its run
    saves its state with `run.checkpoint.save(step, state)` and gets it back, on resume, from
    `run.checkpoint.load()` (`playground.runner.Checkpointer`)."""

    budget: str  # the option counting the loop's steps: a resumed run asks for no fewer than it holds
    also: tuple[str, ...] = ()  # the scenario's options a resumed run may also set anew

    @property
    def may_change(self) -> tuple[str, ...]:
        """The options a resumed run may set anew (the budget, how the run is checkpointed and
        where it computes, and `also`); every other must match the checkpoint's run."""
        return (self.budget, "checkpoint_every", "resume", "threads", "tensorboard", "device", *self.also)


@dataclass(frozen=True)
class Scenario:
    """A job the runner can run, sweep and put in the demo."""

    name: str
    help: str
    config: type  # a RunConfig subclass
    run: Callable[[Any, Any], dict]  # (config, Run) -> summary metrics
    demo: tuple[dict, ...] = ()  # override sets run by `playground demo`, each with a "label"
    checkpoint: Checkpoint | None = None  # None: its runs cannot resume
    # (config, torch.device) -> None: what the config needs that its options alone do not say
    # (memory on the device, data on disk), checked before the run directory is touched; raises
    # BadInput (or ValueError) naming the setting and what is valid
    check: Callable[[Any, Any], None] | None = None
    # the options that set how much memory a run takes: named, to lower, when a run runs out of it
    sizes: tuple[str, ...] = ()
    # the summary metrics a report's table shows for its runs, in order (`key[i]`: item i of a
    # list); a metric's `<key>_ci95`, where the run writes one, is shown as its ± and band
    headline: tuple[str, ...] = ()
    # whether its run splits its work across the processes torchrun starts (`playground.ranks`);
    # any other scenario is refused under torchrun
    data_parallel: bool = False

    def __post_init__(self):
        if self.checkpoint is None:
            return
        options = {f.name for f in fields(self.config)}  # a mistake here is the scenario's code's
        if not set(self.checkpoint.may_change) <= options:
            raise TypeError(
                f"scenario {self.name!r}: a checkpoint needs config options checkpoint_every and resume, "
                "and its budget and `also` among the config's options"
            )
