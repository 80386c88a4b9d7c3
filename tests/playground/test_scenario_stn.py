"""The `stn` scenario through the CLI entry on a tiny budget: the schedule it logs and saves against
the summary, the budget of random search, and bad input."""

import json

import pytest
import torch

from bilevel.stn import mlp
from playground.cli import main

TINY = dict(hidden=8, steps=40, warmup=10, inner_steps=2, trials=2, log_every=10, batch=32)


def tiny(*overrides):
    """The tiny run's options with `overrides` ("key=value") in their place."""
    options = {**TINY, **dict(o.split("=", 1) for o in overrides)}
    return [f"{k}={v}" for k, v in options.items()]


def run_stn(tmp_path, *overrides):
    assert main(["run", "stn", *tiny(*overrides), "--out", str(tmp_path / "r")]) == 0
    return json.loads((tmp_path / "r" / "summary.json").read_text())


def test_schedule_summary_and_files_agree(tmp_path):
    summary = run_stn(tmp_path, "fixed_baseline=true")
    schedule = json.loads((tmp_path / "r" / "schedule.json").read_text())
    assert [row["step"] for row in schedule] == [0, *range(12, 41, 2)]  # a λ step every 2 after 10
    assert schedule[0]["dropout_1"] == pytest.approx(0.05, rel=1e-6)
    assert schedule[0]["weight_decay"] == pytest.approx(1e-4, rel=1e-5)
    names = mlp.hyperparameter_names(3)
    assert all(summary[f"hyper/{name}"] == schedule[-1][name] for name in names)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40] and "loss/val" not in rows[0]
    assert rows[-1]["eval/val_accuracy"] == summary["eval/val_accuracy"]
    assert rows[-1]["hyper/dropout_0"] == summary["hyper/dropout_0"]
    assert summary["baseline/random_search_steps_per_trial"] == 20
    trials = json.loads((tmp_path / "r" / "random_search.json").read_text())
    assert len(trials) == 2
    best = max(trials, key=lambda t: t["val_accuracy"])
    assert summary["baseline/random_search_val_accuracy"] == best["val_accuracy"]
    assert all(summary[f"baseline/random_search_{name}"] == best[name] for name in names)
    for key in ("eval/accuracy", "baseline/random_search_accuracy", "baseline/fixed_final_accuracy"):
        assert 0.0 <= summary[key] <= 1.0 and 400 * summary[key] == pytest.approx(
            round(400 * summary[key]), abs=1e-3
        )
    assert (tmp_path / "r" / "schedule.png").stat().st_size > 0


def test_without_hyperparameter_steps_the_hyperparameters_stay_put(tmp_path):
    summary = run_stn(
        tmp_path, "warmup=39", "inner_steps=3", "plots=false", "dropout=0.2", "weight_decay=0.01"
    )
    start = mlp.constrained(mlp.unconstrained([0.2] * 3, 0.01))
    assert [summary[f"hyper/dropout_{k}"] for k in range(3)] == start[:3].tolist()
    assert summary["hyper/weight_decay"] == start[3].item() and summary["hyper/sigma_dropout_0"] == 0.5


def test_random_search_trains_the_trials_it_reports():
    """A trial's network, retrained from its seed at its hyperparameters, scores what it reported."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 6, generator=generator), torch.randint(0, 3, (64,), generator=generator)
    trials = mlp.random_search((x, y), (x, y), [6, 5, 3], trials=2, steps=5, batch=16, seed=4)
    net, finite = mlp.train_fixed((x, y), [6, 5, 3], trials[1].lam, 5, batch=16, seed=4 + 2)
    assert finite and mlp.accuracy(net, (x, y), trials[1].lam, hnet=False) == trials[1].val_accuracy
    assert mlp.best_trial(trials).val_accuracy == max(t.val_accuracy for t in trials)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["trials=50"], "trials=50 exceeds steps=40"),
        (["warmup=40"], "warmup=40; valid: warmup < steps=40"),
        (["dropout=1.0"], "dropout"),
        (  # inf in float32: Adam turned σ NaN, and dropout rates drawn from NaN stopped the run
            ["tau=1e300"],
            "tau=1e+300: Adam squares the bonus's gradient −τ on log σ in float32, which overflows past "
            "1.8e19 (σ would freeze or turn NaN); valid: 0 <= tau <= 1e+19",
        ),
        (["lr=3e38"], "lr=3e+38; valid: a number > 0 and <= 3.4e+37"),  # Adam's step 3e39: no float32
        (["hyper_lr=3e38"], "hyper_lr=3e+38; valid: a number > 0 and <= 3.4e+37"),
    ],
)
def test_bad_input_exits_2_with_one_line(overrides, message, tmp_path, capsys):
    assert main(["run", "stn", *tiny(*overrides), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
