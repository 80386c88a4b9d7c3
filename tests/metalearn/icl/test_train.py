import pytest
import torch

from metalearn.icl import LinearSelfAttention, TaskDistribution, fit_gd, mse, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_is_deterministic_and_reaches_gd():
    """A 1-layer LSA trained briefly gets near the line-searched one-step-GD loss."""
    dist = TaskDistribution(3, 6)

    def run():
        model = LinearSelfAttention(3, 1, 1, init_scale=0.1, generator=torch.Generator().manual_seed(0))
        rows = []
        result = train(model, dist, 300, 256, 1e-2, torch.Generator().manual_seed(1),
                       log=lambda step, metrics: rows.append((step, metrics)), every=100)
        return model, result, rows

    (model, first, rows), (_, second, _) = run(), run()
    assert first == second and [s for s, _ in rows] == [100, 200, 300]
    held_out = dist.sample(4096, torch.Generator().manual_seed(2))
    _, gd_loss = fit_gd(held_out)
    with torch.no_grad():
        loss = mse(model(*held_out[:3]), held_out.yq)
    assert loss < 1.03 * gd_loss


def test_train_reports_divergence():
    dist = TaskDistribution(3, 6)
    model = LinearSelfAttention(3, 3, 1, init_scale=1e4, generator=torch.Generator().manual_seed(0))
    result = train(model, dist, 50, 64, 1e-3, torch.Generator().manual_seed(1))
    assert result.diverged_step == 1 and result.steps == 1
