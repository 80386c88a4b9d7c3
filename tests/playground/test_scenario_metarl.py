"""Scenario `metarl` end to end on a tiny budget through the CLI, and its bad input."""

import dataclasses
import json

import pytest

from metalearn.rl import MAMLRLSettings
from playground.cli import main
from playground.config import build_config
from playground.runner import execute
from playground.scenarios import metarl
from playground.scenarios.metarl import MetaRLConfig

TINY = {
    "iterations": 2,
    "pretrain_iterations": 1,
    "meta_batch": 2,
    "episodes": 2,
    "hidden": "8,8",
    "eval_tasks": 3,
    "eval_steps": 2,
}


def test_cli_run_writes_summary_and_plots(tmp_path):
    run = tmp_path / "r"
    assert main(["run", "metarl", *(f"{k}={v}" for k, v in TINY.items()), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["diverged"] is False and summary["pretrain/diverged"] is False
    for name in ("maml", "pretrained", "random"):
        assert len(summary[f"eval/{name}_returns"]) == len(summary[f"eval/{name}_returns_ci95"]) == 3
        # reward -distance; after t steps of at most 0.1 per axis it is below
        # |goal| + 0.1·√2·t, |goal| <= 0.71
        assert all(-(71 + 0.1 * 2**0.5 * 5050) < r < 0 for r in summary[f"eval/{name}_returns"])
    assert summary["eval/pre_adapt_return"] == summary["eval/maml_returns"][0]
    assert summary["eval/post_adapt_return"] == summary["eval/maml_returns"][1]
    assert summary["eval/post_adapt_return_ci95"] == summary["eval/maml_returns_ci95"][1] > 0
    assert summary["eval/post_eval_steps_return"] == summary["eval/maml_returns"][2]  # as in maml
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/post_adapt_return" in r] == [0, 1]
    assert [r["step"] for r in rows if "pretrain/return" in r] == [2]
    for name in ("adaptation.png", "training.png", "trajectories.png", "policy.pt"):
        assert (run / name).stat().st_size > 0, name


def test_unknown_env_exits_2_with_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "metarl", "env=CartPole-v1"]) == 2
    err = capsys.readouterr().err
    assert err == "playground: error: unknown env 'CartPole-v1'; valid: Navigation2D, PendulumMassLength\n"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"outer": "sgd"}, "outer='sgd' unknown; valid: trpo, ppo"),
        ({"meta_batch": "0"}, "meta_batch=0 must be >= 1"),
        ({"episodes": "1"}, "episodes=1 must be >= 2"),
        ({"inner_lr": "0"}, "inner_lr=0.0 must be > 0"),
        ({"gamma": "1.5"}, "gamma=1.5, gae_lambda=1.0: need 0 < gamma <= 1"),
        ({"hidden": "100,0"}, "hidden=(100, 0) must be one or more sizes >= 1"),
        ({"eval_tasks": "1"}, "eval_tasks=1; valid: an integer >= 2"),
        ({"fisher_subsample": "1.5"}, "fisher_subsample=1.5; valid: a number >= 0 and <= 1"),
        ({"pretrain_iterations": "-1"}, "pretrain_iterations=-1; valid: an integer >= 0"),
        ({"max_kl": "0"}, "max_kl=0.0 must be > 0"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        build_config(MetaRLConfig, overrides)
    assert "\n" not in str(error.value)


def test_every_maml_rl_setting_is_an_option_defaulted_from_the_settings():
    defaults = MetaRLConfig()
    for field in dataclasses.fields(MAMLRLSettings):
        assert getattr(defaults, field.name) == field.default, field.name
    config = build_config(
        MetaRLConfig,
        {
            "outer": "ppo",
            "cg_iters": "3",
            "fisher_subsample": "0.5",
            "ppo_lr": "1e-3",
            "first_order": "true",
            "inner_steps": "2",
        },
    )
    assert config.settings(0) == MAMLRLSettings(
        inner_steps=0, outer="ppo", cg_iters=3, fisher_subsample=0.5, ppo_lr=1e-3, first_order=True
    )
    assert config.settings(config.inner_steps).inner_steps == 2


def test_divergence_is_a_result(tmp_path):
    """An absurd PPO step turns the first iteration non-finite: reported, nothing evaluated."""
    overrides = {**{k: str(v) for k, v in TINY.items()}, "outer": "ppo", "ppo_lr": "1e30"}
    config = build_config(MetaRLConfig, overrides)
    summary = execute(metarl.SCENARIO, config, tmp_path / "r", progress=False)
    assert summary["diverged"] is True and summary["diverged_step"] == 0 and summary["last_finite"] == {}
    assert not (tmp_path / "r" / "adaptation.png").exists()
