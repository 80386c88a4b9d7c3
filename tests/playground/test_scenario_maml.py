"""Scenario `maml` end to end: a tiny run through the CLI, bad input, resume, divergence, images."""

import importlib
import json
import sys

import pytest
import torch

from metalearn.maml import LEARN2LEARN_MISSING
from playground.cli import main
from playground.config import build_config
from playground.errors import BadInput
from playground.runner import execute
from playground.scenarios import maml
from playground.scenarios.maml import MamlConfig

TINY = {
    "iterations": "10",
    "eval_every": "5",
    "eval_tasks": "10",
    "eval_steps": "2",
    "log_every": "5",
    "checkpoint_every": "5",
}


def run_in_process(directory, **overrides):
    config = build_config(MamlConfig, {**TINY, **{k: str(v) for k, v in overrides.items()}})
    return execute(maml.SCENARIO, config, directory, progress=False)


def test_cli_run_writes_summary_plots_and_checkpoint(tmp_path):
    run = tmp_path / "r"
    assert main(["run", "maml", *(f"{k}={v}" for k, v in TINY.items()), "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    for key in ("pre_adapt_mse", "pre_adapt_mse_ci95", "post_adapt_mse", "post_adapt_mse_ci95"):
        assert summary[f"eval/{key}"] > 0, key
    assert len(summary["eval/mse_by_step"]) == len(summary["eval/mse_ci95_by_step"]) == 3
    assert summary["eval/mse_by_step"][0] == summary["eval/pre_adapt_mse"]
    assert summary["eval/mse_by_step"][1] == summary["eval/post_adapt_mse"]  # one step, as in metarl
    assert summary["eval/mse_by_step"][2] == summary["eval/post_eval_steps_mse"]
    assert summary["diverged"] is False
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss/meta_train" in r] == [5, 10]
    assert [r["step"] for r in rows if "eval/post_adapt_mse" in r] == [5, 10]
    for name in ("training.png", "adaptation.png", "sine_fits.png", "checkpoint.pt"):
        assert (run / name).stat().st_size > 0, name
    assert json.loads((run / "config.json").read_text())["config"]["shots"] == 10  # resolved default


def test_cli_bad_algorithm_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "maml", "algo=mamal"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0
    assert "unknown algo 'mamal'; valid: maml, fomaml, anil, metasgd, reptile, protonet, pretrain" in err


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"task": "sinus"}, "unknown task 'sinus'; valid: sine, glyphs, omniglot"),
        ({"data_dir": "/data"}, "data_dir='/data', download=False apply only to task=omniglot"),
        ({"engine": "jax"}, "unknown engine 'jax'; valid: functional, learn2learn"),
        ({"ways": "5"}, "ways=5 does not apply to task=sine"),
        ({"algo": "protonet"}, "algo=protonet needs a classification task"),
        ({"shots": "0"}, "shots=0; valid: an integer >= 1"),
        ({"inner_lr": "-1"}, "inner_lr=-1.0"),
        ({"resume": "/nonexistent"}, "resume='/nonexistent' holds no checkpoint.pt"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as error:
        build_config(MamlConfig, overrides)
    assert "\n" not in str(error.value)


def test_query_defaults_follow_finn_et_al_in_training_and_are_larger_for_evaluation():
    sine = build_config(MamlConfig, {"shots": "5"})
    assert (sine.queries, sine.eval_queries) == (5, 100)
    images = build_config(MamlConfig, {"task": "glyphs", "shots": "5"})
    assert (images.ways, images.queries, images.eval_queries) == (5, 5, 15)
    assert build_config(MamlConfig, {"task": "glyphs", "queries": "2", "eval_queries": "3"}).queries == 2


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setattr(maml, "save_plots", lambda *args: None)  # slow, and drawn in the CLI test
    # logging windows straddle the checkpoint; the baseline is checkpointed too
    options = dict(log_every=3, eval_every=3, checkpoint_every=4, eval_tasks=5, baseline=True)
    full = run_in_process(tmp_path / "full", iterations=6, **options)
    assert full["baseline/post_adapt_mse"] > 0
    run_in_process(tmp_path / "part", iterations=4, **options)
    resumed = run_in_process(tmp_path / "resumed", iterations=6, resume=tmp_path / "part", **options)
    assert {k: v for k, v in full.items() if k != "wall_s"} == {
        k: v for k, v in resumed.items() if k != "wall_s"
    }
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    later = [json.dumps(r) for r in rows if r["step"] > 4]
    assert (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines() == later
    with pytest.raises(ValueError, match=r"was run with other options \(inner_lr=0.01 there, 0.02 here\)"):
        run_in_process(tmp_path / "bad", iterations=6, inner_lr=0.02, resume=tmp_path / "part", **options)


def test_a_diverging_run_is_a_result(tmp_path):
    summary = run_in_process(tmp_path / "d", inner_lr=1e30, checkpoint_every=0)
    assert summary["diverged"] is True and summary["diverged_step"] == 1
    assert not (tmp_path / "d" / "adaptation.png").exists()


def test_classification_run_on_random_images(tmp_path, monkeypatch):
    """The image path (conv-4, accuracy keys, task grid) on a tiny random family; protonet and anil."""
    from metalearn.fewshot.images import ImageTasks

    g = torch.Generator().manual_seed(0)
    images = {split: torch.rand(6, 4, 1, 28, 28, generator=g) for split in ("train", "validation", "test")}
    family = ImageTasks(images, ways=3, shots=1, queries=2, rotations=False)
    monkeypatch.setattr(maml, "task_families", lambda config: (family, family))
    for algo in ("protonet", "anil"):
        summary = run_in_process(
            tmp_path / algo,
            task="glyphs",
            algo=algo,
            ways=3,
            shots=1,
            queries=2,
            threads=1,
            meta_batch=2,
            iterations=2,
            log_every=1,
            eval_every=0,
            eval_tasks=3,
            checkpoint_every=0,
            baseline=True,
        )
        assert 0 <= summary["eval/pre_adapt_acc"] <= 1 and summary["eval/post_adapt_acc_ci95"] >= 0
        assert 0 <= summary["baseline/post_adapt_acc"] <= 1 and summary["eval/post_adapt_loss"] > 0
        assert (tmp_path / algo / "tasks.png").stat().st_size > 0
    protonet = json.loads((tmp_path / "protonet" / "summary.json").read_text())
    assert protonet["eval/pre_adapt_acc"] == protonet["eval/post_adapt_acc"]  # prototypes need no steps


def test_resume_in_place_keeps_each_row_once(tmp_path, monkeypatch):
    monkeypatch.setattr(maml, "save_plots", lambda *args: None)
    options = dict(log_every=3, eval_every=3, checkpoint_every=4, eval_tasks=5)
    full = run_in_process(tmp_path / "full", iterations=6, **options)
    run_in_process(tmp_path / "same", iterations=4, **options)  # its final test row is at step 4
    resumed = run_in_process(tmp_path / "same", iterations=6, resume=tmp_path / "same", **options)
    assert {k: v for k, v in full.items() if k != "wall_s"} == {
        k: v for k, v in resumed.items() if k != "wall_s"
    }
    assert (tmp_path / "same" / "metrics.jsonl").read_text() == (
        tmp_path / "full" / "metrics.jsonl"
    ).read_text()


def test_a_truncated_checkpoint_is_bad_input(tmp_path):
    run_in_process(tmp_path / "r", iterations=5, checkpoint_every=5, eval_every=0)
    checkpoint = tmp_path / "r" / maml.CHECKPOINT
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    from playground.errors import BadInput

    with pytest.raises(BadInput, match=r"resume='.*': cannot read .*checkpoint.pt"):
        run_in_process(tmp_path / "s", iterations=6, resume=tmp_path / "r")


def test_summary_keys_of_an_evaluated_curve():
    from metalearn import Sine, evaluate, make_learner

    family = Sine(10, 10)
    learner = make_learner("maml", family.make_model(torch.Generator().manual_seed(3)), "regression")
    curve = evaluate(learner, family, n_tasks=30, steps=2, generator=torch.Generator().manual_seed(4))
    metrics = maml.summary_metrics(curve)
    assert metrics["eval/pre_adapt_mse"] == curve.loss[0] and metrics["eval/post_adapt_mse"] == curve.loss[1]
    assert metrics["eval/post_eval_steps_mse"] == curve.loss[2]  # one step, then eval_steps (README)
    assert metrics["eval/post_adapt_mse_ci95"] == curve.loss_ci95[1] > 0


def test_classification_summary_keys():
    from metalearn import AdaptationCurve

    curve = AdaptationCurve([2.0, 1.0], [0.1, 0.1], [0.2, 0.6], [0.01, 0.02], 10)
    metrics = maml.summary_metrics(curve)
    assert metrics["eval/pre_adapt_acc"] == 0.2 and metrics["eval/post_adapt_acc_ci95"] == 0.02
    assert metrics["eval/post_adapt_loss"] == 1.0 and "eval/post_adapt_mse" not in metrics


def test_post_adapt_means_one_step_and_post_eval_steps_the_last():
    from metalearn import AdaptationCurve

    curve = AdaptationCurve([2.0, 1.0, 0.5, 0.25], [0.4, 0.3, 0.2, 0.1], None, None, 10)
    metrics = maml.summary_metrics(curve, "baseline")
    assert (metrics["baseline/post_adapt_mse"], metrics["baseline/post_adapt_mse_ci95"]) == (1.0, 0.3)
    assert (metrics["baseline/post_eval_steps_mse"], metrics["baseline/post_eval_steps_mse_ci95"]) == (
        0.25,
        0.1,
    )
    unadapted = maml.summary_metrics(AdaptationCurve([2.0], [0.4], None, None, 10))
    assert sorted(unadapted) == [
        "eval/mse_by_step",
        "eval/mse_ci95_by_step",
        "eval/pre_adapt_mse",
        "eval/pre_adapt_mse_ci95",
    ]


def test_names_come_from_the_library_registries():
    """algo, task, engine and capture are read from metalearn's mappings, listed and checked from them."""
    from metalearn.fewshot import TASK_FAMILIES
    from metalearn.maml import ALGORITHMS, CAPTURES, ENGINES
    from playground.config import format_options

    lines = {line.split(" ", 1)[0]: line for line in format_options(MamlConfig)}
    for name, names in (
        ("algo", ALGORITHMS),
        ("task", TASK_FAMILIES),
        ("engine", ENGINES),
        ("capture", CAPTURES),
    ):
        assert ", ".join(names) in lines[name], name
    with pytest.raises(ValueError, match="unknown capture 'graph'; valid: auto, none, compile, cuda_graph"):
        build_config(MamlConfig, {"capture": "graph"})
    with pytest.raises(ValueError, match="meta_batch=0; valid: an integer >= 1"):
        build_config(MamlConfig, {"meta_batch": "0"})


def test_without_learn2learn_the_functional_engine_is_the_default_and_learn2learn_is_refused(monkeypatch):
    """learn2learn is an optional extra: where it is not installed, image tasks' CPU default
    (learn2learn) becomes the functional engine, and asking for it says how to install it."""
    monkeypatch.setattr(maml, "learn2learn_installed", lambda: False)
    config = build_config(MamlConfig, {"task": "glyphs", "device": "cpu"})
    assert config.engine == "functional"
    with pytest.raises(BadInput, match=r"^engine=learn2learn needs learn2learn, which is not installed: pip"):
        build_config(MamlConfig, {"task": "glyphs", "engine": "learn2learn"})
    monkeypatch.setattr(maml, "learn2learn_installed", lambda: True)
    assert build_config(MamlConfig, {"task": "glyphs", "device": "cpu"}).engine == "learn2learn"


def test_the_learn2learn_engine_without_learn2learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "learn2learn", None)  # import learn2learn fails
    monkeypatch.delitem(sys.modules, "metalearn.maml._l2l", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'playground\[learn2learn\]'") as refused:
        importlib.import_module("metalearn.maml._l2l")
    assert str(refused.value) == LEARN2LEARN_MISSING


def test_meta_batch_chunk_trains_the_same_curve_and_only_the_maml_family_takes_it(tmp_path):
    whole = run_in_process(tmp_path / "whole", meta_batch=10, checkpoint_every=0)
    chunked = run_in_process(tmp_path / "chunked", meta_batch=10, checkpoint_every=0, meta_batch_chunk=3)
    assert chunked["eval/post_adapt_mse"] == pytest.approx(whole["eval/post_adapt_mse"], rel=1e-4)
    with pytest.raises(BadInput, match="^algo 'reptile' takes no option 'meta_batch_chunk'; valid: inner_lr"):
        build_config(MamlConfig, {"algo": "reptile", "meta_batch_chunk": "3"})
    with pytest.raises(BadInput, match=r"^meta_batch_chunk=0; valid: an integer >= 1$"):
        build_config(MamlConfig, {"meta_batch_chunk": "0"})
