"""The bundled digits: split sizes that add up to the data, and same seed, same split."""

import pytest
import torch

from bilevel.digits import load_digits


def test_split_covers_the_data_once_and_is_seeded():
    digits = load_digits(seed=3)
    assert [len(part.y) for part in digits] == [997, 400, 400]
    assert all(part.x.shape[1] == 64 and part.x.dtype == torch.float32 for part in digits)
    assert 0 <= min(part.x.min() for part in digits) and max(part.x.max() for part in digits) == 1.0
    rows = torch.cat([part.x for part in digits])
    assert rows.shape[0] == 1797 and set(torch.cat([part.y for part in digits]).tolist()) == set(range(10))
    again, other = load_digits(seed=3), load_digits(seed=4)
    assert torch.equal(again.train.x, digits.train.x) and torch.equal(again.test.y, digits.test.y)
    assert not torch.equal(other.train.x, digits.train.x)


def test_split_sizes_are_checked():
    assert len(load_digits(val=100, test=50, dtype=torch.float64).train.y) == 1647
    with pytest.raises(ValueError, match="digits: val=1000 and test=1000 must be >= 1"):
        load_digits(val=1000, test=1000)
