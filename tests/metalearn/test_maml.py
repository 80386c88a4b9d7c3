"""The MAML family against hand-written meta-gradients and against learn2learn."""

import copy
import math
import sys

import pytest
import torch
from torch import nn

from metalearn.fewshot import HeadedNetwork, Sine, Tasks
from metalearn.maml import (
    ALGORITHMS,
    META_SGD,
    GradientMetaLearner,
    ProtoNet,
    accuracy,
    fine_tune,
    gradient_algorithms,
    learn2learn_meta_loss,
    make_learner,
)
from metalearn.maml._l2l import l2l

ALPHA = 0.1
pytestmark = pytest.mark.usefixtures("one_thread")


def linear_regression_tasks(generator, n_tasks=3, dim=3, shots=6):
    """Random linear-regression tasks: their losses have the constant Hessian H = (2/n) XᵀX."""
    x = torch.randn(n_tasks, 2 * shots, dim, generator=generator, dtype=torch.float64)
    y = torch.randn(n_tasks, 2 * shots, 1, generator=generator, dtype=torch.float64)
    return Tasks(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def linear_model(dim=3):
    """y = wᵀx, no bias, as a HeadedNetwork with an identity body."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(dim, 1, bias=False)).double()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64))
    return model


def mse_gradient(w, x, y):
    """∇_w mean((Xw − y)²) = (2/n) Xᵀ(Xw − y)."""
    return 2 / len(x) * x.T @ (x @ w - y)


def hand_meta_gradient(w, tasks, steps, second_order):
    """(1/T) Σ_τ Π_k (I − α H_s) ∇L_q(w_k): exact for linear regression, where H_s is constant."""
    total = torch.zeros_like(w)
    for sx, sy, qx, qy in zip(*tasks):
        fast = w
        for _ in range(steps):
            fast = fast - ALPHA * mse_gradient(fast, sx, sy)
        g = mse_gradient(fast, qx, qy)
        if second_order:
            hessian = 2 / len(sx) * sx.T @ sx
            for _ in range(steps):
                g = g - ALPHA * hessian @ g
        total += g
    return total / tasks.n_tasks


def meta_gradient(algo, engine, model, tasks, steps):
    learner = make_learner(algo, model, "regression", engine=engine, inner_lr=ALPHA, inner_steps=steps)
    learner.meta_loss(tasks).backward()
    return learner


@pytest.mark.parametrize("engine", ["functional", "learn2learn"])
@pytest.mark.parametrize("algo, second_order", [("maml", True), ("fomaml", False)])
@pytest.mark.parametrize("steps", [1, 3])
def test_meta_gradient_equals_hand_written_on_linear_regression(engine, algo, second_order, steps):
    tasks = linear_regression_tasks(torch.Generator().manual_seed(1))
    model = linear_model()
    meta_gradient(algo, engine, model, tasks, steps)
    expected = hand_meta_gradient(model.head.weight.detach().T, tasks, steps, second_order)
    torch.testing.assert_close(model.head.weight.grad, expected.T, rtol=1e-10, atol=1e-12)


def test_fomaml_drops_exactly_the_second_order_term():
    """MAML − FOMAML = −α H_s ∇L_q(w′) per task for one step (Finn et al. 2017, section 5.2)."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(2))
    grads = {}
    for algo in ("maml", "fomaml"):
        model = linear_model()
        meta_gradient(algo, "functional", model, tasks, 1)
        grads[algo] = model.head.weight.grad.T
    w = linear_model().head.weight.detach().T
    term = torch.zeros_like(w)
    for sx, sy, qx, qy in zip(*tasks):
        fast = w - ALPHA * mse_gradient(w, sx, sy)
        term += -ALPHA * (2 / len(sx) * sx.T @ sx) @ mse_gradient(fast, qx, qy)
    torch.testing.assert_close(grads["maml"] - grads["fomaml"], term / tasks.n_tasks, rtol=1e-10, atol=1e-12)


def test_maml_meta_gradient_equals_hessian_formula_on_a_nonlinear_net():
    """∇_θ L_q(θ − α∇L_s(θ)) = (I − α ∇²L_s(θ)) ∇L_q(θ′), Hessian by torch.autograd.functional."""
    g = torch.Generator().manual_seed(3)
    model = HeadedNetwork(nn.Sequential(nn.Linear(1, 4), nn.Tanh()), nn.Linear(4, 1)).double()
    tasks = Tasks(*(t.double() for t in Sine(5, 5).sample("train", 1, g)))
    meta_gradient("maml", "functional", model, tasks, 1)
    got = torch.cat([p.grad.flatten() for p in model.parameters()])

    shapes = [p.shape for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]

    def loss(flat, x, y):
        chunks = flat.split([s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return nn.functional.mse_loss(torch.func.functional_call(model, params, (x,)), y)

    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    sx, sy, qx, qy = (t[0] for t in tasks)
    support_grad = torch.autograd.functional.jacobian(lambda t: loss(t, sx, sy), theta)
    hessian = torch.autograd.functional.hessian(lambda t: loss(t, sx, sy), theta)
    query_grad = torch.autograd.functional.jacobian(lambda t: loss(t, qx, qy), theta - ALPHA * support_grad)
    expected = (torch.eye(len(theta), dtype=torch.float64) - ALPHA * hessian) @ query_grad
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("algo", gradient_algorithms())
def test_functional_engine_meta_gradient_equals_learn2learn(algo):
    """Issue 7: both engines give the same meta-gradient to 1e-5, two inner steps, sine MLP."""
    family = Sine(10, 10)
    tasks = family.sample("train", 8, torch.Generator().manual_seed(4))
    model = family.make_model(torch.Generator().manual_seed(5))
    grads = {}
    for engine in ("functional", "learn2learn"):
        learner = meta_gradient(algo, engine, copy.deepcopy(model), tasks, 2)
        grads[engine] = [p.grad for p in learner.meta_parameters()]
    for got, expected in zip(grads["functional"], grads["learn2learn"]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in grads["functional"])


def test_engines_train_the_same_curve():
    family = Sine(10, 10)
    curves = {}
    for engine in ("functional", "learn2learn"):
        g = torch.Generator().manual_seed(6)
        learner = make_learner("maml", family.make_model(g), "regression", engine=engine, meta_lr=1e-2)
        curves[engine] = torch.tensor([learner.meta_step(family.sample("train", 5, g)) for _ in range(15)])
    torch.testing.assert_close(curves["functional"], curves["learn2learn"], rtol=1e-4, atol=1e-5)


def test_learn2learn_meta_sgd_given_no_rates_starts_them_all_at_inner_lr():
    """`lrs=None`: learn2learn's MetaSGD makes its own rates, each α = inner_lr, so the meta-loss
    is MAML's, mean_τ L_q(w − α∇L_s(w)), and so is its gradient."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(17))
    model = linear_model()
    loss = learn2learn_meta_loss(model, META_SGD, ALPHA, None, tasks, 1, nn.functional.mse_loss)
    loss.backward()
    w = model.head.weight.detach().T
    expected = sum(
        ((qx @ (w - ALPHA * mse_gradient(w, sx, sy)) - qy) ** 2).mean() for sx, sy, qx, qy in zip(*tasks)
    )
    torch.testing.assert_close(loss, expected / tasks.n_tasks, rtol=1e-12, atol=0)
    meta_gradient = hand_meta_gradient(w, tasks, 1, second_order=True)
    torch.testing.assert_close(model.head.weight.grad, meta_gradient.T, rtol=1e-10, atol=1e-12)


def test_a_fresh_learn2learn_clone_computes_what_the_base_model_computes():
    family = Sine(10, 10)
    model = family.make_model(torch.Generator().manual_seed(7))
    x = family.sample("train", 1, torch.Generator().manual_seed(8)).support_x[0]
    clone = l2l.algorithms.MAML(model, lr=ALPHA).clone()
    torch.testing.assert_close(clone(x), model(x), rtol=0, atol=0)
    clone(x).sum().backward()  # the clone's graph reaches the base model's parameters
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_anil_adapts_only_the_head():
    family = Sine(10, 10)
    model = family.make_model(torch.Generator().manual_seed(9))
    learner = make_learner("anil", model, "regression")
    tasks = family.sample("train", 1, torch.Generator().manual_seed(10))
    params = dict(model.named_parameters())
    fast = fine_tune(
        model, params, learner.rates(), tasks.support_x[0], tasks.support_y[0], 3, learner.loss_fn
    )
    for name, p in params.items():
        assert torch.equal(fast[name], p) == (not name.startswith("head.")), name


def test_fine_tune_differentiates_through_its_steps_unless_first_order():
    """One step on mean((wx − y)²): w′ = w − α·2·mean(x(wx − y)), so dw′/dw = 1 − 2α·mean(x²) by
    default (second order) and 1 with first_order, where the inner gradient is a constant."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(1, 1, bias=False)).double()
    x = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    y = torch.tensor([[0.5], [1.0], [-1.0]], dtype=torch.float64)
    w = torch.tensor([[0.7]], dtype=torch.float64, requires_grad=True)
    rates = {"head.weight": ALPHA}
    loss = nn.functional.mse_loss
    for first_order, slope in ((None, 1 - 2 * ALPHA * 14 / 3), (True, 1.0)):
        options = {} if first_order is None else {"first_order": first_order}
        fast = fine_tune(model, {"head.weight": w}, rates, x, y, 1, loss, **options)
        (derivative,) = torch.autograd.grad(fast["head.weight"].sum(), w)
        torch.testing.assert_close(derivative, torch.tensor([[slope]], dtype=torch.float64))


def test_accuracy_compares_the_last_axis_whatever_comes_before():
    """Logits (tasks, points, classes): the class is the argmax over the last axis only."""
    logits = torch.zeros(2, 3, 4)
    labels = torch.tensor([[1, 2, 3], [0, 0, 2]])
    logits[0, 0, 1] = logits[0, 1, 2] = logits[0, 2, 0] = 1.0  # task 0: 2 of 3 right
    logits[1, 0, 0] = logits[1, 1, 3] = logits[1, 2, 2] = 1.0  # task 1: 2 of 3 right
    assert accuracy(logits, labels).item() == pytest.approx(4 / 6)


def test_metasgd_meta_gradient_of_the_rates_and_learns_them():
    """∂L_q(θ − α⊙g)/∂α = −g ⊙ ∇L_q(θ′) (Li et al. 2017); a meta-step moves the rates."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(11), n_tasks=1)
    model = linear_model()
    learner = meta_gradient("metasgd", "functional", model, tasks, 1)
    w = model.head.weight.detach().T
    sx, sy, qx, qy = (t[0] for t in tasks)
    g = mse_gradient(w, sx, sy)
    expected = -g * mse_gradient(w - ALPHA * g, qx, qy)
    torch.testing.assert_close(learner.lrs[0].grad, expected.T, rtol=1e-10, atol=1e-12)
    before = learner.lrs[0].detach().clone()
    learner.optimizer.step()
    assert not torch.equal(learner.lrs[0], before)


def test_reptile_moves_towards_the_adapted_weights():
    """First Adam step on θ − φ̄ moves each weight by meta_lr·(φ̄ − θ)/(|φ̄ − θ| + ε) (Nichol et al. 2018)."""
    family = Sine(5, 5)
    model = family.make_model(torch.Generator().manual_seed(12))
    tasks = family.sample("train", 4, torch.Generator().manual_seed(13))
    learner = make_learner("reptile", model, "regression", inner_lr=0.02, inner_steps=3, meta_lr=1e-3)
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    mean_adapted = {n: torch.zeros_like(p) for n, p in theta.items()}
    for i in range(4):  # each task adapted by hand with plain SGD on all its points
        net = copy.deepcopy(model)
        x = torch.cat([tasks.support_x[i], tasks.query_x[i]])
        y = torch.cat([tasks.support_y[i], tasks.query_y[i]])
        for _ in range(3):
            grads = torch.autograd.grad(nn.functional.mse_loss(net(x), y), list(net.parameters()))
            with torch.no_grad():
                for p, gp in zip(net.parameters(), grads):
                    p -= 0.02 * gp
        for n, p in net.named_parameters():
            mean_adapted[n] += p.detach() / 4
    learner.meta_step(tasks)
    for n, p in model.named_parameters():
        towards = mean_adapted[n] - theta[n]
        torch.testing.assert_close(
            p.detach() - theta[n], 1e-3 * towards / (towards.abs() + 1e-8), rtol=1e-4, atol=1e-8
        )


def test_reptile_with_one_inner_step_is_joint_training():
    """With k = 1, θ − φ̄ = α ∇(pooled loss): Adam, scale-free, takes the pretraining step."""
    family = Sine(5, 5)
    tasks = family.sample("train", 4, torch.Generator().manual_seed(14))
    weights = {}
    for algo in ("reptile", "pretrain"):
        model = family.make_model(torch.Generator().manual_seed(15)).double()
        make_learner(algo, model, "regression", inner_lr=1.0).meta_step(Tasks(*(t.double() for t in tasks)))
        weights[algo] = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.testing.assert_close(weights["reptile"], weights["pretrain"], rtol=0, atol=1e-9)


def test_protonet_scores_distances_to_class_means():
    """Identity embedding: logits = −‖q − c_k‖², c_k the class means, checked by hand."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(2, 2))
    sx = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]]])
    sy = torch.tensor([[0, 0, 1, 1]])
    qx = torch.tensor([[[1.0, 1.0], [0.0, 4.0]]])
    qy = torch.tensor([[0, 1]])
    loss, acc = ProtoNet(model, "classification")._episode(Tasks(sx, sy, qx, qy))
    logits = -torch.tensor([[1.0 + 0.0, 1.0 + 16.0], [1.0 + 16.0, 1.0]])  # centres (1, 0), (0, 5)
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits, qy[0])[None])
    assert acc.item() == 1.0


