"""The MAML family as data: a `MamlVariant` decides what a learner does, its name decides nothing."""

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from metalearn.fewshot import Sine, Tasks
from metalearn.maml import (
    ALGORITHMS,
    ANIL,
    FOANIL,
    FOMAML,
    MAML,
    META_SGD,
    GradientMetaLearner,
    MamlVariant,
    ProtoNet,
    Reptile,
    can_capture,
    gradient_algorithms,
    learner_class,
    make_learner,
)

ALPHA = 0.1
ENGINES = ("functional", "learn2learn")
BUILT_IN = {"maml": MAML, "fomaml": FOMAML, "anil": ANIL, "foanil": FOANIL, "metasgd": META_SGD}
pytestmark = pytest.mark.usefixtures("one_thread")


def sine_problem(seed=0, n_tasks=4):
    """The sine MLP (ReLU body, linear head) and a meta-batch of 5-shot tasks, all in float64."""
    family = Sine(5, 5)
    g = torch.Generator().manual_seed(seed)
    return family.make_model(g).double(), Tasks(*(t.double() for t in family.sample("train", n_tasks, g)))


def meta_gradient(learner, tasks):
    """∇ of the learner's meta-loss, one tensor per meta-parameter."""
    return torch.autograd.grad(learner.meta_loss(tasks), learner.meta_parameters())


def first_order_anil_reference(model, tasks, steps):
    """First-order ANIL by hand, one task at a time with torch.autograd.

    Per task: h_{k+1} = h_k − α ∇_h L_s(f(x_s), h_k) from h_0 = the head's (W, b), for `steps`
    steps, with f the body. First order: ∂h_K/∂h_0 = I and ∂h_K/∂body = 0, so the head's
    meta-gradient is ∇_h L_q at h_K and the body's is ∇_body L_q(f(x_q), h_K) with h_K constant.
    Averaged over tasks; ordered as `model.parameters()` (body, then head).
    """
    body = list(model.features.parameters())
    head = [model.head.weight, model.head.bias]
    total = [torch.zeros_like(p) for p in body + head]
    for sx, sy, qx, qy in zip(*tasks):
        support_features = model.features(sx).flatten(1).detach()
        fast = [p.detach() for p in head]
        for _ in range(steps):
            fast = [p.requires_grad_() for p in fast]
            support_loss = F.mse_loss(F.linear(support_features, *fast), sy)
            grads = torch.autograd.grad(support_loss, fast)
            fast = [(p - ALPHA * g).detach() for p, g in zip(fast, grads)]
        fast = [p.requires_grad_() for p in fast]
        query_loss = F.mse_loss(F.linear(model.features(qx).flatten(1), *fast), qy)
        for sum_, g in zip(total, torch.autograd.grad(query_loss, body + fast)):
            sum_ += g
    return [sum_ / tasks.n_tasks for sum_ in total]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("steps", [1, 3])
def test_first_order_anil_meta_gradient_equals_hand_written(engine, steps):
    model, tasks = sine_problem()
    expected = first_order_anil_reference(model, tasks, steps)
    learner = make_learner(
        "foanil", copy.deepcopy(model), "regression", engine=engine, inner_lr=ALPHA, inner_steps=steps
    )
    got = meta_gradient(learner, tasks)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)
    assert all(e.abs().sum() > 0 for e in expected)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_variant_under_a_new_name_does_what_it_declares(engine, monkeypatch):
    """Registered as "head_first_order" and labelled "maml", it is first-order ANIL, not MAML."""
    variant = MamlVariant(first_order=True, adapt="head")
    factory = partial(GradientMetaLearner, variant=variant, algo="maml")
    monkeypatch.setitem(ALGORITHMS, "head_first_order", factory)
    model, tasks = sine_problem(seed=1)
    options = dict(engine=engine, inner_lr=ALPHA, inner_steps=2)
    got = meta_gradient(
        make_learner("head_first_order", copy.deepcopy(model), "regression", **options), tasks
    )
    maml = meta_gradient(make_learner("maml", copy.deepcopy(model), "regression", **options), tasks)
    expected = first_order_anil_reference(model, tasks, 2)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)
    difference = torch.cat([(g - m).flatten() for g, m in zip(got, maml)]).norm()
    assert difference > 1e-3 * torch.cat([m.flatten() for m in maml]).norm()
    assert "head_first_order" in gradient_algorithms() and can_capture("head_first_order", "functional")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", BUILT_IN)
def test_the_label_decides_nothing(name, engine):
    """Each built-in, built from its variant with the label "whatever", computes its meta-gradient
    bit for bit."""
    model, tasks = sine_problem(seed=2)
    options = dict(engine=engine, inner_lr=ALPHA, inner_steps=2)
    expected = meta_gradient(make_learner(name, copy.deepcopy(model), "regression", **options), tasks)
    unnamed = GradientMetaLearner(
        copy.deepcopy(model), "regression", variant=BUILT_IN[name], algo="whatever", **options
    )
    for g, e in zip(meta_gradient(unnamed, tasks), expected):
        assert torch.equal(g, e)


