"""Data-parallel training over the processes of a torch.distributed group (`torchrun`): MAML's
meta-batches of tasks (`metalearn.maml.meta_train`) and in-context prompts (`metalearn.icl.train`).

Every rank draws the whole batch of T tasks (or prompts) from the same seeded generator and keeps
its share: rank r of W takes items ⌊rT/W⌋ .. ⌊(r+1)T/W⌋ − 1, n_r of them, so the shares are
disjoint and their union is the batch one process would train on. A loss is a mean over its items,
so the batch's gradient is Σ_r (n_r/T)·g_r: each rank scales its gradient by n_r/T and the sum is
all-reduced before the optimiser's step, which then makes the same update from the same state on
every rank. Uneven shares are weighted this way, not refused; a batch smaller than the group,
which would leave a rank with nothing, is refused. The loss a rank reports is reduced the same
way, so every rank sees the batch's loss (and stops together where it is not finite).
DistributedDataParallel does not fit MAML: the inner loop differentiates the model per task, and
the meta-gradient exists only after the outer backward pass; learn2learn's distributed example
reduces the meta-gradient the same way.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

Batch = TypeVar("Batch", bound=NamedTuple)  # tensors whose first dimension indexes the items


def world() -> tuple[int, int]:
    """(rank, size) of the initialised default process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def share(batch: Batch, rank: int, size: int, name: str = "meta_batch") -> tuple[Batch, float]:
    """Rank `rank`'s items of `batch` (`name` is the option that sizes it) and their weight n_r/T."""
    total = batch[0].shape[0]
    if total < size:
        raise ValueError(f"{name}={total} across {size} processes; valid: {name} >= {size}")
    lo, hi = rank * total // size, (rank + 1) * total // size
    return type(batch)(*(t[lo:hi] for t in batch)), (hi - lo) / total


def reduced(value: torch.Tensor | float, weight: float) -> float:
    """Σ over ranks of weight·value (a rank's mean over its share -> the meta-batch's mean)."""
    total = torch.tensor([float(value) * weight], dtype=torch.float64)
    dist.all_reduce(total)
    return total.item()


class AllReducedOptimizer:
    """The meta-optimiser of one rank: its `step()` first replaces every gradient by Σ_r weight_r·g_r
    (one all-reduce over a flat buffer; a parameter without a gradient counts as zero), then steps.
    `weight` is this rank's n_r/T, set before each meta-step. Everything else is the wrapped
    optimiser's (state, param_groups, zero_grad, state_dict)."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer, self.weight = optimizer, 1.0

    def step(self) -> None:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = _flatten_dense_tensors(grads) * self.weight
        dist.all_reduce(flat)
        for p, grad in zip(params, _unflatten_dense_tensors(flat, grads)):
            p.grad = grad
        self.optimizer.step()

    def __getattr__(self, name: str):
        return getattr(self.optimizer, name)


def check_same(tensors: list[torch.Tensor]) -> None:
    """Raise RuntimeError on every rank where some rank's `tensors` differ from rank 0's, bit for
    bit (a collective: every rank must call it; nothing to check in a single process)."""
    rank, size = world()
    if size == 1:
        return
    mine = _flatten_dense_tensors([t.detach() for t in tensors])
    zeros = mine.clone()
    dist.broadcast(zeros, 0)
    differing = torch.tensor([0 if torch.equal(mine, zeros) else 1], device=mine.device)
    dist.all_reduce(differing)
    if differing.item():
        raise RuntimeError(f"{differing.item()} of {size} ranks hold other parameters than rank 0's")
