"""N-way K-shot image classification episodes (Vinyals et al. 2016), drawn from per-class images.

A task draws `ways` distinct classes of one split, labels them 0..ways-1 in the random order
drawn, and `shots + queries` distinct images of each class: the first `shots` form the support
set, the other `queries` the query set. Both sets are ordered class by class (labels 0,0,..,1,1,..).
With `rotations`, every class also appears turned counterclockwise by 90, 180 and 270 degrees as
three new classes (Santoro et al. 2016, as in Finn et al. 2017), in every split.

A whole meta-batch is drawn in a few tensor operations, with no Python loop over tasks or images.
The rotated copies are made once, up front: four times the memory, in exchange for sampling as
fast with rotations as without.

`to(device)` keeps the images on the device that trains (a GPU): a task is then gathered there, by
index, and no image crosses from the host. The indices (classes, then examples) are still drawn
from the caller's generator, a CPU one, so a seed draws the same tasks on every device: the host's
share of a meta-batch is the draw of T × (classes + ways × per_class) uniforms and their top-k.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from metalearn.convnet import conv4
from metalearn.fewshot.tasks import SPLITS, Tasks, check_split

IMAGE_SHAPE = (1, 28, 28)


class ImageTasks:
    """A few-shot classification family over `images[split]`, each (classes, per_class, 1, 28, 28).

    `self.images[split]` holds the classes tasks draw from: with rotations, class k * C + c is
    class c turned by k quarter turns.
    """

    kind = "classification"

    def __init__(self, images: dict[str, torch.Tensor], ways: int, shots: int, queries: int, rotations: bool):
        if sorted(images) != sorted(SPLITS):
            raise ValueError(f"images has splits {sorted(images)}; expected exactly {list(SPLITS)}")
        for split, x in images.items():
            if x.dim() != 5 or tuple(x.shape[2:]) != IMAGE_SHAPE or not x.is_floating_point():
                raise ValueError(
                    f"images[{split!r}] is {x.dtype} of shape {tuple(x.shape)}; "
                    f"expected float (classes, per_class, {', '.join(map(str, IMAGE_SHAPE))})"
                )
        for name, value in (("ways", ways), ("shots", shots)):
            if value < 1:
                raise ValueError(f"{name}={value}; valid: an integer >= 1")
        if rotations:
            images = {s: torch.cat([x.rot90(k, dims=(-2, -1)) for k in range(4)]) for s, x in images.items()}
        for split in SPLITS:
            classes = images[split].shape[0]
            if ways > classes:
                raise ValueError(
                    f"ways={ways} exceeds the {classes} classes of the {split} split; valid: 1..{classes}"
                )
        self.images = images
        self.ways, self.shots, self.rotations = ways, shots, rotations
        self.queries = self._checked_queries(queries)

    def with_queries(self, queries: int) -> ImageTasks:
        """The same family drawing `queries` query images per class (say, more for evaluation)."""
        family = copy.copy(self)
        family.queries = self._checked_queries(queries)
        return family

    def _checked_queries(self, queries: int) -> int:
        if queries < 1:
            raise ValueError(f"queries={queries}; valid: an integer >= 1")
        per_class = min(x.shape[1] for x in self.images.values())
        if self.shots + queries > per_class:
            raise ValueError(
                f"shots + queries = {self.shots} + {queries} exceeds the {per_class} images "
                f"per class; valid: shots + queries <= {per_class}"
            )
        return queries

    def to(self, device: torch.device | str) -> ImageTasks:
        """The same family with its images on `device`, where its tasks are then gathered."""
        family = copy.copy(self)
        family.images = {split: x.to(device) for split, x in self.images.items()}
        return family

    def n_classes(self, split: str) -> int:
        """Classes a task of `split` can draw from (four per image class with rotations)."""
        return self.images[split].shape[0]

    def sample(self, split: str, n: int, generator: torch.Generator) -> Tasks:
        """`n` tasks of `split`: support (n, ways*shots, 1, 28, 28), query (n, ways*queries, ...),
        on the images' device; the indices are drawn from `generator`."""
        check_split(split)
        if n < 1:
            raise ValueError(f"n={n} tasks; valid: an integer >= 1")
        classes, per_class = self.images[split].shape[:2]
        # The top k of i.i.d. uniforms: k distinct indices, uniformly drawn, in uniform random order.
        chosen = torch.rand(n, classes, generator=generator).topk(self.ways).indices  # (T, W)
        draws = self.shots + self.queries
        picks = torch.rand(n, self.ways, per_class, generator=generator).topk(draws).indices
        rows = chosen[..., None] * per_class + picks  # (T, W, S+Q): rows of images.flatten(0, 1)
        device = self.images[split].device
        support, query = rows.to(device).split([self.shots, self.queries], dim=-1)
        labels = torch.arange(self.ways, device=device)
        return Tasks(
            support_x=self._gather(split, support),
            support_y=labels.repeat_interleave(self.shots).expand(n, -1).contiguous(),
            query_x=self._gather(split, query),
            query_y=labels.repeat_interleave(self.queries).expand(n, -1).contiguous(),
        )

    def make_model(self, generator: torch.Generator) -> nn.Module:
        """The conv-4 network of Finn et al. 2017 with `ways` outputs."""
        return conv4(self.ways, generator)

    def _gather(self, split: str, rows: torch.Tensor) -> torch.Tensor:
        """The images at rows (T, W, k) as (T, W*k, 1, 28, 28)."""
        n, ways, k = rows.shape
        images = self.images[split].flatten(0, 1)  # (C*M, 1, 28, 28)
        return images.index_select(0, rows.reshape(-1)).view(n, ways * k, *IMAGE_SHAPE)
