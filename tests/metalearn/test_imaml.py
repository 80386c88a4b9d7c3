"""iMAML against its closed form on linear regression, and end to end on sine through the CLI."""

import json

import pytest
import torch
from torch import nn

from metalearn.fewshot import HeadedNetwork, Sine, Tasks, seeded_module
from metalearn.maml import IMAML, make_learner, proximal_step

pytestmark = pytest.mark.usefixtures("one_thread")
LAMBDA, RATE, DIM = 2.0, 0.1, 3


def linear_regression_tasks(generator, n_tasks=3, shots=6):
    x = torch.randn(n_tasks, 2 * shots, DIM, generator=generator, dtype=torch.float64)
    y = torch.randn(n_tasks, 2 * shots, 1, generator=generator, dtype=torch.float64)
    return Tasks(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def linear_model():
    """y = wᵀx, no bias."""
    model = HeadedNetwork(nn.Identity(), nn.Linear(DIM, 1, bias=False)).double()
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64))
    return model


def closed_form_meta_gradient(theta, tasks):
    """L(w) = (1/n)‖Xw − y‖², H = (2/n)XᵀX. Proximal solution φ* = (H + λI)⁻¹(λθ + (2/n)Xᵀy);
    meta-gradient g = (I + H/λ)⁻¹ ∇L_q(φ*) = λ(H + λI)⁻¹ (2/m)X_qᵀ(X_q φ* − y_q), averaged over tasks."""
    eye = torch.eye(DIM, dtype=torch.float64)
    total = torch.zeros_like(theta)
    for sx, sy, qx, qy in zip(*tasks):
        hessian = 2 / len(sx) * sx.T @ sx
        phi = torch.linalg.solve(hessian + LAMBDA * eye, LAMBDA * theta + 2 / len(sx) * sx.T @ sy)
        query_grad = 2 / len(qx) * qx.T @ (qx @ phi - qy)
        total += torch.linalg.solve(eye + hessian / LAMBDA, query_grad)
    return total / tasks.n_tasks


def imaml_meta_gradient(tasks, inner_steps, cg_iters):
    learner = make_learner(
        "imaml",
        linear_model(),
        "regression",
        inner_lr=RATE,
        inner_steps=inner_steps,
        prox_lambda=LAMBDA,
        cg_iters=cg_iters,
    )
    grads, _ = learner.meta_gradient(tasks)
    return grads["head.weight"].T


def relative_error(got, expected):
    return ((got - expected).norm() / expected.norm()).item()


