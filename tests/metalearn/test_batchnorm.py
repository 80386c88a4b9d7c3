"""Batch norm in plain tensor ops, and second-order MAML through it in the functional engine.

Gradients are compared by norm over all parameters at once: under batch norm the conv biases'
true gradient is exactly 0, so a per-parameter relative error would only measure rounding noise.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metalearn.convnet import BatchNorm, conv4, plain_batch_norm
from metalearn.fewshot import ImageTasks, Tasks
from metalearn.maml import functional_meta_loss, gradient_algorithms, make_learner

pytestmark = pytest.mark.usefixtures("one_thread")
ALPHA = 0.4


def conv_tasks(seed=0, n_tasks=3):
    """A float64 conv-4 (4 filters) and a meta-batch of 3-way 1-shot tasks on random images."""
    g = torch.Generator().manual_seed(seed)
    images = {split: torch.rand(4, 3, 1, 28, 28, generator=g) for split in ("train", "validation", "test")}
    tasks = ImageTasks(images, ways=3, shots=1, queries=2, rotations=False).sample("train", n_tasks, g)
    return conv4(3, g, hidden=4).double(), Tasks(tasks[0].double(), tasks[1], tasks[2].double(), tasks[3])


def relative_error(got: list[torch.Tensor], expected: list[torch.Tensor]) -> float:
    """‖got − expected‖ / ‖expected‖ over all tensors at once."""
    difference = torch.cat([(a - b).flatten() for a, b in zip(got, expected)])
    return float(difference.norm() / torch.cat([b.flatten() for b in expected]).norm())


def per_task_meta_gradient(model, tasks, steps=1):
    """Second-order MAML by hand: each task adapted with autograd.grad(create_graph=True), no vmap."""
    params = dict(model.named_parameters())
    total = 0.0
    for sx, sy, qx, qy in zip(*tasks):
        fast = params
        for _ in range(steps):
            support = F.cross_entropy(functional_call(model, fast, (sx,)), sy)
            grads = torch.autograd.grad(support, list(fast.values()), create_graph=True)
            fast = {name: p - ALPHA * g for (name, p), g in zip(fast.items(), grads)}
        total = total + F.cross_entropy(functional_call(model, fast, (qx,)), qy)
    return torch.autograd.grad(total / tasks.n_tasks, list(params.values()))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
def test_forward_and_gradient_equal_torch_batch_norm(dtype, tolerance):
    g = torch.Generator().manual_seed(1)
    x = (3 * torch.randn(6, 5, 7, 7, generator=g) + 2).to(dtype)
    reference = nn.BatchNorm2d(5, track_running_stats=False).to(dtype)
    with torch.no_grad():
        reference.weight.copy_(torch.randn(5, generator=g))
        reference.bias.copy_(torch.randn(5, generator=g))
    ours = BatchNorm(reference.weight, reference.bias, reference.eps)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=tolerance)
    x.requires_grad_(True)
    upstream = torch.randn(6, 5, 7, 7, generator=g).to(dtype)
    got = torch.autograd.grad((ours(x) * upstream).sum(), [x, reference.weight, reference.bias])
    expected = torch.autograd.grad((reference(x) * upstream).sum(), [x, reference.weight, reference.bias])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=100 * tolerance)


def test_swap_keeps_the_parameters_and_the_function():
    model, tasks = conv_tasks()
    before = {name: p for name, p in model.named_parameters()}
    out = model(tasks.support_x[0])
    plain_batch_norm(model)
    assert sum(isinstance(m, BatchNorm) for m in model.modules()) == 4
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(p is before[name] for name, p in model.named_parameters())  # the optimiser's tensors
    torch.testing.assert_close(model(tasks.support_x[0]), out, rtol=0, atol=1e-12)


def test_swap_refuses_running_statistics():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    with pytest.raises(ValueError, match="batch norm '1' has track_running_stats=True, affine=True; valid"):
        plain_batch_norm(model)


@pytest.mark.parametrize("algo", gradient_algorithms())
def test_functional_meta_gradient_equals_learn2learn_on_conv4(algo):
    """Issue 12: every algorithm of the MAML family, functional engine against learn2learn's (which
    keeps torch's batch norm), two inner steps, float64."""
    model, tasks = conv_tasks(seed=2)
    grads = {}
    for engine in ("functional", "learn2learn"):
        learner = make_learner(
            algo, copy.deepcopy(model), "classification", engine=engine, inner_lr=ALPHA, inner_steps=2
        )
        learner.meta_loss(tasks).backward()
        grads[engine] = [p.grad for p in learner.meta_parameters()]
    assert relative_error(grads["functional"], grads["learn2learn"]) < 1e-10
    assert torch.cat([g.flatten() for g in grads["functional"]]).norm() > 0


def test_vmapped_second_order_equals_a_per_task_autograd_loop():
    model, tasks = conv_tasks(seed=3)
    expected = per_task_meta_gradient(model, tasks)  # torch's batch norm: right without vmap
    learner = make_learner("maml", copy.deepcopy(model), "classification", inner_lr=ALPHA)
    learner.meta_loss(tasks).backward()
    assert relative_error([p.grad for p in learner.model.parameters()], expected) < 1e-12


def test_torch_batch_norm_under_vmap_is_still_wrong_at_second_order():
    """Why the plain batch norm exists. If this fails because torch now agrees with the loop, the
    swap in GradientMetaLearner can go (and with it `BatchNorm`)."""
    model, tasks = conv_tasks(seed=3)
    expected = per_task_meta_gradient(model, tasks)
    loss = functional_meta_loss(
        model,
        {name: ALPHA for name, _ in model.named_parameters()},
        tasks,
        1,
        F.cross_entropy,
        first_order=False,
    )
    got = torch.autograd.grad(loss, list(model.parameters()))
    assert relative_error(got, expected) > 1e-4


class OwnNet(nn.Module):
    """A user's own small conv net with torch's batch norm (running statistics on by default)."""

    def __init__(self, track: bool):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=track), nn.ReLU())
        self.head = nn.Linear(4 * 26 * 26, 3)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


@pytest.mark.parametrize("algo", gradient_algorithms())
def test_running_statistics_are_refused_at_construction_under_every_variant(algo):
    """Issue 24: fomaml took torch's batch norm with running statistics, then its first meta-step
    failed inside torch.func ("in-place operation ... captured Tensor"). Every variant refuses it
    when the learner is made, naming the module; without running statistics it trains."""
    with pytest.raises(ValueError, match="^batch norm 'body.1' has track_running_stats=True"):
        make_learner(algo, OwnNet(True).double(), "classification", inner_lr=ALPHA)
    _, tasks = conv_tasks()
    learner = make_learner(algo, OwnNet(False).double(), "classification", inner_lr=ALPHA)
    assert torch.isfinite(torch.tensor(learner.meta_step(tasks)))


def test_learn2learn_keeps_torchs_batch_norm_with_running_statistics():
    pytest.importorskip("learn2learn")
    _, tasks = conv_tasks()
    model = OwnNet(True).double()
    learner = make_learner("fomaml", model, "classification", engine="learn2learn", inner_lr=ALPHA)
    assert torch.isfinite(torch.tensor(learner.meta_step(tasks)))
    assert model.body[1].num_batches_tracked.item() > 0
