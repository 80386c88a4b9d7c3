"""Runs of several processes (`torchrun --nproc_per_node N -m playground run ...`).

torchrun starts N copies of the command with RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
address in their environment. Each joins one torch.distributed group (NCCL between GPUs, each rank
on the GPU its LOCAL_RANK names; gloo on CPUs), runs the same scenario with the same config, and a
scenario that declares `data_parallel` splits its work across them (the MAML family: each rank
its share of every meta-batch, `metalearn.distributed`). Rank 0 alone writes the run
directory; the others write into a temporary directory of their own, deleted when they end. A
collective that waits longer than PLAYGROUND_COLLECTIVE_TIMEOUT seconds (default 300: a rank that
died or hangs) fails the run on every rank that waits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist

from playground.errors import BadInput

_TIMEOUT_S = 300


def world_size() -> int:
    """The number of processes torchrun started for this run (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise BadInput(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r}; valid: a positive integer") from None


def rank() -> int:
    """This process's rank among those torchrun started (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


@contextmanager
def process_group(device: torch.device) -> Iterator[tuple[int, torch.device]]:
    """This process's rank and device within torchrun's group, joined for the block; (0, `device`)
    outside torchrun."""
    if world_size() == 1:
        yield 0, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=float(os.environ.get("PLAYGROUND_COLLECTIVE_TIMEOUT", _TIMEOUT_S)))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
    try:
        yield dist.get_rank(), device
    finally:
        dist.destroy_process_group()


def all_agree(ok: bool, device: torch.device) -> bool:
    """Whether `ok` holds on every rank (a collective: every rank must call it; `device` is this
    rank's, where NCCL needs the flag)."""
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())
