"""The torch device a run uses, from its `device=` option."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when available, else the CPU; `cpu`, `cuda` and `cuda:N` are checked (the CPU
    is one device to torch: `cpu:N` is refused, not read as `cpu`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if (
        device is None
        or device.type not in ("cpu", "cuda")
        or (device.type == "cpu" and device.index is not None)
    ):
        raise ValueError(f"device={name!r}; valid: auto, cpu, cuda, cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device={name!r} but torch sees no CUDA GPU here; valid: auto, cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device={name!r} but torch sees {count} GPU(s): cuda:0..cuda:{count - 1}")
    return device
