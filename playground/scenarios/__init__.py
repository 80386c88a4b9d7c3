"""The registry of scenarios: one module per scenario, each defining `SCENARIO`.

Users add their own without editing this package: `PLAYGROUND_SCENARIOS=pkg.mod,other.mod` names
extra modules (importable from the current directory or the Python path) that define `SCENARIO`.
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
    names = [f"{__name__}.{m}" for m in _MODULES]
    names += [m.strip() for m in os.environ.get("PLAYGROUND_SCENARIOS", "").split(",") if m.strip()]
    if "" not in sys.path:
        sys.path.insert(0, "")  # user scenario modules in the working directory
    scenarios = (importlib.import_module(name).SCENARIO for name in names)
    return {scenario.name: scenario for scenario in scenarios}


SCENARIOS: dict[str, Scenario] = _load()


def get_scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise BadInput(f"unknown scenario {name!r}; valid: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name]
