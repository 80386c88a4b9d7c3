"""The MAML-family meta-training loop: the same steps as a hand-written loop, reports, divergence, resume."""

import copy

import pytest
import torch

from metalearn.fewshot import Sine
from metalearn.maml import make_learner, meta_train

pytestmark = pytest.mark.usefixtures("one_thread")


def learners(seed=0):
    family = Sine(5, 5)
    g = torch.Generator().manual_seed(seed)
    return family, {
        "meta_train": make_learner("maml", family.make_model(g), "regression"),
        "pretrain": make_learner("pretrain", family.make_model(g), "regression"),
    }


def test_equals_a_hand_written_loop_and_logs_window_means():
    family, trained = learners()
    _, by_hand = learners()
    rows, calls = [], []

    def progress(iterable, total=None, desc=None):
        calls.append((total, desc))
        return iterable

    result = meta_train(
        trained,
        family,
        iterations=5,
        meta_batch=3,
        generator=torch.Generator().manual_seed(1),
        log_every=2,
        evaluate=lambda: {"eval/x": 1.5},
        eval_every=2,
        log=lambda step, metrics: rows.append((step, dict(metrics))),
        progress=progress,
    )
    g, losses = torch.Generator().manual_seed(1), []
    for _ in range(5):
        tasks = family.sample("train", 3, g)
        losses.append({name: learner.meta_step(tasks) for name, learner in by_hand.items()})
    for name in trained:
        for got, expected in zip(trained[name].model.parameters(), by_hand[name].model.parameters()):
            assert torch.equal(got, expected)
    mean = {
        name: [(losses[0][name] + losses[1][name]) / 2, (losses[2][name] + losses[3][name]) / 2]
        for name in trained
    }
    assert rows == [
        (2, {"loss/meta_train": mean["meta_train"][0], "loss/pretrain": mean["pretrain"][0]}),
        (2, {"eval/x": 1.5}),
        (4, {"loss/meta_train": mean["meta_train"][1], "loss/pretrain": mean["pretrain"][1]}),
        (4, {"eval/x": 1.5}),
    ]
    assert result.history.rows == [{"step": step, **metrics} for step, metrics in rows]
    assert result.history["eval/x"].steps.tolist() == [2, 4]
    assert calls == [(5, "maml+pretrain")]
    assert result.diverged_step is None
    assert result.last_finite == {
        "loss/meta_train": mean["meta_train"][1],
        "loss/pretrain": mean["pretrain"][1],
        "eval/x": 1.5,
    }


def test_continuing_from_a_checkpoint_gives_the_uninterrupted_numbers():
    family, whole = learners()
    _, part = learners()
    rows = {"whole": [], "part": []}
    saved = {}
    meta_train(
        whole,
        family,
        iterations=5,
        meta_batch=2,
        generator=torch.Generator().manual_seed(2),
        log_every=3,
        log=lambda step, m: rows["whole"].append((step, dict(m))),
    )
    g = torch.Generator().manual_seed(2)

    def checkpoint(iteration, window):
        saved.update(
            iteration=iteration,
            window=copy.deepcopy(window),
            generator=g.get_state(),
            state={name: copy.deepcopy(learner.state_dict()) for name, learner in part.items()},
        )

    meta_train(
        part,
        family,
        iterations=4,
        meta_batch=2,
        generator=g,
        log_every=3,
        checkpoint=checkpoint,
        checkpoint_every=4,
        log=lambda step, m: rows["part"].append((step, dict(m))),
    )
    assert saved["iteration"] == 4 and len(saved["window"]) == 1  # the window straddles the checkpoint
    _, resumed = learners(seed=9)  # other weights, replaced by the checkpoint's
    for name, learner in resumed.items():
        learner.load_state_dict(saved["state"][name])
    later = []
    meta_train(
        resumed,
        family,
        iterations=5,
        meta_batch=2,
        generator=torch.Generator().set_state(saved["generator"]),
        log_every=3,
        start=4,
        window=saved["window"],
        log=lambda step, m: later.append((step, dict(m))),
    )
    assert rows["part"] + later == rows["whole"]
    for got, expected in zip(
        resumed["meta_train"].model.parameters(), whole["meta_train"].model.parameters()
    ):
        assert torch.equal(got, expected)


def test_a_non_finite_meta_loss_ends_the_run_with_its_iteration():
    family = Sine(5, 5)
    learner = make_learner(
        "maml", family.make_model(torch.Generator().manual_seed(0)), "regression", inner_lr=1e30
    )
    result = meta_train(
        {"meta_train": learner},
        family,
        iterations=10,
        meta_batch=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.diverged_step == 1 and result.last_finite == {}


def test_names_are_checked_against_the_registries():
    from metalearn.fewshot import TASK_FAMILIES, make_task_family
    from metalearn.maml import ALGORITHMS

    with pytest.raises(
        ValueError, match=f"unknown algo 'mamal'; valid: {', '.join(ALGORITHMS)}, or module:factory$"
    ):
        make_learner("mamal", Sine().make_model(torch.Generator()), "regression")
    with pytest.raises(
        ValueError, match="unknown task 'sinus'; valid: sine, glyphs, omniglot, or module:factory$"
    ):
        make_task_family("sinus")
    assert make_task_family("sine", shots=3, queries=4) == Sine(3, 4) and list(TASK_FAMILIES)[0] == "sine"
    imaml = make_learner(
        "imaml", Sine().make_model(torch.Generator()), "regression", prox_lambda=3.0, cg_iters=2
    )
    assert (imaml.algo, imaml.prox_lambda, imaml.cg_iters) == ("imaml", 3.0, 2)


def test_sine_on_a_grid_spans_the_input_range_and_adapted_predictions_follow_sgd():
    from metalearn.fewshot.sine import INPUT
    from metalearn.maml import adapted_predictions

    tasks = Sine(4).sample_on_grid(2, torch.Generator().manual_seed(5), points=11)
    assert tasks.support_x.shape == (2, 4, 1) and tasks.query_x.shape == (2, 11, 1)
    assert tasks.query_x[0, :, 0].tolist() == pytest.approx([INPUT[0] + i for i in range(11)])
    learner = make_learner(
        "maml", Sine().make_model(torch.Generator().manual_seed(6)), "regression", inner_lr=0.1
    )
    got = adapted_predictions(learner, tasks, [0, 1])  # (steps, T, points, 1)
    model = learner.model
    for i in range(2):
        with torch.no_grad():
            assert torch.equal(got[0, i], model(tasks.query_x[i]))
        net = copy.deepcopy(model)
        loss = torch.nn.functional.mse_loss(net(tasks.support_x[i]), tasks.support_y[i])
        grads = torch.autograd.grad(loss, list(net.parameters()))
        with torch.no_grad():
            for p, grad in zip(net.parameters(), grads):
                p -= 0.1 * grad
            torch.testing.assert_close(got[1, i], net(tasks.query_x[i]), rtol=1e-5, atol=1e-6)
