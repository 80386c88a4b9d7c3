import pytest
import torch

from metalearn.icl import TaskDistribution, task_pool

pytestmark = pytest.mark.usefixtures("one_thread")


def test_shapes_targets_and_range():
    tasks = TaskDistribution(dim=3, context=5, x_range=0.5).sample(64, torch.Generator().manual_seed(0))
    assert tasks.xs.shape == (64, 5, 3) and tasks.ys.shape == (64, 5)
    assert tasks.xq.shape == (64, 3) and tasks.yq.shape == (64,) and tasks.w.shape == (64, 3)
    assert torch.equal(tasks.ys, torch.einsum("bnd,bd->bn", tasks.xs, tasks.w))
    assert torch.equal(tasks.yq, (tasks.xq * tasks.w).sum(-1))
    assert tasks.xs.abs().max() <= 0.5 and tasks.xs.abs().max() > 0.45


def test_same_seed_same_tasks_and_noise():
    dist = TaskDistribution(dim=4, context=6, x_dist="gaussian", noise=0.1)
    a, b = (dist.sample(8, torch.Generator().manual_seed(3)) for _ in range(2))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    residual = a.ys - torch.einsum("bnd,bd->bn", a.xs, a.w)
    assert 0 < residual.abs().max() < 1


def test_pool_restricts_weights_and_context_override():
    pool = task_pool(3, 2, torch.Generator().manual_seed(0))
    tasks = TaskDistribution(dim=2, context=4, pool=pool).sample(50, torch.Generator().manual_seed(1),
                                                                context=7)
    assert tasks.xs.shape == (50, 7, 2)
    assert all(any(torch.equal(w, p) for p in pool) for w in tasks.w)
    assert len({tuple(w.tolist()) for w in tasks.w}) == 3


def test_scaled_tasks():
    tasks = TaskDistribution(dim=2, context=3).sample(4, torch.Generator().manual_seed(0))
    scaled = tasks.scaled(x_scale=2.0, w_scale=3.0)
    assert torch.allclose(scaled.ys, torch.einsum("bnd,bd->bn", scaled.xs, scaled.w))
    assert torch.equal(scaled.xq, 2 * tasks.xq)


@pytest.mark.parametrize("kwargs", [dict(x_dist="cauchy"), dict(dim=0), dict(context=0)])
def test_bad_input(kwargs):
    with pytest.raises(ValueError):
        TaskDistribution(**{"dim": 2, "context": 2, **kwargs})
