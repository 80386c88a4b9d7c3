"""Few-shot task families: each samples meta-batches of `Tasks` and builds its paper's network."""

from metalearn.fewshot.glyphs import glyphs
from metalearn.fewshot.images import ImageTasks
from metalearn.fewshot.omniglot import omniglot
from metalearn.fewshot.registry import (
    TASK_FAMILIES,
    make_task_family,
)
from metalearn.fewshot.sine import Sine
from metalearn.fewshot.tasks import (
    KINDS,
    SPLITS,
    HeadedNetwork,
    TaskFamily,
    Tasks,
    check_split,
    seeded_module,
)

__all__ = [
    "KINDS",
    "SPLITS",
    "TASK_FAMILIES",
    "HeadedNetwork",
    "ImageTasks",
    "Sine",
    "TaskFamily",
    "Tasks",
    "check_split",
    "glyphs",
    "make_task_family",
    "omniglot",
    "seeded_module",
]