def test_protonet_curve_repeats_its_one_episode_at_every_step():
    """Prototypes are computed once: the curve is the episode's (loss, accuracy), the same at each
    of steps + 1 points."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(2, 2))
    sx = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]]]).expand(2, -1, -1)
    sy = torch.tensor([[0, 0, 1, 1]]).expand(2, -1)
    qx = torch.tensor([[[1.0, 1.0], [0.0, 4.0]], [[0.0, 5.0], [1.0, 4.0]]])
    qy = torch.tensor([[0, 1], [0, 0]])
    learner = ProtoNet(model, "classification")
    tasks = Tasks(sx, sy, qx, qy)
    losses, accuracies = learner.adaptation_curve(tasks, 2)
    episode_losses, episode_accuracies = learner._episode(tasks)
    assert losses.shape == accuracies.shape == (3, 2)
    torch.testing.assert_close(losses, episode_losses.expand(3, -1), rtol=0, atol=0)
    torch.testing.assert_close(accuracies, torch.tensor([[1.0, 0.0]] * 3), rtol=0, atol=0)
    torch.testing.assert_close(accuracies, episode_accuracies.expand(3, -1), rtol=0, atol=0)


def test_protonet_meta_loss_is_the_mean_of_its_tasks_query_losses():
    """Two tasks of the hand-checked episode above, the second's queries both labelled 0: the
    meta-loss is the mean of the two cross-entropies (not their accuracies, not one task's)."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(2, 2))
    sx = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 6.0]]]).expand(2, -1, -1)
    sy = torch.tensor([[0, 0, 1, 1]]).expand(2, -1)
    qx = torch.tensor([[[1.0, 1.0], [0.0, 4.0]], [[1.0, 1.0], [0.0, 4.0]]])
    qy = torch.tensor([[0, 1], [0, 0]])
    logits = -torch.tensor([[1.0 + 0.0, 1.0 + 16.0], [1.0 + 16.0, 1.0]])  # centres (1, 0), (0, 5)
    losses = [nn.functional.cross_entropy(logits, labels) for labels in qy]
    meta_loss = ProtoNet(model, "classification").meta_loss(Tasks(sx, sy, qx, qy))
    torch.testing.assert_close(meta_loss, (losses[0] + losses[1]) / 2)


