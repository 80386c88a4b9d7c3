"""The table of known answers: each closed form agrees with the library's own computation, each
published number is the source's, and a reference applies exactly where its settings match."""

import pytest

import games
import playground
from metalearn.icl import optimal_gd_lr
from playground import references


def game_config(**options):
    return {
        "game": "bilinear",
        "dynamics": "sim_gd",
        "lr": 0.2,
        "game_options": {},
        "dynamics_options": {},
    } | options


@pytest.mark.parametrize(
    "dynamics, options",
    [
        ("sim_gd", {}),
        ("extragradient", {}),
        ("consensus", {}),
        ("consensus", {"gamma": 0.5}),
        ("cgd", {}),
        ("hamiltonian", {}),
    ],
)
@pytest.mark.parametrize("lr", [0.05, 0.3])
def test_each_bilinear_closed_form_is_the_rate_the_analysis_predicts(dynamics, options, lr):
    config = game_config(dynamics=dynamics, lr=lr, dynamics_options=options)
    found = references.for_run("game", config)
    assert [r.metric for r in found] == ["rate/predicted", "rate/measured"]
    predicted = games.predicted_rate(
        games.make_game("bilinear"), games.make_dynamics(dynamics, lr, **options)
    )
    for reference in found:
        assert reference.resolve(config, {}) == pytest.approx(predicted, rel=1e-12)


def test_a_bilinear_form_does_not_apply_to_another_game_size_or_dynamics():
    assert references.for_run("game", game_config(game_options={"dim": 3})) == []
    assert references.for_run("game", game_config(game="dirac_gan")) == []
    assert references.for_run("game", game_config(dynamics="optimistic")) == []
    assert references.for_run("maml", game_config()) == []


def test_the_duopoly_points_are_where_the_runs_settle(tmp_path):
    for dynamics, point in (("sim_gd", (1.0, 1.0)), ("stackelberg", (1.5, 0.75))):
        result = playground.run(
            "game",
            game="duopoly",
            dynamics=dynamics,
            steps=300,
            plots=False,
            progress=False,
            out=tmp_path / dynamics,
        )
        found = {
            r.metric: r.resolve(result.config, result.summary)
            for r in references.for_run("game", result.config)
        }
        assert found == {"params[0]": point[0], "params[1]": point[1]}
        for metric, value in found.items():
            assert references.metric_value(result.summary, metric) == pytest.approx(value, abs=1e-8)


def test_the_best_gd_step_is_the_closed_form_at_the_runs_sizes():
    config = {"model": "lsa", "layers": 1, "dim": 10, "context": 10, "x_dist": "uniform", "x_range": 1.0}
    (reference,) = references.for_run("icl", config)
    assert reference.metric == "gd/lr" and reference.resolve(config, {}) == pytest.approx(1.515, abs=1e-3)
    wider = config | {"dim": 5, "context": 20, "x_range": 2.0}
    assert (
        reference.resolve(wider, {}) == optimal_gd_lr(5, 20, "uniform", 2.0) == pytest.approx(60 / (4 * 24.8))
    )
    assert references.for_run("icl", config | {"layers": 2}) == []


@pytest.mark.parametrize(
    "settings, metric, value, spread",
    [
        ({"task": "sine", "algo": "maml", "shots": 5}, "eval/post_adapt_mse", 1.13, None),
        (
            {"task": "sine", "algo": "maml", "shots": None},
            "eval/post_adapt_mse",
            0.77,
            None,
        ),  # default K = 10
        ({"task": "sine", "algo": "maml", "shots": 20}, "eval/post_adapt_mse", 0.48, None),
        (
            {"task": "glyphs", "algo": "maml", "shots": None, "ways": None},
            "eval/post_eval_steps_acc",
            0.987,
            0.004,
        ),
        ({"task": "glyphs", "algo": "maml", "shots": 5, "ways": 5}, "eval/post_eval_steps_acc", 0.999, 0.001),
    ],
)
def test_published_maml_numbers_apply_at_the_papers_settings(settings, metric, value, spread):
    reference = references.published("maml", settings, metric)
    assert (reference.value, reference.spread) == (value, spread)


@pytest.mark.parametrize(
    "settings",
    [
        {"task": "sine", "algo": "fomaml", "shots": 10},
        {"task": "sine", "algo": "maml", "shots": 7},
        {"task": "glyphs", "algo": "maml", "shots": 1, "ways": 20},
        {"task": "glyphs", "algo": "anil", "shots": 1, "ways": 5},
    ],
)
def test_no_published_number_for_other_settings(settings):
    assert references.for_run("maml", settings) == []


def test_navigation_and_computed_references():
    (nav,) = references.for_run("metarl", {"env": "Navigation2D"})
    assert (nav.metric, nav.value, nav.spread) == ("eval/post_adapt_return", -20.3, 3.2)
    assert references.for_run("metarl", {"env": "PendulumMassLength"}) == []
    (toy,) = references.for_run("bilevel", {"problem": "darts_toy", "method": "first_order"})
    assert toy.resolve({}, {"reference/method_lambda": 2.0}) == 2.0
    assert toy.resolve({}, {}) is None  # a run that wrote no reference has none
    (ridge,) = references.for_run("bilevel", {"problem": "ridge", "method": None})
    assert ridge.resolve({}, {"reference/lambda": 2.92}) == 2.92


def test_metric_value_reads_list_items_and_missing_keys():
    summary = {"params": [1.5, 0.75], "rate": 0.9}
    assert references.metric_value(summary, "params[1]") == 0.75
    assert references.metric_value(summary, "rate") == 0.9
    for missing in ("params[2]", "rate[0]", "nope", "nope[0]"):
        assert references.metric_value(summary, missing) is None
