"""Checkpoints and resume, owned by the runner: a run of metarl or icl stopped at a checkpoint and
resumed, elsewhere or in place, gives the numbers of an uninterrupted run, bit for bit; a
resumed run that changes what it may not is refused in one line. (maml: test_scenario_maml.py.)"""

import json
from dataclasses import dataclass

import pytest
import torch
from test_scenario_metarl import TINY

from playground.cli import main
from playground.config import build_config
from playground.errors import BadInput
from playground.rundir import CHECKPOINT, METRICS
from playground.runner import execute
from playground.scenario import Checkpoint, RunConfig, Scenario, option
from playground.scenarios import icl, metarl

# the metarl tests' tiny run, twice as long, checkpointed halfway; PPO: Adam's moments carry over,
# so the checkpoint must hold them
METARL = {**TINY, "iterations": 4, "checkpoint_every": 2, "outer": "ppo"}
ICL = {
    "dim": 3,
    "context": 5,
    "steps": 20,
    "batch": 64,
    "eval_tasks": 256,
    "eval_every": 10,
    "ood_scales": "0.5,2",
    "checkpoint_every": 5,
}


def run(scenario, directory, options, **overrides):
    config = build_config(scenario.config, {k: str(v) for k, v in {**options, **overrides}.items()})
    return execute(scenario, config, directory, progress=False)


def without_time(summary):
    return {k: v for k, v in summary.items() if k != "wall_s"}


def rows(directory):
    return (directory / METRICS).read_text().splitlines()


@pytest.fixture
def drawn(monkeypatch):
    """What each run hands its figures, by the run directory's name (the figures themselves are
    drawn in the CLI tests)."""
    seen = {}
    monkeypatch.setattr(metarl.plots, "save_all", lambda run, *args: seen.setdefault(run.dir.name, args))
    monkeypatch.setattr(icl.plots, "save_all", lambda run, *args: seen.setdefault(run.dir.name, args))
    return seen


def test_metarl_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, drawn):
    full = run(metarl.SCENARIO, tmp_path / "full", METARL)
    run(metarl.SCENARIO, tmp_path / "part", METARL, iterations=2)  # its last checkpoint: iteration 2
    resumed = run(metarl.SCENARIO, tmp_path / "resumed", METARL, resume=tmp_path / "part")
    assert without_time(resumed) == without_time(full)
    later = [line for line in rows(tmp_path / "full") if json.loads(line)["step"] >= 2]
    assert rows(tmp_path / "resumed") == later  # meta-training's steps count from 0
    assert drawn["resumed"][1:4] == drawn["full"][1:4]  # the curves, and all the training rows
    assert (tmp_path / "resumed" / "policy.pt").read_bytes() == (tmp_path / "full" / "policy.pt").read_bytes()


def test_metarl_resumed_in_place_keeps_each_row_once(tmp_path, drawn):
    full = run(metarl.SCENARIO, tmp_path / "full", METARL)
    run(metarl.SCENARIO, tmp_path / "same", METARL, iterations=2)  # then pretraining logs at 2
    resumed = run(metarl.SCENARIO, tmp_path / "same", METARL, resume=tmp_path / "same")
    assert without_time(resumed) == without_time(full)
    assert rows(tmp_path / "same") == rows(tmp_path / "full")


def test_icl_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path, drawn):
    options = {**ICL, "plots": "true"}
    full = run(icl.SCENARIO, tmp_path / "full", options)
    # 15 is not a multiple of eval_every: the part logs its last step after the checkpoint at 15
    run(icl.SCENARIO, tmp_path / "part", options, steps=15)
    assert [json.loads(line)["step"] for line in rows(tmp_path / "part")] == [10, 15]
    resumed = run(icl.SCENARIO, tmp_path / "resumed", options, resume=tmp_path / "part")
    assert without_time(resumed) == without_time(full)
    assert rows(tmp_path / "resumed") == [
        line for line in rows(tmp_path / "full") if json.loads(line)["step"] > 15
    ]
    assert drawn["resumed"][:2] == drawn["full"][:2]  # the summary, and all the history drawn


def test_icl_resumed_in_place_keeps_each_row_once(tmp_path):
    full = run(icl.SCENARIO, tmp_path / "full", ICL, plots="false")
    run(icl.SCENARIO, tmp_path / "same", ICL, plots="false", steps=15)
    resumed = run(icl.SCENARIO, tmp_path / "same", ICL, plots="false", resume=tmp_path / "same")
    assert without_time(resumed) == without_time(full)
    assert rows(tmp_path / "same") == rows(tmp_path / "full")