def test_same_seed_same_numbers():
    family = Sine(10, 10)

    def train(seed):
        g = torch.Generator().manual_seed(seed)
        learner = make_learner("maml", family.make_model(g), "regression")
        return [learner.meta_step(family.sample("train", 4, g)) for _ in range(3)]

    assert train(0) == train(0)
    assert train(0) != train(1)


def small_conv_tasks():
    from metalearn.convnet import conv4
    from metalearn.fewshot import ImageTasks

    g = torch.Generator().manual_seed(16)
    images = {split: torch.rand(4, 3, 1, 28, 28, generator=g) for split in ("train", "validation", "test")}
    tasks = ImageTasks(images, ways=3, shots=1, queries=2, rotations=False).sample("train", 3, g)
    return conv4(3, g, hidden=4).double(), Tasks(tasks[0].double(), tasks[1], tasks[2].double(), tasks[3])


@pytest.mark.parametrize("algo", ["fomaml", "anil"])
def test_engines_agree_on_a_conv_net_with_per_task_batch_norm(algo):
    """BatchNorm normalises each task's batch alone in both engines (vmap, and the task loop).

    In float64: batch norm over 3 images amplifies float32 rounding (grouped vs plain convolutions)
    to ~1e-4; in float64 the engines agree to ~1e-16."""
    model, tasks = small_conv_tasks()
    grads = {}
    for engine in ("functional", "learn2learn"):
        learner = make_learner(
            algo, copy.deepcopy(model), "classification", engine=engine, inner_lr=0.4, inner_steps=2
        )
        learner.meta_loss(tasks).backward()
        grads[engine] = [p.grad for p in learner.meta_parameters()]
    for got, expected in zip(grads["functional"], grads["learn2learn"]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def sine_learners(algo, chunk, dtype, n_tasks, seed=0):
    """Two learners on copies of one sine MLP, unchunked and in chunks of `chunk`, and a meta-batch."""
    family = Sine(5, 5)
    g = torch.Generator().manual_seed(seed)
    model = family.make_model(g).to(dtype)
    tasks = Tasks(*(t.to(dtype) for t in family.sample("train", n_tasks, g)))
    whole = make_learner(algo, copy.deepcopy(model), "regression", inner_lr=0.1)
    chunked = make_learner(algo, copy.deepcopy(model), "regression", inner_lr=0.1, meta_batch_chunk=chunk)
    return whole, chunked, tasks, family, g


@pytest.mark.parametrize("algo", ["maml", "fomaml", "anil", "metasgd"])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8])  # 5 tasks: 1+1+1+1+1, 2+2+1, 3+2, whole, whole
def test_a_chunked_meta_batch_accumulates_the_unchunked_meta_gradient(algo, chunk):
    """Σ_chunks (n_c/T)·∇L_chunk = ∇L: the same meta-gradient and meta-loss, in float64, to
    summation order, also where the chunks are unequal; the meta-loss is taken chunk by chunk."""
    whole, chunked, tasks, _, _ = sine_learners(algo, chunk, torch.float64, n_tasks=5)
    sizes, meta_loss = [], chunked.meta_loss
    chunked.meta_loss = lambda part: sizes.append(len(part.support_x)) or meta_loss(part)
    assert chunked.meta_step(tasks) == pytest.approx(whole.meta_step(tasks), rel=1e-13)
    assert sizes == [min(chunk, 5 - start) for start in range(0, 5, chunk)]
    for mine, theirs in zip(chunked.meta_parameters(), whole.meta_parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-15)


