import math

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
        result = train(
            model,
            dist,
            300,
            256,
            1e-2,
            torch.Generator().manual_seed(1),
            log=lambda step, metrics: rows.append((step, metrics)),
            every=100,
        )
        return model, result, rows

    (model, first, rows), (_, second, _) = run(), run()
    assert first == second and [s for s, _ in rows] == [100, 200, 300]
    assert first.history.rows == [{"step": step, **metrics} for step, metrics in rows]
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


def test_train_reports_through_log_and_progress():
    rows, calls = [], []

    def progress(iterable, total=None, desc=None):
        calls.append((total, desc))
        return iterable

    model = LinearSelfAttention(3, 1, 1, generator=torch.Generator().manual_seed(0))
    result = train(
        model,
        TaskDistribution(3, 6),
        5,
        32,
        1e-2,
        torch.Generator().manual_seed(1),
        log=lambda step, metrics: rows.append((step, metrics)),
        every=2,
        evaluate=lambda: {"eval/one": 1.0},
        progress=progress,
    )
    assert calls == [(5, "icl")] and [step for step, _ in rows] == [2, 4, 5]
    assert result[:3] == (5, None, {"loss/train": rows[-1][1]["loss/train"], "eval/one": 1.0})
    assert result.history["eval/one"].steps.tolist() == [2, 4, 5]


def test_divergence_keeps_the_last_finite_value_of_each_metric():
    """Adam at lr = 10 blows a 3-layer LSA up: step 1's update leaves a finite training loss and
    an evaluation that overflows; step 2's loss is not finite, is logged, and ends training."""
    dist = TaskDistribution(3, 5)
    held_out = dist.sample(256, torch.Generator().manual_seed(2))
    model = LinearSelfAttention(3, 3, 1, generator=torch.Generator().manual_seed(0))

    def evaluate():
        with torch.no_grad():
            return {"eval/loss": mse(model(*held_out[:3]), held_out.yq), "eval/one": 1.0}

    rows = []
    result = train(
        model,
        dist,
        40,
        64,
        10.0,
        torch.Generator().manual_seed(1),
        log=lambda step, metrics: rows.append((step, metrics)),
        every=1,
        evaluate=evaluate,
    )
    assert result.diverged_step == result.steps == 2
    (first, metrics), (second, last) = rows
    assert first == 1 and math.isfinite(metrics["loss/train"]) and not math.isfinite(metrics["eval/loss"])
    assert second == 2 and list(last) == ["loss/train"] and not math.isfinite(last["loss/train"])
    assert result.last_finite == {"loss/train": metrics["loss/train"], "eval/one": 1.0}
