"""The Python API: the CLI's runs, files and refusals, called with Python values."""

import json
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import cli_env

import playground
from playground.api import option_texts
from playground.cli import main
from playground.errors import BadInput, UserExit
from playground.scenarios.game import GameConfig

# One small setting of each scenario, as Python values (the CLI gets them as text)
SETTINGS = {
    "game": dict(game="bilinear", dynamics="extragradient", lr=0.2, steps=30, init=(1.0, -0.5)),
    "maml": dict(iterations=2, eval_every=0, eval_tasks=2, eval_steps=1, meta_batch=2),
    "metarl": dict(
        iterations=1, pretrain_iterations=0, meta_batch=2, episodes=2, hidden=(8,), eval_tasks=2, eval_steps=1
    ),
    "icl": dict(dim=3, context=5, steps=4, batch=16, eval_tasks=32, eval_every=2, plots=False),
    "bilevel": dict(
        outer_steps=3,
        inner_steps=50,
        problem_options={"dim": 4, "train": 6, "val": 20},
        method="ift_exact",
        plots=False,
    ),
    "deq": dict(task="synthetic1d", steps=4, train=64, val=32, dim=4, width=4, diagnose_every=2),
    "stn": dict(hidden=4, steps=6, warmup=2, inner_steps=1, trials=1, log_every=3, batch=16),
    "darts": dict(
        epochs=1, nodes=2, width=4, batch_size=200, repeats=1, retrain_epochs=1, samples=2, power_iters=2
    ),
}


def _text(value):
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _cli_args(options):
    args = []
    for key, value in options.items():
        if isinstance(value, dict):  # <kind>_options: the CLI's <kind>.<keyword>
            kind = key.removesuffix("_options")
            args += [f"{kind}.{k}={_text(v)}" for k, v in value.items()]
        else:
            args.append(f"{key}={_text(value)}")
    return args


def _timed(key):
    return "seconds" in key or key.endswith("_s") or key == "peak_gpu_memory_mib"


def _without_timings(row):
    return {k: v for k, v in row.items() if not _timed(k)}


@pytest.mark.parametrize("scenario", sorted(SETTINGS))
def test_a_python_run_writes_what_the_cli_writes(scenario, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = SETTINGS[scenario]
    assert main(["run", scenario, *_cli_args(options), "--out", "cli"]) == 0
    result = playground.run(scenario, out="py", **options)
    cli = playground.load("cli")
    assert result.status == cli.status == "finished"
    assert result.config == cli.config
    rows = [_without_timings(row) for row in result.metrics.rows]
    assert rows == [_without_timings(row) for row in cli.metrics.rows] and len(rows) > 0
    assert _without_timings(result.summary) == _without_timings(cli.summary)
    assert list(result.figures) == list(cli.figures)
    recorded = json.loads((tmp_path / "py" / "config.json").read_text())["command"]
    assert recorded == ["playground", "run", scenario, *_cli_args(options), "--out", "py"]


def test_the_recorded_command_reproduces_the_run_from_the_shell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = playground.run("game", out="py", **SETTINGS["game"], plots=False)  # the numbers are compared
    command = json.loads((tmp_path / "py" / "config.json").read_text())["command"]
    shell = [sys.executable, "-m", "playground", *command[1:-1], "sh"]
    done = subprocess.run(shell, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert playground.load(tmp_path / "sh").metrics.rows == result.metrics.rows


def test_a_runs_metrics_are_curves_by_key(tmp_path):
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"scenario": "toy", "config": {"lr": 0.1}}))
    rows = [
        {"step": 0, "loss": 1.0, "x": [1.0, 2.0]},
        {"step": 1, "loss": None, "nonfinite": ["loss"]},
        {"step": 2, "loss": 0.25, "x": [0.5, 1.0], "note": "a"},
    ]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = playground.load(directory).metrics
    assert metrics.rows[1] == {"step": 1, "loss": None}  # the file's "nonfinite" list is not a metric
    assert list(metrics) == ["loss", "x", "note"] and len(metrics) == 3
    steps, loss = metrics["loss"]
    assert steps.tolist() == [0, 1, 2]
    assert loss[0] == 1.0 and np.isnan(loss[1]) and loss[2] == 0.25
    assert metrics["x"].steps.tolist() == [0, 2] and metrics["x"].values.shape == (2, 2)
    assert metrics["note"].values.tolist() == ["a"]
    with pytest.raises(KeyError, match="'dist' was never logged; logged: loss, x, note"):
        metrics["dist"]