def test_a_chunked_meta_batch_trains_the_same_curve_in_float32():
    """20 meta-steps of 25 sine tasks in chunks of 10 (10 + 10 + 5): the same losses to 1e-5."""
    whole, chunked, _, family, g = sine_learners("maml", 10, torch.float32, n_tasks=1)
    curves = ([], [])
    for _ in range(20):
        tasks = family.sample("train", 25, g)
        for learner, curve in zip((whole, chunked), curves):
            curve.append(learner.meta_step(tasks))
    assert curves[1] == pytest.approx(curves[0], rel=1e-5)
    assert curves[0][-1] < curves[0][0]


def test_a_meta_batch_chunk_below_one_is_refused():
    model = Sine(5, 5).make_model(torch.Generator().manual_seed(0))
    message = "meta_batch_chunk=0: tasks per chunk of the meta-batch; valid: an integer >= 1"
    with pytest.raises(ValueError, match=f"^{message}$"):
        make_learner("maml", model, "regression", meta_batch_chunk=0)


def test_a_maml_learner_moved_leaves_an_unrecorded_meta_step_unrecorded():
    """`to` re-records a recorded (CUDA graph) meta-step only: a learner moved to the CPU it is on
    trains on as the unmoved one does."""
    moved, unmoved, tasks, _, _ = sine_learners("metasgd", None, torch.float64, n_tasks=3)
    for learner in (moved, unmoved):
        learner.meta_step(tasks)
    assert moved.to(torch.device("cpu")) is moved
    assert moved.meta_step(tasks) == unmoved.meta_step(tasks)


