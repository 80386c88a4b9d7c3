import math

import torch

from metalearn.stats import mean_ci95


def test_mean_and_ci95_by_hand():
    values = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])  # 3 tasks, 2 columns
    mean, ci = mean_ci95(values)
    assert mean.tolist() == [3.0, 20.0]
    # sample std of (1, 3, 5) is 2, of (10, 10, 40) is √300
    assert torch.allclose(
        ci,
        torch.tensor([1.96 * 2 / math.sqrt(3), 1.96 * math.sqrt(300) / math.sqrt(3)], dtype=torch.float64),
        rtol=1e-15,
        atol=0,
    )
    mean_t, ci_t = mean_ci95(values.T, dim=1)
    assert torch.equal(mean_t, mean) and torch.equal(ci_t, ci)


def test_one_task_has_no_spread():
    mean, ci = mean_ci95(torch.tensor([[2.0, 4.0]]))
    assert mean.tolist() == [2.0, 4.0] and ci.tolist() == [0.0, 0.0]