def test_meta_gradient_equals_the_closed_form_on_linear_regression():
    """200 proximal steps converge the inner loop (contraction |1 − α(h + λ)| ≤ 0.78 here) and
    dim = 3 CG iterations solve the 3×3 system exactly, so only rounding is left."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(0))
    expected = closed_form_meta_gradient(linear_model().head.weight.detach().T, tasks)
    assert relative_error(imaml_meta_gradient(tasks, inner_steps=200, cg_iters=DIM), expected) <= 1e-10


def test_too_few_cg_iterations_or_inner_steps_miss_the_closed_form():
    tasks = linear_regression_tasks(torch.Generator().manual_seed(0))
    expected = closed_form_meta_gradient(linear_model().head.weight.detach().T, tasks)
    assert relative_error(imaml_meta_gradient(tasks, inner_steps=200, cg_iters=1), expected) > 1e-3
    assert relative_error(imaml_meta_gradient(tasks, inner_steps=3, cg_iters=DIM), expected) > 1e-3


def implicit_system_error(model, kind, tasks, lam, lr, steps):
    """Relative error of iMAML's meta-gradient (one task, CG with as many iterations as parameters)
    against a dense solve of (I + H/λ) g = ∇L_q(φ), φ the same proximal steps and H the Hessian of
    the support loss at φ from torch.autograd.functional.hessian."""
    names, shapes = zip(*((n, p.shape) for n, p in model.named_parameters()))
    size = sum(s.numel() for s in shapes)
    learner = IMAML(model, kind, inner_lr=lr, inner_steps=steps, prox_lambda=lam, cg_iters=size)
    loss_fn = learner.loss_fn
    grads, _ = learner.meta_gradient(tasks)
    got = torch.cat([grads[n].flatten() for n in names])

    def loss(flat, x, y):
        params = {n: c.view(s) for n, c, s in zip(names, flat.split([s.numel() for s in shapes]), shapes)}
        return loss_fn(torch.func.functional_call(model, params, (x,)), y)

    sx, sy, qx, qy = (t[0] for t in tasks)
    theta = phi = {n: p.detach() for n, p in model.named_parameters()}
    for _ in range(steps):
        phi = proximal_step(model, theta, phi, sx, sy, loss_fn, lam, lr)
    phi = torch.cat([phi[n].flatten() for n in names])
    hessian = torch.autograd.functional.hessian(lambda w: loss(w, sx, sy), phi)
    query_grad = torch.autograd.functional.jacobian(lambda w: loss(w, qx, qy), phi)
    expected = torch.linalg.solve(torch.eye(size, dtype=torch.float64) + hessian / lam, query_grad)
    return relative_error(got, expected)


def test_meta_gradient_solves_the_implicit_system_on_a_nonlinear_net():
    """A tanh net's MSE; I + H/λ is positive definite at this seed (at others H has eigenvalues
    below −λ and CG loses digits)."""
    g = torch.Generator().manual_seed(0)
    model = seeded_module(
        lambda: HeadedNetwork(nn.Sequential(nn.Linear(1, 4), nn.Tanh()), nn.Linear(4, 1)), g
    )
    tasks = Tasks(*(t.double() for t in Sine(5, 5).sample("train", 1, g)))
    assert implicit_system_error(model.double(), "regression", tasks, LAMBDA, 0.02, 20) <= 1e-11


def test_meta_gradient_solves_the_implicit_system_on_a_conv_net_with_batch_norm():
    """A small conv-4 (BatchNorm normalising each task's batch), cross-entropy. The dense Hessian
    must come from autograd: torch.func.hessian's vmap gets batch norm's double backward wrong here
    (by O(1)), which iMAML's unbatched Hessian-vector products avoid."""
    from metalearn.convnet import conv4
    from metalearn.fewshot import ImageTasks

    g = torch.Generator().manual_seed(16)
    images = {split: torch.rand(4, 3, 1, 28, 28, generator=g) for split in ("train", "validation", "test")}
    tasks = ImageTasks(images, ways=3, shots=1, queries=2, rotations=False).sample("train", 1, g)
    tasks = Tasks(tasks[0].double(), tasks[1], tasks[2].double(), tasks[3])
    model = conv4(3, g, hidden=2).double()
    # λ = 50 keeps I + H/λ positive definite here
    assert implicit_system_error(model, "classification", tasks, 50.0, 0.4, 3) <= 1e-9


def proximal_objective(w, theta, x, y):
    """f(w) = (1/n)‖Xw − y‖² + (λ/2)‖w − θ‖² and its gradient."""
    return ((x @ w - y) ** 2).mean() + LAMBDA / 2 * ((w - theta) ** 2).sum(), mse_gradient(
        w, x, y
    ) + LAMBDA * (w - theta)


def mse_gradient(w, x, y):
    return 2 / len(x) * x.T @ (x @ w - y)


def one_step(tasks, lr, backtracks=5):
    model = linear_model()
    params = {"head.weight": model.head.weight.detach()}
    sx, sy = tasks.support_x[0], tasks.support_y[0]
    step = proximal_step(model, params, params, sx, sy, nn.functional.mse_loss, LAMBDA, lr, backtracks)
    return step["head.weight"].T


def two_small_steps():
    """A task, iMAML's learner on it, and by hand θ and its first two proximal steps w1, w2: with
    α(h + λ) < 1 Armijo passes the full rate, φ ← φ − α(∇L(φ) + λ(φ − θ))."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(2), n_tasks=1)
    model = linear_model()
    sx, sy = tasks.support_x[0], tasks.support_y[0]
    theta = model.head.weight.detach().T
    w1 = theta - RATE * mse_gradient(theta, sx, sy)
    w2 = w1 - RATE * proximal_objective(w1, theta, sx, sy)[1]
    return tasks, IMAML(model, "regression", inner_lr=RATE, prox_lambda=LAMBDA), (theta, w1, w2)


def test_small_rates_take_plain_proximal_gradient_steps_and_the_curve_follows_them():
    """The first step is plain SGD's, the second is pulled back towards θ; the evaluation curve
    scores them."""
    tasks, learner, (theta, w1, w2) = two_small_steps()
    loss, _ = learner.adaptation_curve(tasks, 2)
    for step, w in enumerate([theta, w1, w2]):
        mse = ((tasks.query_x[0] @ w - tasks.query_y[0]) ** 2).mean()
        torch.testing.assert_close(loss[step, 0], mse, rtol=1e-12, atol=0)


def test_the_sine_fit_figure_adapts_with_the_same_proximal_steps():
    """`adapted_predictions` (the fits a figure draws) takes the learner's own test-time steps."""
    from metalearn.maml import adapted_predictions

    tasks, learner, (theta, _, w2) = two_small_steps()
    got = adapted_predictions(learner, tasks, [0, 2])  # (steps, T, Q, 1)
    torch.testing.assert_close(got[0, 0], tasks.query_x[0] @ theta, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1, 0], tasks.query_x[0] @ w2, rtol=1e-12, atol=1e-12)


