"""Summary statistics shared by every evaluation in `metalearn`."""

from __future__ import annotations

import math

import torch


def mean_ci95(values: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over `dim` (the tasks) and the half-width of its normal 95% interval,
    1.96·s/√n with s the sample standard deviation (0 for a single task), in float64."""
    values = values.double()
    n = values.shape[dim]
    spread = values.std(dim, correction=1) if n > 1 else torch.zeros_like(values.mean(dim))
    return values.mean(dim), 1.96 * spread / math.sqrt(n)
