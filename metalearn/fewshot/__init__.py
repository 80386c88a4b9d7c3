"""Few-shot task families: each samples meta-batches of `Tasks` and builds its paper's network."""
from metalearn.fewshot.glyphs import glyphs
from metalearn.fewshot.images import ImageTasks
from metalearn.fewshot.omniglot import omniglot
from metalearn.fewshot.sine import Sine
from metalearn.fewshot.tasks import KINDS, SPLITS, HeadedNetwork, TaskFamily, Tasks, check_split, seeded_module

__all__ = [
    "KINDS", "SPLITS", "HeadedNetwork", "ImageTasks", "Sine", "TaskFamily", "Tasks", "check_split", "glyphs",
    "omniglot", "seeded_module",
]
