"""Longer reproductions (`make test-slow`): what meta-learning buys on sinusoids (Finn et al. 2017)."""

import pytest
import torch

from metalearn import Sine, evaluate, make_learner

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


def test_maml_adapts_in_one_step_where_pretraining_cannot():
    """After 3000 meta-updates, one step from MAML's init beats one step from the pretrained net,
    and improves on MAML's own pre-adaptation error (fig. 3 of the paper, qualitatively)."""
    family = Sine(10, 10)
    results = {}
    for algo in ("maml", "pretrain"):
        g = torch.Generator().manual_seed(0)
        learner = make_learner(algo, family.make_model(g), "regression")
        for _ in range(3000):
            learner.meta_step(family.sample("train", 25, g))
        results[algo] = evaluate(
            learner, Sine(10, 100), n_tasks=500, steps=1, generator=torch.Generator().manual_seed(1)
        )
    maml, pretrain = results["maml"], results["pretrain"]
    assert maml.loss[1] + maml.loss_ci95[1] < pretrain.loss[1] - pretrain.loss_ci95[1]
    assert maml.loss[1] < 0.6 * maml.loss[0]
