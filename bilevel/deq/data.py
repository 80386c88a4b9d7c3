"""Data of the DEQ tasks: the 1-D regression of Bai, Koltun & Kolter (2021, §5.1) and MNIST."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class Regression(NamedTuple):
    x: Tensor  # (n, 1)
    y: Tensor  # (n, 1), noisy targets
    clean: Tensor  # (n, 1), the curve without noise


def cubic(x: Tensor) -> Tensor:
    """y = 1.5x³ + x² − 5x + 2 sin x − 3, the curve of Bai, Koltun & Kolter (2021, §5.1)."""
    return 1.5 * x**3 + x**2 - 5 * x + 2 * torch.sin(x) - 3


def synthetic1d(
    n: int, generator: torch.Generator, noise: float = 5.0, low: float = -3.0, high: float = 3.0
) -> Regression:
    """n points with x uniform on [low, high] and y = cubic(x) + noise·N(0, 1)."""
    x = low + (high - low) * torch.rand(n, 1, generator=generator)
    clean = cubic(x)
    return Regression(x, clean + noise * torch.randn(n, 1, generator=generator), clean)


def mnist_available(data_dir: str | Path) -> bool:
    """Whether torchvision's MNIST files lie under data_dir/MNIST/raw."""
    raw = Path(data_dir).expanduser() / "MNIST" / "raw"
    return all((raw / name).is_file() for name in MNIST_FILES)


def load_mnist(
    data_dir: str | Path, download: bool = False
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """MNIST (LeCun et al. 1998) through torchvision: ((x_train, y_train), (x_test, y_test)), x as
    (n, 784) floats in [0, 1]; `download` fetches it into data_dir first."""
    from torchvision.datasets import MNIST  # imported where it is used

    root = str(Path(data_dir).expanduser())
    if not download and not mnist_available(root):
        raise ValueError(
            f"no MNIST under data_dir={str(data_dir)!r}; valid: download=true, or the "
            f"torchvision files {', '.join(MNIST_FILES)} in {root}/MNIST/raw"
        )
    splits = []
    for train in (True, False):
        data = MNIST(root, train=train, download=download)
        splits.append((data.data.reshape(len(data.data), -1).float() / 255.0, data.targets.long()))
    return splits[0], splits[1]