def test_a_resumed_run_keeps_the_options_it_may_not_change(tmp_path):
    run(icl.SCENARIO, tmp_path / "part", ICL, plots="false", steps=10)
    with pytest.raises(
        BadInput,
        match=r"^resume='.*part' was run with other options \(lr=0.001 there, 0.002 here\); only steps, "
        r"checkpoint_every, resume, threads, tensorboard, device, eval_every, plots may change$",
    ):
        run(icl.SCENARIO, tmp_path / "other", ICL, plots="false", lr=0.002, resume=tmp_path / "part")
    with pytest.raises(BadInput, match=r"^steps=5 is below the checkpoint's 10; valid: >= 10$"):
        run(icl.SCENARIO, tmp_path / "fewer", ICL, plots="false", steps=5, resume=tmp_path / "part")


def test_an_option_added_since_the_checkpoint_counts_at_its_default(tmp_path):
    """A checkpoint written before an option existed: it ran as the option's default runs."""
    full = run(icl.SCENARIO, tmp_path / "full", ICL, plots="false")
    run(icl.SCENARIO, tmp_path / "part", ICL, plots="false", steps=10)
    path = tmp_path / "part" / CHECKPOINT
    saved = torch.load(path, weights_only=True)
    assert saved["options"]["noise"] == 0.0 and saved["options"]["dim"] == 3  # 0.0: the default
    for name in ("noise", "dim"):
        del saved["options"][name]
    torch.save(saved, path)
    with pytest.raises(BadInput, match=r"was run with other options \(dim=10 there, 3 here\)"):
        run(icl.SCENARIO, tmp_path / "refused", ICL, plots="false", resume=tmp_path / "part")
    saved["options"]["dim"] = 3
    torch.save(saved, path)
    resumed = run(icl.SCENARIO, tmp_path / "resumed", ICL, plots="false", resume=tmp_path / "part")
    assert without_time(resumed) == without_time(full)


def test_no_checkpoint_is_written_with_checkpoint_every_0(tmp_path):
    run(icl.SCENARIO, tmp_path / "r", ICL, plots="false", checkpoint_every=0)
    assert not (tmp_path / "r" / CHECKPOINT).exists()


@pytest.mark.parametrize("scenario", [metarl.SCENARIO, icl.SCENARIO], ids=lambda s: s.name)
def test_resume_names_a_directory_holding_a_checkpoint(scenario, tmp_path):
    with pytest.raises(
        ValueError,
        match=rf"^resume='{tmp_path}' holds no checkpoint.pt; valid: a {scenario.name} run directory "
        r"written with checkpoint_every > 0$",
    ):
        build_config(scenario.config, {"resume": str(tmp_path)})


def test_a_scenario_that_declares_no_checkpoint_refuses_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "game", f"resume={tmp_path}", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    message = "scenario 'game' declares no checkpoint, so it takes no resume=; valid: resume= with maml"
    assert message in err
    assert not (tmp_path / "r").exists()


def test_a_checkpoint_declaration_needs_its_options():
    @dataclass(frozen=True)
    class Plain(RunConfig):
        steps: int = option(10, "steps")

    with pytest.raises(TypeError, match="a checkpoint needs config options checkpoint_every and resume"):
        Scenario("plain", "", Plain, lambda config, run: {}, checkpoint=Checkpoint("steps", ("resume",)))


def test_a_refused_resume_in_place_leaves_every_file_as_it_was(tmp_path, monkeypatch, capsys):
    """Refused before the run directory is touched: the finished run's summary and config stay."""
    monkeypatch.chdir(tmp_path)
    options = {**ICL, "plots": "false", "steps": 10}

    def args(**changed):
        return ["run", "icl", *(f"{k}={v}" for k, v in {**options, **changed}.items()), "--out", "d"]

    assert main(args()) == 0

    def files():
        return {
            p.relative_to(tmp_path): p.read_bytes()
            for p in sorted((tmp_path / "d").rglob("*"))
            if p.is_file()
        }

    before = files()
    assert {"summary.json", "config.json", "metrics.jsonl", CHECKPOINT} <= {p.name for p in before}
    capsys.readouterr()
    for change, message in (
        ({"lr": 0.002}, "was run with other options (lr=0.001 there, 0.002 here)"),
        ({"steps": 5}, "steps=5 is below the checkpoint's 10; valid: >= 10"),
    ):
        assert main(args(**change, resume="d")) == 2
        assert message in capsys.readouterr().err
        assert files() == before
