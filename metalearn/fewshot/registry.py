"""The task families by name: adding one is a factory and a line here, and the `maml` scenario
and `playground list` show it by themselves."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from metalearn.fewshot.glyphs import glyphs
from metalearn.fewshot.omniglot import omniglot
from metalearn.fewshot.sine import Sine
from metalearn.fewshot.tasks import TaskFamily

TASK_FAMILIES: dict[str, Callable[..., TaskFamily]] = {
    "sine": Sine,
    "glyphs": glyphs,
    "omniglot": omniglot,
}


def task_family_factory(name: str) -> Callable[..., TaskFamily]:
    """The factory of the family `name`, or a ValueError naming the valid ones."""
    if name not in TASK_FAMILIES:
        raise ValueError(f"unknown task {name!r}; valid: {', '.join(TASK_FAMILIES)}")
    return TASK_FAMILIES[name]


def task_family_options(name: str) -> list[str]:
    """The keyword options the family `name` takes (`ways` for the classification families)."""
    return list(inspect.signature(task_family_factory(name)).parameters)


def make_task_family(name: str, **options: Any) -> TaskFamily:
    """The family `name` built with `options`."""
    return task_family_factory(name)(**options)