def test_a_large_rate_backtracks_to_the_longest_that_passes_armijo():
    """Hand-written backtracking: the first of 1, 1/2, 1/4, ... with f(w − tg) ≤ f(w) − (t/2)‖g‖²."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(2), n_tasks=1)
    sx, sy = tasks.support_x[0], tasks.support_y[0]
    theta = linear_model().head.weight.detach().T
    value, gradient = proximal_objective(theta, theta, sx, sy)
    rate = next(
        t
        for t in (1.0, 0.5, 0.25, 0.125, 0.0625)
        if proximal_objective(theta - t * gradient, theta, sx, sy)[0] <= value - t / 2 * gradient.norm() ** 2
    )
    assert rate < 1.0  # the test exercises backtracking
    torch.testing.assert_close(one_step(tasks, 1.0), theta - rate * gradient, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(one_step(tasks, 1e3, backtracks=2), theta, rtol=0, atol=0)  # none passes: stay


def test_meta_step_feeds_the_implicit_gradient_to_adam():
    """Adam's first step moves each weight by meta_lr·g/(|g| + ε)."""
    tasks = linear_regression_tasks(torch.Generator().manual_seed(3))
    model = linear_model()
    learner = IMAML(
        model, "regression", inner_lr=RATE, inner_steps=50, prox_lambda=LAMBDA, cg_iters=DIM, meta_lr=1e-3
    )
    before = model.head.weight.detach().clone()
    grads, _ = learner.meta_gradient(tasks)
    learner.meta_step(tasks)
    g = grads["head.weight"]
    torch.testing.assert_close(
        model.head.weight.detach() - before, -1e-3 * g / (g.abs() + 1e-8), rtol=1e-6, atol=0
    )


def krylov_solution(matrix, b, k):
    """k CG iterations from 0 minimise ‖x − A⁻¹b‖_A over span(b, Ab, ..., A^(k−1)b): that is
    x_k = Q (QᵀAQ)⁻¹ Qᵀb, Q an orthonormal basis of the Krylov space."""
    basis = torch.cat([torch.linalg.matrix_power(matrix, j) @ b for j in range(k)], 1)
    q = torch.linalg.qr(basis).Q
    return q @ torch.linalg.solve(q.T @ matrix @ q, q.T @ b)