def test_the_functional_engine_runs_without_learn2learn(monkeypatch):
    """learn2learn is optional: a functional learner's meta-loss never imports it."""
    monkeypatch.setitem(sys.modules, "learn2learn", None)  # import learn2learn fails
    monkeypatch.delitem(sys.modules, "metalearn.maml._l2l", raising=False)
    _, learner, tasks, _, _ = sine_learners("maml", 2, torch.float64, n_tasks=3)
    assert learner.engine == "functional" and math.isfinite(learner.meta_step(tasks))


def test_test_time_adaptation_holds_no_graph_of_learned_rates():
    """Meta-SGD's learned rates require grad; the step used at evaluation takes them detached, so
    adapting keeps no graph back to them (nor any memory for one)."""
    _, learner, tasks, _, _ = sine_learners("metasgd", None, torch.float64, n_tasks=1)
    params = {name: p.detach() for name, p in learner.model.named_parameters()}
    adapted = learner.inner_step()(params, tasks.support_x[0], tasks.support_y[0])
    assert all(rate.requires_grad for rate in learner.lrs)
    assert not any(p.requires_grad for p in adapted.values())


def test_the_first_meta_step_moves_each_weight_by_meta_lr():
    """Adam's first step is meta_lr·g/(|g| + ε), its moments' bias corrected: at meta_lr = 0.05 each
    meta-parameter moves by 0.05 against its gradient's sign (up to ε/|g|)."""
    whole, _, tasks, _, _ = sine_learners("maml", None, torch.float64, n_tasks=3)
    learner = make_learner("maml", whole.model, "regression", inner_lr=0.1, meta_lr=0.05)
    before = [p.detach().clone() for p in learner.meta_parameters()]
    learner.meta_step(tasks)
    for after, start in zip(learner.meta_parameters(), before, strict=True):
        step = 0.05 * after.grad / (after.grad.abs() + 1e-8)
        torch.testing.assert_close(after.detach(), start - step, rtol=1e-12, atol=1e-15)