def test_load_reads_a_damaged_run_as_the_report_does(tmp_path):
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / "config.json").write_text("{not json")
    (directory / "metrics.jsonl").write_text('{"step": 0, "a": 1}\n{"step": 1, "a"\n{"step": 2, "a": 3}\n')
    result = playground.load(directory)
    assert result.status == "unreadable" and result.scenario == "(unreadable config.json)"
    assert result.metrics["a"].values.tolist() == [1.0, 3.0]
    assert result.problems[0].startswith("config.json unreadable")
    assert result.problems[1] == "metrics.jsonl: 1 damaged line skipped"
    (directory / "config.json").write_text(json.dumps({"scenario": "toy", "config": {}}))
    assert playground.load(directory).status == "unfinished"  # no summary: running, or killed
    (directory / "summary.json").write_text(json.dumps({"status": 3}))
    assert playground.load(directory).status == "unknown"
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        playground.load(tmp_path / "nothing")


def test_a_run_leaves_the_callers_random_state_as_it_found_it(tmp_path):
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    playground.run("game", out=tmp_path / "r", steps=3, seed=5, plots=False)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(lr=-1), "lr=-1.0: the learning rate η scales every step; η <= 0 does not descend; valid:"),
        (dict(lr=float("nan")), "lr=nan: not finite; valid: finite numbers (no nan or inf)"),
        (dict(steps=2.5), "steps='2.5' is not a valid int"),
        (dict(stepz=3), "unknown option 'stepz'; valid: seed, tensorboard"),
        (dict(dynamics="nope"), "unknown dynamics 'nope'"),
        (dict(dynamics_options={"gamma": 1}, **{"dynamics.gamma": 2}), "option 'dynamics.gamma' given twice"),
        (dict(resume="somewhere"), "scenario 'game' declares no checkpoint, so it takes no resume="),
    ],
)
def test_a_refusal_is_the_clis_line_as_bad_input_and_writes_nothing(options, message, tmp_path):
    with pytest.raises(BadInput) as refused:
        playground.run("game", out=tmp_path / "r", **options)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "r").exists()


def test_an_occupied_out_is_refused_in_pythons_words(tmp_path):
    playground.run("game", out=tmp_path / "r", steps=2, plots=False)
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    with pytest.raises(BadInput, match="pass overwrite=True to replace them, or choose another out$"):
        playground.run("game", out=tmp_path / "r", steps=3, plots=False)
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before
    again = playground.run("game", out=tmp_path / "r", overwrite=True, steps=3, plots=False)
    assert again.summary["steps_run"] == 3
    with pytest.raises(BadInput, match="unknown scenario 'gmae'; valid: bilevel, darts, deq"):
        playground.run("gmae")


