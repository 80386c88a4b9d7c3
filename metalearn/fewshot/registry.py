"""The task families by name (see `registration`): adding one is a factory and one line here, and
the `maml` scenario and `playground list` show it by themselves; a user's own is
`module:factory`, from the user's module."""

from __future__ import annotations

from metalearn.fewshot.glyphs import glyphs
from metalearn.fewshot.omniglot import omniglot
from metalearn.fewshot.sine import Sine
from metalearn.fewshot.tasks import TaskFamily
from registration import Registry

TASK_FAMILIES = Registry("task", returns=TaskFamily)
TASK_FAMILIES.register("sine", Sine)
TASK_FAMILIES.register("glyphs", glyphs)
TASK_FAMILIES.register("omniglot", omniglot)

make_task_family = TASK_FAMILIES.make
