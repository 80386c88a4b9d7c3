"""What a run may ask of the machine it runs on: memory on its device and CPU threads. A setting
that needs more than there is gets refused before anything runs (one line, exit 2), rather than
allocating until the operating system kills the process."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from typing import Any

import torch

from playground.errors import BadInput

GIB = 2**30


def available_memory(device: torch.device) -> int:
    """Bytes a run may still allocate on `device`: the GPU's free memory, or the memory the
    operating system reports available (MemAvailable; the physical memory where that is unknown),
    at most what this process's address-space limit (`ulimit -v`) leaves it."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    available = _proc_kib("/proc/meminfo", "MemAvailable:")
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    used = _proc_kib("/proc/self/status", "VmSize:")
    if limit != resource.RLIM_INFINITY and used is not None:
        available = min(available, max(limit - used, 0))
    return available


def _proc_kib(path: str, key: str) -> int | None:
    """The bytes of a `key: N kB` line of a /proc file, None where there is none."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(need: int, device: torch.device, setting: str, lower: str) -> None:
    """Refuse a run that needs about `need` bytes on `device` where fewer are available: the message
    names the `setting` that asks for them and what to `lower`."""
    have = available_memory(device)
    if need > have:
        raise BadInput(
            f"{setting} needs about {_gib(need)} GiB of {device.type} memory and "
            f"{_gib(have)} GiB is available; valid: lower {lower}"
        )


def _gib(size: int) -> str:
    """`size` bytes in GiB, three digits; a size past a float's range (a 400-digit setting) by
    its power of ten."""
    try:
        return f"{size / GIB:.3g}"
    except OverflowError:
        return f"1e{len(str(size // GIB)) - 1}"


def check_threads(threads: int) -> None:
    """`threads=` at most the CPU cores this process may use (0: torch's default)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if threads > cores:
        raise BadInput(f"threads={threads} but this machine gives the run {cores} cores; valid: 0..{cores}")


def saved_bytes(forward: Callable[[], Any]) -> int:
    """Bytes of the tensors autograd saves for the backward pass of `forward()`: what a training
    step holds between its forward and backward passes, counted on a small batch and scaled by the
    caller (a tensor saved twice counts twice: an upper estimate)."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return total