@pytest.mark.parametrize("learned_rates", [False, True])
@pytest.mark.parametrize("adapt", ["all", "head"])
@pytest.mark.parametrize("first_order", [False, True])
def test_every_declaration_has_the_same_meta_gradient_in_both_engines(first_order, adapt, learned_rates):
    """The fields combine freely (Meta-SGD on the head only, first-order Meta-SGD, ...), and
    learn2learn's wrappers, chosen from the fields alone, agree with the functional engine."""
    variant = MamlVariant(first_order, adapt, learned_rates)
    model, tasks = sine_problem(seed=3)
    grads = {}
    for engine in ENGINES:
        learner = GradientMetaLearner(
            copy.deepcopy(model), "regression", variant=variant, engine=engine, inner_lr=ALPHA, inner_steps=2
        )
        grads[engine] = meta_gradient(learner, tasks)
        adapted = learner.rates().keys()
        assert all(name.startswith("head.") for name in adapted) == (adapt == "head")
        assert (learner.lrs is not None and len(learner.lrs) == len(adapted)) == learned_rates
    for got, expected in zip(*grads.values()):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_the_built_in_declarations():
    assert [learner_class(name) for name in BUILT_IN] == [GradientMetaLearner] * len(BUILT_IN)
    assert {name: ALGORITHMS[name].keywords["variant"] for name in BUILT_IN} == BUILT_IN
    assert set(gradient_algorithms()) == set(BUILT_IN)
    assert FOANIL == MamlVariant(first_order=True, adapt="head")
    assert META_SGD == MamlVariant(learned_rates=True)


def test_capture_is_a_property_of_the_learner_class():
    assert GradientMetaLearner.capturable and not Reptile.capturable and not ProtoNet.capturable
    assert [name for name in ALGORITHMS if can_capture(name, "functional")] == list(gradient_algorithms())
    assert not any(can_capture(name, "learn2learn") for name in ALGORITHMS)


def test_a_factory_that_is_a_plain_function_is_not_taken_for_the_maml_family(monkeypatch):
    """Its class is unknown until it is called: it is neither capturable nor in the family."""
    monkeypatch.setitem(ALGORITHMS, "wrapped", lambda model, kind: GradientMetaLearner(model, kind))
    assert learner_class("wrapped") is None
    assert not can_capture("wrapped", "functional") and "wrapped" not in gradient_algorithms()


def test_a_learner_refuses_a_kind_it_cannot_learn():
    """ProtoNet's `kinds`, read by the learner itself: make_learner has no test on its name."""
    model, _ = sine_problem()
    assert ProtoNet.kinds == ("classification",) and learner_class("protonet") is ProtoNet
    for build in (partial(ProtoNet, model), partial(make_learner, "protonet", model)):
        with pytest.raises(
            ValueError, match="^algo='protonet' needs kind='classification', got kind='regression'$"
        ):
            build("regression")
    with pytest.raises(
        ValueError, match="^algo='reptile' needs kind='regression' or kind='classification', got"
    ):
        Reptile(model, "ranking")


def test_a_task_name_where_a_kind_belongs_is_refused_naming_the_kinds():
    """make_learner("maml", model, "sine"): a task family's name is no kind; it once trained with
    cross-entropy and logged 0.0 at every step."""
    model, _ = sine_problem()
    with pytest.raises(
        ValueError, match="^algo='maml' needs kind='regression' or kind='classification', got kind='sine'$"
    ):
        make_learner("maml", model, "sine")


def test_an_unknown_adapted_set_is_refused():
    with pytest.raises(ValueError, match="^unknown adapt 'body'; valid: all, head$"):
        MamlVariant(adapt="body")


@pytest.mark.parametrize(
    "algo, options, message",
    [
        (
            "maml",
            {"meta_lr": -1.0},
            "^meta_lr=-1.0: Adam's meta-update rate: .*; valid: a finite number > 0 and < 3.40282e[+]37$",
        ),
        ("maml", {"meta_lr": float("nan")}, "^meta_lr=nan: .*; valid: a finite number > 0 and < "),
        ("reptile", {"meta_lr": 0}, "^meta_lr=0: "),
        (
            "imaml",
            {"meta_lr": 1e38},
            "^meta_lr=1e[+]38: .* first step is 10·meta_lr; valid: .* < 3.40282e[+]37$",
        ),
        ("anil", {"inner_lr": 0.0}, "^inner_lr=0.0: the inner SGD rate: .*; valid: a finite number > 0$"),
        ("pretrain", {"inner_lr": float("inf")}, "^inner_lr=inf: "),
        (
            "fomaml",
            {"inner_steps": 0},
            "^inner_steps=0: steps of the inner loop: with none nothing adapts; valid: an integer >= 1$",
        ),
        ("protonet", {"inner_steps": 1.5}, "^inner_steps=1.5: "),
        ("imaml", {"cg_iters": -1}, "^cg_iters=-1: CG iterations .*; valid: an integer >= 1$"),
        (
            "imaml",
            {"prox_lambda": 0.0},
            "^prox_lambda=0.0: the proximal weight λ: [(]I [+] H/λ[)]⁻¹ needs λ > 0; valid: .* > 0$",
        ),
        ("maml", {"engine": "FUNCTIONAL"}, "^unknown engine 'FUNCTIONAL'; valid: functional, learn2learn$"),
        ("maml", {"capture": "auto"}, "^unknown capture 'auto'; valid: none, compile, cuda_graph$"),
    ],
)
def test_a_learner_refuses_options_outside_their_ranges_before_touching_the_model(algo, options, message):
    """Issue 26: `meta_lr=-1` came out as torch's "Invalid learning rate: -1.0"; `inner_lr=0` and
    `inner_steps=0` (a no-op inner loop) ran. Each range is the learner's own, with its reason; the
    model is left as it was (second-order MAML swaps its batch norms only once the options pass)."""
    from metalearn.convnet import conv4

    model = conv4(2, torch.Generator().manual_seed(0), hidden=4)
    modules = [type(m) for m in model.modules()]
    with pytest.raises(ValueError, match=message):
        make_learner(algo, model, "classification", **options)
    assert [type(m) for m in model.modules()] == modules and torch.nn.BatchNorm2d in modules
