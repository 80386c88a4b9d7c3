"""Scenario `icl` end to end: a tiny run through the CLI, bad input, the GD construction, divergence."""

import json
import re

import pytest
import torch

import metalearn.icl
from playground.cli import main
from playground.config import build_config
from playground.runner import execute
from playground.scenarios import icl
from playground.scenarios.icl import IclConfig

TINY = {
    "dim": "3",
    "context": "5",
    "steps": "20",
    "batch": "64",
    "eval_tasks": "256",
    "eval_every": "10",
    "ood_scales": "0.5,2",
}


def run_in_process(directory, **overrides):
    config = build_config(IclConfig, {**TINY, "plots": "false", **{k: str(v) for k, v in overrides.items()}})
    return execute(icl.SCENARIO, config, directory, progress=False)


def test_cli_run_writes_summary_metrics_and_plots(tmp_path):
    run = tmp_path / "r"
    assert main(["run", "icl", *(f"{k}={v}" for k, v in TINY.items()), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    for key in (
        "eval/loss",
        "gd/loss",
        "gd/lr",
        "ridge/loss",
        "ols/loss",
        "probe/preds_diff",
        "probe/model_cos",
        "probe/model_diff",
        "spd/gd",
        "ilwd/gdpp",
        "spd/ols",
        "ilwd/ridge",
    ):
        assert isinstance(summary[key], float), key
    assert summary["gd/loss"] == summary["gd/steps_loss"][0] and summary["gdpp/gamma"] == [0.0]
    assert summary["ols/loss"] < 1e-6 < summary["ridge/loss"] < summary["gd/loss"] < summary["zero/loss"]
    assert len(summary["probe/r2_xty"]) == len(summary["probe/r2_w"]) == 2  # input + 1 layer
    assert summary["context/n"] == [1, 2, 3, 4, 5] and len(summary["context/model"]) == 5
    assert len(summary["ood/x/model"]) == len(summary["ood/w/model_cos"]) == 2
    assert summary["diverged"] is False
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20] and "probe/model_cos" in rows[-1]
    for name in ("training", "context", "probes", "weights"):
        assert (run / f"{name}.png").stat().st_size > 0, name


def test_cli_unknown_model_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "icl", "model=lstm"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "unknown model 'lstm'; valid: lsa, lsa_gd, gpt" in err


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"context": "0"}, "context=0; valid: an integer >= 1"),
        ({"dim": "0"}, "dim=0; valid: an integer >= 1"),
        ({"layers": "0"}, "layers=0; valid: an integer >= 1"),
        ({"model": "lsa_gd", "heads": "2"}, "heads=2 with model=lsa_gd; valid: heads=1"),
        ({"model": "gpt", "width": "10", "heads": "4"}, "width=10 with heads=4"),
        ({"x_dist": "cauchy"}, "unknown x_dist 'cauchy'; valid: uniform, gaussian"),
        ({"ood_scales": "0,1"}, "ood_scales=(0.0, 1.0)"),
        ({"heads": "0"}, "heads=0; valid: an integer >= 1"),
        ({"init_scale": "-1"}, "init_scale=-1.0; valid: a number >= 0"),
        ({"steps": "-1"}, "steps=-1; valid: an integer >= 0"),
        ({"lr": "0"}, "lr=0.0; valid: a number > 0"),
        ({"lr": "3.5e37"}, "lr=3.5e+37; valid: a number > 0 and <= 3.4e+37"),  # Adam's step 3.5e38 overflowed
        (  # lost in float32: torch.linalg.solve raised on the singular XᵀX of a one-example context
            {"ridge": "5e-324"},
            "ridge=5e-324: below float32's resolution of XᵀX, 2⁻²³·N·d·E x² = 3.97e-06, λ is lost in "
            "rounding and XᵀX + λI singular for prompts shorter than dim; valid: >= 3.97e-06",
        ),
        (  # x = 0 in float32: fitting GD's step size divided by E x² = 0
            {"x_range": "1e-300", "num_tasks": "8"},
            "x_range=1e-300: float32 prompts hold x², and sums and inverses of it, only for inputs of "
            "scale 1e-15 to 1e+15; valid: 1e-15 <= x_range <= 1e+15",
        ),
        ({"x_range": "1.75e308"}, "x_range=1.75e+308: float32 prompts hold x²"),  # log10 of inf: a math error
        (  # inf inputs: the least-squares baseline's SVD failed
            {"ood_scales": "0.5,1.7e308"},
            "ood_scales=0.5,1.7e+308: α=1.7e+308 scales the inputs to 1.7e+308, beyond what float32 prompts "
            "hold (1e-15 to 1e+15); valid: 1e-15 <= α <= 1e+15",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        build_config(IclConfig, overrides)
    assert "\n" not in str(error.value)


def test_lsa_gd_is_its_own_gd_reference(tmp_path):
    """The constructed model runs K-step GD with the line-searched η: the probes must say so."""
    summary = run_in_process(tmp_path, model="lsa_gd", layers=2)
    assert len(summary["gdpp/gamma"]) == 2 and summary["gdpp/loss"][1] < summary["gd/steps_loss"][1]
    assert summary["eval/loss"] == pytest.approx(summary["gd/steps_loss"][-1], rel=1e-5)
    assert summary["probe/model_cos"] == pytest.approx(1.0, abs=1e-5)
    assert summary["probe/preds_diff"] < 1e-5 and summary["spd/gd"] < 1e-10
    assert summary["ilwd/gd"] < 1e-8 < summary["ilwd/ols"]


def test_divergence_is_a_result(tmp_path):
    summary = run_in_process(tmp_path, init_scale=1e4, layers=3)
    assert summary["diverged"] is True and summary["diverged_step"] == 1
    assert json.loads((tmp_path / "summary.json").read_text())["diverged_step"] == 1


@pytest.mark.parametrize("model", list(metalearn.icl.MODELS))
def test_each_model_takes_its_options_from_the_config(model):
    """Built from the registry with the config's options by name: the same weights as by hand."""
    own = {"lsa": {"heads": "2", "init_scale": "0.3"}, "lsa_gd": {}, "gpt": {"heads": "2", "width": "8"}}[
        model
    ]
    config = build_config(
        IclConfig, {"model": model, "dim": "3", "context": "5", "layers": "2", "eval_tasks": "256", **own}
    )
    built = icl._build_model(config, torch.Generator().manual_seed(0), gd_lr=0.7)
    seed = torch.Generator().manual_seed(0)
    by_hand = {
        "lsa": lambda: metalearn.icl.LinearSelfAttention(3, 2, 2, 0.3, seed),
        "lsa_gd": lambda: metalearn.icl.lsa_gd(3, 2, 0.7, 5),
        "gpt": lambda: metalearn.icl.GPT(3, 5, 2, 2, 8, seed),
    }[model]()
    assert type(built) is type(by_hand)
    assert all(torch.equal(p, q) for p, q in zip(built.parameters(), by_hand.parameters(), strict=True))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"model": "lsa_gd", "init_scale": "0.2"},
            "model 'lsa_gd' takes no option 'init_scale'; valid: layers",
        ),
        ({"width": "16"}, "model 'lsa' takes no option 'width'; valid: layers, heads, init_scale"),
        ({"model.width": "16"}, "model 'lsa' takes no option 'width'; valid: model.dim, model.layers"),
        ({"model": "gpt", "width": "16", "model.width": "8"}, "width= and model.width= both given"),
        (  # bounded as the flat option: width % heads divided by zero
            {"model": "gpt", "model.heads": "0", "model.width": "4"},
            "^heads=0; valid: an integer >= 1$",
        ),
    ],
)
def test_a_model_option_the_model_does_not_take_is_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        build_config(IclConfig, overrides)


def test_model_keywords_set_the_options_of_the_same_name():
    """`model.<kw>` is the rule for every factory; where the config has the option (the data and
    the probes read it too) it sets that option, so the run is the one `<kw>=` gives."""
    namespaced = build_config(IclConfig, {"model": "gpt", "model.width": "8", "model.heads": "2"})
    flat = build_config(IclConfig, {"model": "gpt", "width": "8", "heads": "2"})
    assert namespaced == flat and namespaced.width == 8 and namespaced.model_options == {}