def test_the_defaults_take_one_sgd_step_of_rate_0_01_and_five_cg_iterations_at_lambda_1():
    """IMAML(model, kind) alone: φ = θ − 0.01 ∇L_s(θ) (the first proximal step is SGD's, and
    0.01(h + λ) < 1 passes Armijo), g = 5 CG iterations on (I + H)g = ∇L_q(φ), 8 weights so that 5
    leave the 8×8 system unsolved; Adam's first step moves each weight by 1e-3·g/(|g| + 1e-8)."""
    dim, generator = 8, torch.Generator().manual_seed(4)
    x = torch.randn(2, 24, dim, generator=generator, dtype=torch.float64)
    y = torch.randn(2, 24, 1, generator=generator, dtype=torch.float64)
    tasks = Tasks(x[:, :12], y[:, :12], x[:, 12:], y[:, 12:])
    model = HeadedNetwork(nn.Identity(), nn.Linear(dim, 1, bias=False)).double()
    theta = torch.randn(dim, 1, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        model.head.weight.copy_(theta.T)
    expected, six_iterations = torch.zeros_like(theta), torch.zeros_like(theta)
    for sx, sy, qx, qy in zip(*tasks):
        phi = theta - 0.01 * mse_gradient(theta, sx, sy)
        system = torch.eye(dim, dtype=torch.float64) + 2 / len(sx) * sx.T @ sx
        expected += krylov_solution(system, mse_gradient(phi, qx, qy), 5) / tasks.n_tasks
        six_iterations += krylov_solution(system, mse_gradient(phi, qx, qy), 6) / tasks.n_tasks
    assert relative_error(six_iterations, expected) > 1e-3
    learner = IMAML(model, "regression")
    grads, _ = learner.meta_gradient(tasks)
    torch.testing.assert_close(grads["head.weight"].T, expected, rtol=1e-10, atol=1e-13)
    learner.meta_step(tasks)
    moved = -1e-3 * expected / (expected.abs() + 1e-8)
    torch.testing.assert_close(model.head.weight.detach().T - theta, moved, rtol=1e-9, atol=0)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"prox_lambda": 0.0}, "prox_lambda=0.0"),
        ({"cg_iters": 0}, "cg_iters=0"),
    ],
)
def test_bad_hyperparameters_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        make_learner("imaml", linear_model(), "regression", **options)


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """The scenario's checkpoints carry iMAML's weights and Adam state: 4 + 2 iterations = 6."""
    from playground.config import build_config
    from playground.runner import execute
    from playground.scenarios import maml

    monkeypatch.setattr(maml, "save_plots", lambda *args: None)
    options = {
        "algo": "imaml",
        "meta_batch": "4",
        "inner_steps": "3",
        "eval_every": "3",
        "eval_tasks": "5",
        "eval_steps": "2",
        "log_every": "3",
        "checkpoint_every": "4",
    }

    def run(name, **overrides):
        config = build_config(maml.MamlConfig, {**options, **{k: str(v) for k, v in overrides.items()}})
        return execute(maml.SCENARIO, config, tmp_path / name, progress=False)

    full = run("full", iterations=6)
    run("part", iterations=4)
    resumed = run("resumed", iterations=6, resume=tmp_path / "part")
    assert {k: v for k, v in full.items() if k != "wall_s"} == {
        k: v for k, v in resumed.items() if k != "wall_s"
    }
    assert full["eval/mse_by_step"][0] > 0


@pytest.mark.slow  # about 15 s
def test_cli_sine_run_learns(tmp_path):
    """100 meta-updates through the CLI (measured: MSE 3.32 before adaptation, 0.80 after 10 steps)."""
    from playground.cli import main

    main(
        [
            "run",
            "maml",
            "algo=imaml",
            "task=sine",
            "iterations=100",
            "meta_batch=10",
            "meta_lr=0.01",
            "eval_every=0",
            "eval_tasks=100",
            "checkpoint_every=0",
            "threads=1",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    mse = json.loads((tmp_path / "run" / "summary.json").read_text())["eval/mse_by_step"]
    assert len(mse) == 11 and mse[-1] < 0.5 * mse[0]
