import pytest
import torch

from metalearn.icl import (
    LinearSelfAttention,
    TaskDistribution,
    alignment,
    gd,
    ilwd,
    implied_weights,
    lsa_gd,
    mse,
    ols,
    probe_r2,
    ridge,
    ridge_weights,
    sensitivity,
    spd,
    sweep,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _tasks(n, dim=4, context=6, seed=0):
    tasks = TaskDistribution(dim, context).sample(n, torch.Generator().manual_seed(seed))
    return type(tasks)(*(t.double() for t in tasks))


def test_identical_predictors_align_exactly():
    tasks = _tasks(256)
    model = LinearSelfAttention(4, 2, 2, generator=torch.Generator().manual_seed(0)).double()
    assert alignment(model, model, tasks) == {"preds_diff": 0.0, "model_cos": 1.0, "model_diff": 0.0}
    assert spd(model, model, tasks) == 0.0


def test_gd_sensitivity_is_its_weight_and_lsa_gd_aligns_with_gd():
    tasks = _tasks(64)
    expected = (0.8 / 6) * torch.einsum("bnd,bn->bd", tasks.xs, tasks.ys)  # (η/N) Σ y_i x_i
    assert torch.allclose(sensitivity(gd(0.8), tasks), expected, atol=1e-14)
    metrics = alignment(lsa_gd(4, 1, 0.8, 6, dtype=torch.float64), gd(0.8), tasks)
    assert metrics["preds_diff"] < 1e-13 and metrics["model_diff"] < 1e-13
    assert metrics["model_cos"] == pytest.approx(1.0, abs=1e-13)


def test_alignment_by_hand():
    """ŷ₂ = −ŷ₁: preds_diff = 2E|ŷ₁|, cos = −1, model_diff = 2E‖g₁‖."""
    tasks = _tasks(32)
    flipped = lambda xs, ys, xq: -gd(1.0)(xs, ys, xq)
    metrics = alignment(gd(1.0), flipped, tasks)
    assert metrics["preds_diff"] == pytest.approx(2 * float(gd(1.0)(*tasks[:3]).abs().mean()))
    assert metrics["model_cos"] == pytest.approx(-1.0)
    g = sensitivity(gd(1.0), tasks)
    assert metrics["model_diff"] == pytest.approx(2 * float(g.norm(dim=-1).mean()))
    assert spd(gd(1.0), flipped, tasks) == pytest.approx(4 * float((gd(1.0)(*tasks[:3]) ** 2).mean()) / 4)


def test_implied_weights_and_ilwd():
    tasks = _tasks(16)
    probes = torch.randn(16, 12, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w_ridge = implied_weights(ridge(0.3), tasks, probes)
    assert torch.allclose(w_ridge, ridge_weights(tasks.xs, tasks.ys, 0.3), atol=1e-10)
    assert ilwd(w_ridge, w_ridge) == 0.0
    assert ilwd(w_ridge, torch.zeros_like(w_ridge)) == pytest.approx(float((w_ridge**2).sum(-1).mean()) / 4)
    assert torch.allclose(implied_weights(ols(), tasks, probes), tasks.w, atol=1e-10)  # N > d, noiseless


def test_probe_r2():
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(2000, 5, generator=generator)
    targets = states[:, :3] @ torch.randn(3, 2, generator=generator) + 1.5
    assert probe_r2(states, targets) == pytest.approx(1.0, abs=1e-6)
    noise = torch.randn(2000, 2, generator=generator)
    assert abs(probe_r2(states, noise)) < 0.02
    half = probe_r2(states, targets + noise * targets.std(0))
    assert half == pytest.approx(0.5, abs=0.05)


def test_sweep_error_vs_context():
    dist = TaskDistribution(3, 8)
    batches = [dist.sample(512, torch.Generator().manual_seed(k), context=k) for k in (1, 3, 8)]
    curves = sweep({"ols": lambda t: mse(ols()(*t[:3]), t.yq)}, batches)
    assert len(curves["ols"]) == 3 and curves["ols"][0] > 0.5 and curves["ols"][2] < 1e-8
