"""The registries of bilevel problems and hypergradient methods, and building one by name with
checked options: an option its factory does not take is an error naming those it does take."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from bilevel.darts_toy import darts_toy
from bilevel.hypercleaning import hypercleaning
from bilevel.hypergradients import (
    Method,
    finite_diff,
    first_order,
    forward,
    ift_cg,
    ift_exact,
    ift_neumann,
    one_step,
    truncated,
    unrolled,
)
from bilevel.lr_horizon import lr_horizon
from bilevel.problem import BilevelProblem
from bilevel.ridge import ridge
from bilevel.stn.method import SelfTuningNetwork

PROBLEMS: dict[str, Callable[..., BilevelProblem]] = {
    "ridge": ridge,
    "lr_horizon": lr_horizon,
    "hypercleaning": hypercleaning,
    "darts_toy": darts_toy,
}

METHODS: dict[str, Callable[..., Method]] = {
    "unrolled": unrolled,
    "truncated": truncated,
    "forward": forward,
    "ift_exact": ift_exact,
    "ift_cg": ift_cg,
    "ift_neumann": ift_neumann,
    "finite_diff": finite_diff,
    "first_order": first_order,
    "one_step": one_step,
    "stn": SelfTuningNetwork,
}


def make_problem(name: str, **options: Any) -> BilevelProblem:
    """The problem `name` built with its options."""
    return _build("problem", PROBLEMS, name, options)


def make_method(name: str, **options: Any) -> Method:
    """The hypergradient method `name` with its options."""
    return _build("method", METHODS, name, options)


def _build(kind: str, registry: Mapping[str, Callable], name: str, options: dict[str, Any]) -> Any:
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(registry)}")
    valid = list(inspect.signature(registry[name]).parameters)
    for key in options:
        if key not in valid:
            raise ValueError(f"{kind} {name!r} takes no option {key!r}; valid: {', '.join(valid) or 'none'}")
    return registry[name](**options)