def test_a_maml_learner_built_directly_has_finns_sine_defaults():
    """GradientMetaLearner(model, kind): MAML, α = 0.01, one inner step, Adam at 1e-3 (Finn et al.)."""
    learner = GradientMetaLearner(Sine(5, 5).make_model(torch.Generator().manual_seed(0)), "regression")
    assert (learner.algo, learner.inner_lr, learner.inner_steps) == ("maml", 0.01, 1)
    assert learner.optimizer.param_groups[0]["lr"] == 1e-3 and learner.meta_batch_chunk is None


@pytest.mark.parametrize(
    "algo, engine, swapped",
    [("maml", "functional", True), ("metasgd", "functional", True), ("fomaml", "functional", False),
     ("anil", "functional", False), ("maml", "learn2learn", False)],
)  # fmt: skip
def test_batch_norm_is_swapped_exactly_where_vmap_differentiates_it_twice(algo, engine, swapped):
    """Second order through every weight, functional engine: plain-ops batch norm; elsewhere
    torch's own, untouched."""
    from metalearn.convnet import BatchNorm
    from metalearn.fewshot import make_task_family

    model = make_task_family("glyphs").make_model(torch.Generator().manual_seed(0))
    make_learner(algo, model, "classification", engine=engine)
    norms = [m for m in model.modules() if isinstance(m, (BatchNorm, nn.BatchNorm2d))]
    assert norms and all(isinstance(m, BatchNorm if swapped else nn.BatchNorm2d) for m in norms)


@pytest.mark.parametrize("algo", list(ALGORITHMS))
def test_every_learner_built_without_options_adapts_at_0_01_for_one_step_under_adam_at_1e_3(algo):
    """The defaults every algorithm shares (Finn et al.'s sine settings), read where they act: the
    rates of its inner step, the steps of its inner loop, the meta-optimiser's rate."""
    from metalearn.fewshot import make_task_family

    kind = "classification" if algo == "protonet" else "regression"
    family = make_task_family("glyphs") if kind == "classification" else Sine(5, 5)
    learner = make_learner(algo, family.make_model(torch.Generator().manual_seed(0)), kind)
    rates = [float(r.detach().flatten()[0]) if torch.is_tensor(r) else r for r in learner.rates().values()]
    assert rates and all(rate == pytest.approx(0.01) for rate in rates)
    assert learner.inner_steps == 1 and learner.optimizer.param_groups[0]["lr"] == 1e-3


def test_learn2learn_installed_is_whether_learn2learn_imports(monkeypatch):
    import importlib.util

    from metalearn.maml import learn2learn_installed

    find_spec = importlib.util.find_spec
    for there in (True, False):
        spec = object() if there else None
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *rest: spec if name == "learn2learn" else find_spec(name, *rest),
        )
        assert learn2learn_installed() is there
