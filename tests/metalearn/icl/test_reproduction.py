"""von Oswald et al. (2023) on this CPU: `make test-slow` (a few minutes each)."""
import pytest
import torch

from metalearn.icl import (LinearSelfAttention, TaskDistribution, alignment, fit_gd, fit_gd_plus_plus, gd,
                           mse, train)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def _trained(layers, steps, batch, lr):
    dist = TaskDistribution(10, 10)
    generator = torch.Generator().manual_seed(0)
    tune, evals = dist.sample(4096, generator), dist.sample(4096, generator)
    model = LinearSelfAttention(10, layers, generator=generator)
    result = train(model, dist, steps, batch, lr, generator)
    assert result.diverged_step is None
    with torch.no_grad():
        loss = mse(model(*evals[:3]), evals.yq)
    return model, tune, evals, loss


def test_one_layer_lsa_matches_one_gd_step():
    """d = N = 10: within 1% of line-searched one-step GD's loss, model cos > 0.99."""
    model, tune, evals, loss = _trained(1, 1000, 2048, 1e-3)
    lr, _ = fit_gd(tune)
    gd_loss = mse(gd(lr)(*evals[:3]), evals.yq)
    assert loss < 1.01 * gd_loss
    assert alignment(model, gd(lr), evals)["model_cos"] > 0.99


def test_two_layer_lsa_beats_two_gd_steps():
    """Two LSA layers beat one and two plain GD steps, and stay above GD++ (von Oswald, Fig. 4)."""
    _, tune, evals, loss = _trained(2, 2000, 1024, 3e-3)
    one_step = mse(gd(fit_gd(tune, 1)[0])(*evals[:3]), evals.yq)
    two_steps = mse(gd(fit_gd(tune, 2)[0], 2)(*evals[:3]), evals.yq)
    _, _, gd_plus_plus_loss = fit_gd_plus_plus(evals, 2)
    assert gd_plus_plus_loss < loss < two_steps < one_step
