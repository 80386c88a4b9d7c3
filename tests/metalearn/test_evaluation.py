"""The evaluation protocol: adaptation curves against a hand-written loop, and the intervals."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from metalearn import Sine, evaluate, make_learner, mean_ci95

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mean_ci95_is_the_normal_interval():
    values = torch.tensor([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0], [7.0, 2.0]])
    mean, ci = mean_ci95(values)
    assert mean.tolist() == [4.0, 2.0]
    assert ci.tolist() == pytest.approx([1.96 * np.std([1, 3, 5, 7], ddof=1) / 2, 0.0])


@pytest.mark.parametrize("algo", ["maml", "metasgd", "anil"])
def test_adaptation_curve_equals_a_hand_written_sgd_loop(algo):
    family = Sine(5, 20)
    model = family.make_model(torch.Generator().manual_seed(0))
    learner = make_learner(algo, model, "regression", inner_lr=0.05)
    if algo == "metasgd":  # distinct per-parameter rates, so using the wrong one would show
        with torch.no_grad():
            for rate in learner.lrs:
                rate.uniform_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
    tasks = family.sample("test", 4, torch.Generator().manual_seed(2))
    losses, accuracies = learner.adaptation_curve(tasks, 3)  # (steps + 1, tasks)
    assert losses.shape == (4, 4) and accuracies is None
    rates = learner.rates()
    for i in range(4):
        net = copy.deepcopy(model)
        params = dict(net.named_parameters())
        for step in range(4):
            with torch.no_grad():
                assert losses[step, i].item() == pytest.approx(
                    nn.functional.mse_loss(net(tasks.query_x[i]), tasks.query_y[i]).item(), rel=1e-5
                )
            support = nn.functional.mse_loss(net(tasks.support_x[i]), tasks.support_y[i])
            grads = torch.autograd.grad(support, [params[n] for n in rates])
            with torch.no_grad():
                for n, g in zip(rates, grads):
                    params[n] -= rates[n] * g


def test_evaluate_reports_every_step_and_ignores_chunking():
    family = Sine(10, 10)
    learner = make_learner("maml", family.make_model(torch.Generator().manual_seed(3)), "regression")
    curves = [
        evaluate(learner, family, n_tasks=30, steps=2, generator=torch.Generator().manual_seed(4), chunk=c)
        for c in (7, 100)
    ]
    assert curves[0] == curves[1]
    assert len(curves[0].loss) == 3 and curves[0].n_tasks == 30
