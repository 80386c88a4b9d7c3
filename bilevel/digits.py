"""The 8×8 handwritten digits that scikit-learn ships (1,797 images, 10 classes; Alpaydin & Kaynak
1998, UCI), split once by a seeded permutation into training, validation and test sets.

No download: the data lie inside the scikit-learn package. Pixels are scaled from 0..16 to [0, 1]
and flattened to 64 features; labels are int64 class indices.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Split(NamedTuple):
    x: Tensor  # (n, 64), pixels in [0, 1]
    y: Tensor  # (n,), int64 in 0..9


class Digits(NamedTuple):
    train: Split
    val: Split
    test: Split


def load_digits(seed: int = 0, val: int = 400, test: int = 400, dtype: torch.dtype = torch.float32) -> Digits:
    """The digits split into `val` and `test` examples and the rest (997 by default) for training,
    by a permutation drawn from `seed`: same seed, same split."""
    from sklearn.datasets import load_digits as sklearn_digits  # imported where it is used

    if min(val, test) < 1 or val + test >= 1797:
        raise ValueError(f"digits: val={val} and test={test} must be >= 1 and leave training examples")
    data = sklearn_digits()
    x = torch.as_tensor(data.data, dtype=dtype) / 16.0
    y = torch.as_tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    parts = order.split([len(y) - val - test, val, test])
    return Digits(*(Split(x[part], y[part]) for part in parts))