def test_user_codes_system_exit_is_a_bug_not_an_exit(tmp_path, monkeypatch):
    (tmp_path / "leaving_factory.py").write_text("def leave():\n    raise SystemExit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserExit):
        playground.run("game", out=tmp_path / "r", game="leaving_factory:leave")
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "failed"


def test_factory_options_as_a_dict_or_dotted_are_the_same_texts():
    as_dict = option_texts(GameConfig, {"dynamics": "consensus", "dynamics_options": {"gamma": 0.5}})
    dotted = option_texts(GameConfig, {"dynamics": "consensus", "dynamics.gamma": 0.5})
    assert as_dict == dotted == {"dynamics": "consensus", "dynamics.gamma": "0.5"}
    assert option_texts(GameConfig, {"init": (1, 2.5), "batch": 2, "plots": False, "x": None}) == {
        "init": "1,2.5",
        "batch": "2",
        "plots": "false",
        "x": "none",
    }


def test_a_sweep_from_python_is_the_clis_sweep(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = {"lr": [0.05, 0.1], "init": [(1.0, 0.0), (0.0, 1.0)]}
    done = playground.sweep("game", grid=grid, out="py", game="bilinear", steps=5, plots=False)
    assert main(["sweep", "game", "lr=0.05,0.1", "init=1.0,0.0;0.0,1.0", "game=bilinear", "steps=5",
                 "plots=false", "--out", "cli"]) == 0  # fmt: skip
    assert done.statuses == ["finished"] * 4
    assert [r.config["lr"] for r in done.results] == [0.05, 0.05, 0.1, 0.1]
    assert [r.config["init"] for r in done.results] == [[1.0, 0.0], [0.0, 1.0]] * 2
    assert done.points[0] == {
        "lr": "0.05",
        "init": "1.0,0.0",
        "game": "bilinear",
        "steps": "5",
        "plots": "false",
    }
    cli_rows = (tmp_path / "cli" / "sweep.csv").read_text().splitlines()
    assert len(done.rows()) == 4 and done.rows()[0]["status"] == "finished"
    assert [row.split(",")[0] for row in done.table.read_text().splitlines()] == [
        r.split(",")[0] for r in cli_rows
    ]
    for mine in done.results:
        assert mine.metrics.rows == playground.load(tmp_path / "cli" / mine.dir.name).metrics.rows


def test_a_bad_sweep_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(BadInput, match=r"grid\['lr'\] = 0.1; valid: a list of the values lr takes"):
        playground.sweep("game", grid={"lr": 0.1}, out=tmp_path / "s")
    with pytest.raises(BadInput, match="workers must be at least 1, got 0"):
        playground.sweep("game", grid={"lr": [0.1]}, out=tmp_path / "s", workers=0)
    with pytest.raises(BadInput, match="lr=-1.0"):
        playground.sweep("game", grid={"lr": [0.1, -1]}, out=tmp_path / "s")
    from playground.scenarios import SCENARIOS

    with pytest.raises(BadInput, match="; valid: a scenario's name, or module:SCENARIO$"):
        playground.sweep(SCENARIOS["game"], grid={"lr": [0.1]}, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_report_writes_the_page_and_refuses_a_directory_as_out(tmp_path):
    playground.run("game", out=tmp_path / "runs" / "a", steps=2, plots=False)
    page = playground.report(tmp_path / "runs")
    assert page == tmp_path / "runs" / "report.html" and "runs" in page.read_text()
    with pytest.raises(BadInput, match="^out '.*' is a directory; valid: a file path"):
        playground.report([tmp_path / "runs"], out=tmp_path)


def test_a_result_shows_its_summary_and_figures_in_a_notebook(tmp_path):
    result = playground.run("game", out=tmp_path / "r", steps=5)
    shown = result._repr_html_()
    assert (
        "<th>rate/measured</th>" in shown and shown.count("data:image/png;base64,") == len(result.figures) > 0
    )


def test_importing_playground_loads_no_torch():
    code = "import sys, playground; playground.load; print('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_progress_shows_in_a_notebook_kernel(monkeypatch):
    from playground.runner import progress_shown

    class ZMQInteractiveShell:  # the class name Jupyter's kernel gives its shell
        pass

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress_shown()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=ZMQInteractiveShell))
    assert progress_shown()


def test_the_readmes_python_tour_runs_as_written(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## From Python") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["eg"].summary["rate/measured"] == pytest.approx((1 - 0.1**2 + 0.1**4) ** 0.5, rel=1e-6)
    assert round(scope["eg"].summary["rate/measured"], 6) == 0.995038
    assert scope["sw"].statuses == ["finished"] * 2 and (tmp_path / "runs" / "compare.html").exists()
