"""The evaluation protocol: adaptation curves against a hand-written loop, and the intervals."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.timing import peak_memory
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


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_every_output_of_the_vmapped_curve_depends_on_the_task(kind, monkeypatch):
    """torch 2.11's `vmap` cannot place an output that does not depend on the batch at `out_dims=1`
    (it raised on every sine evaluation there); torch 2.14 can, so check the outputs themselves."""
    from torch._C._functorch import is_batchedtensor  # private: the only public check is the failure
    from torch.utils._pytree import tree_leaves

    import metalearn.maml.adaptation as adaptation

    def checked_vmap(fn, **options):
        def per_task(*args):
            outputs = fn(*args)
            assert all(is_batchedtensor(t) for t in tree_leaves(outputs)), (
                "an output is the same for every task"
            )
            return outputs

        return torch.func.vmap(per_task, **options)

    monkeypatch.setattr(adaptation, "vmap", checked_vmap)
    if kind == "regression":
        family = Sine(5, 20)
    else:
        from metalearn.fewshot import ImageTasks

        g = torch.Generator().manual_seed(0)
        images = {
            split: torch.rand(10, 3, 1, 28, 28, generator=g) for split in ("train", "validation", "test")
        }
        family = ImageTasks(images, ways=5, shots=1, queries=2, rotations=False)
    learner = make_learner("maml", family.make_model(torch.Generator().manual_seed(0)), kind)
    losses, accuracies = learner.adaptation_curve(
        family.sample("test", 3, torch.Generator().manual_seed(1)), 2
    )
    assert losses.shape == (3, 3) and (accuracies is None) == (kind == "regression")


def test_evaluation_memory_does_not_grow_with_the_number_of_tasks_beyond_the_tasks_themselves():
    """Chunks of 20 tasks adapted under no_grad: 200 tasks peak no higher than 40 do, but for the
    160 more tasks drawn up front; the whole 200 at once (one chunk) peaks far higher, so the
    measure (the allocator's peak, from torch's profiler) sees what chunking saves."""
    family = Sine(10, 10)
    learner = make_learner("maml", family.make_model(torch.Generator().manual_seed(0)), "regression")

    def peak(n_tasks, chunk):
        generator = torch.Generator().manual_seed(1)
        return peak_memory(
            lambda: evaluate(learner, family, n_tasks=n_tasks, steps=5, generator=generator, chunk=chunk)
        )

    tasks = family.sample("test", 160, torch.Generator().manual_seed(1))
    drawn = sum(t.numel() * t.element_size() for t in tasks)  # the 160 tasks more
    kept = 160 * 6 * 4  # and their results: a float32 loss after 0..5 steps each
    small, large = peak(40, 20), peak(200, 20)
    assert small > 0
    assert large <= small + drawn + kept
    assert peak(200, 200) > 3 * small
