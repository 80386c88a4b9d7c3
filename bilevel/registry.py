"""The registry of bilevel problems, and building one by name with checked options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from bilevel.best_response import best_response
from bilevel.hypercleaning import hypercleaning
from bilevel.lr_horizon import lr_horizon
from bilevel.problem import BilevelProblem
from bilevel.ridge import ridge

PROBLEMS: dict[str, Callable[..., BilevelProblem]] = {
    "ridge": ridge,
    "lr_horizon": lr_horizon,
    "hypercleaning": hypercleaning,
    "best_response": best_response,
}


def make_problem(name: str, **options: Any) -> BilevelProblem:
    """The problem `name` built with its options (an option it does not take is an error)."""
    if name not in PROBLEMS:
        raise ValueError(f"unknown problem {name!r}; valid: {', '.join(PROBLEMS)}")
    valid = list(inspect.signature(PROBLEMS[name]).parameters)
    for key in options:
        if key not in valid:
            raise ValueError(f"problem {name!r} takes no option {key!r}; valid: {', '.join(valid)}")
    return PROBLEMS[name](**options)
