"""The registry of scenarios: one module per scenario, each defining `SCENARIO`.

Users extend the playground without editing this package. `PLAYGROUND_MODULES=pkg.mod,other.mod`
names modules (importable from the current directory or the Python path) imported before any
command: a module defining `SCENARIO` adds that scenario, and a module may register its own
games, dynamics, task families, learners, problems or methods in their registries (`register`),
so that `playground list` shows them with their options and every command takes them by name.
`playground run pkg.mod:SCENARIO` runs the `Scenario` that a module defines, registered or not.
A name already taken is refused, never replaced, and a module that cannot be loaded is one line of
bad input. (`PLAYGROUND_SCENARIOS`, the older name of `PLAYGROUND_MODULES`, is read too, for one
release.)
"""

from __future__ import annotations

import importlib
import os
import sys

from playground.errors import BadInput
from playground.scenario import Scenario

# built-in scenario modules of this package
_MODULES = ("game", "maml", "metarl", "icl", "bilevel", "deq", "stn", "darts")


def _load() -> dict[str, Scenario]:
    if "" not in sys.path:
        sys.path.insert(0, "")  # user scenario modules in the working directory
    scenarios: dict[str, Scenario] = {}
    origin: dict[str, str] = {}
    for module in [f"{__name__}.{m}" for m in _MODULES] + user_modules():
        if not hasattr(_module(module), "SCENARIO"):
            continue  # a module that only registers factories
        scenario = _scenario(f"{module}:SCENARIO", "PLAYGROUND_MODULES")
        if scenario.name in scenarios:
            raise BadInput(
                f"PLAYGROUND_MODULES: scenario {scenario.name!r} of {module} is already registered by "
                f"{origin[scenario.name]}; give it another name"
            )
        scenarios[scenario.name], origin[scenario.name] = scenario, module
    return scenarios


def user_modules() -> list[str]:
    """The modules `PLAYGROUND_MODULES` (or its older name `PLAYGROUND_SCENARIOS`) names."""
    text = ",".join(os.environ.get(name, "") for name in ("PLAYGROUND_MODULES", "PLAYGROUND_SCENARIOS"))
    return list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))


def _module(name: str, where: str = "PLAYGROUND_MODULES"):
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise BadInput(f"{where}: cannot load module {name!r}: {error}") from None


def _scenario(spec: str, where: str) -> Scenario:
    """The `Scenario` that `module:attribute` names."""
    module_name, _, attribute = spec.partition(":")
    scenario = getattr(_module(module_name, where), attribute, None)
    if not isinstance(scenario, Scenario):
        raise BadInput(
            f"{where}: {module_name}.{attribute} is not a playground Scenario; valid: a module "
            "defining SCENARIO = playground.scenario.Scenario(...)"
        )
    return scenario


SCENARIOS: dict[str, Scenario] = _load()


def get_scenario(spec: str) -> Scenario:
    """A registered scenario by name, or a user's as `module:SCENARIO`."""
    if spec in SCENARIOS:
        return SCENARIOS[spec]
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise BadInput(
            f"unknown scenario {spec!r}; valid: {', '.join(sorted(SCENARIOS))}, or module:SCENARIO"
        )
    return _scenario(spec, f"scenario {spec!r}")
