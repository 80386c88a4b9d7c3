"""von Oswald et al. (2023) on this CPU: `make test-slow` (a few minutes each)."""

import pytest
import torch

from metalearn.icl import (
    LinearSelfAttention,
    TaskDistribution,
    alignment,
    fit_gd,
    fit_gd_plus_plus,
    gd,
    gd_plus_plus,
    mse,
    spd,
    train,
)

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


def test_two_layer_lsa_beats_two_gd_steps_and_is_closest_to_gd_plus_plus():
    """von Oswald et al. (2023): deeper trained LSA beats plain GD and resembles GD++."""
    model, tune, evals, loss = _trained(2, 2000, 1024, 3e-3)
    two_steps = gd(fit_gd(tune, 2)[0], 2)
    lr, gamma, _ = fit_gd_plus_plus(tune, 2)
    plus_plus = lambda xs, ys, xq: gd_plus_plus(xs, ys, xq, lr, gamma, 2)
    assert loss < 0.8 * mse(two_steps(*evals[:3]), evals.yq)
    assert spd(model, plus_plus, evals) < 0.6 * spd(model, two_steps, evals)
