"""The CLI as a user meets it: run, list, sweep (with resume), report, bad input, Ctrl-C.

Most commands run in this process (`main`, its exit status and its printed lines); a child
process (`cli`) where the process itself is what is checked: its exit status and stderr from the
shell, signals, local sweep workers, Ray, and the environment read at start-up.
"""

import json
import signal
import subprocess
import sys
import time

import pytest
from child_env import cli_env

from playground.cli import main


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def here(toy, tmp_path, monkeypatch):
    """tmp_path as the working directory of in-process commands, with the toy scenario."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_list_shows_every_option_with_default_and_help(here, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy: gradient descent on a quadratic" in out
    assert "lr (float, default 0.1): step size η" in out
    assert "init (comma-separated list of float, default 1.0)" in out
    assert "seed (int, default 0)" in out


def test_run_writes_config_metrics_summary_and_plot(here):
    assert main(["run", "toy", "lr=0.25", "steps=8", "init=2,-1", "--out", "r"]) == 0
    run = here / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["scenario"] == "toy" and config["seed"] == 0
    assert config["config"]["lr"] == 0.25 and config["config"]["init"] == [2.0, -1.0]
    assert config["command"][:3] == ["playground", "run", "toy"]
    assert {"torch", "numpy", "python"} <= set(config["versions"])
    rows = read_rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(9))
    summary = json.loads((run / "summary.json").read_text())
    # closed form: x_T = (1 - ηa)^T x_0
    assert summary["final/x"] == pytest.approx([2 * 0.75**8, -(0.75**8)], rel=1e-12)
    assert summary["diverged"] is False and summary["status"] == "finished"
    assert (run / "loss.png").stat().st_size > 0


def test_default_output_directory_is_timestamped_under_runs(here):
    assert main(["run", "toy", "steps=2"]) == 0
    (run,) = (here / "runs" / "toy").iterdir()
    assert (run / "summary.json").exists()


def test_same_seed_same_numbers_bit_for_bit(cli, here):
    # a fresh process and this one, which has run other code and drawn other numbers before
    assert cli("run", "toy", "noise=0.3", "seed=7", "--out", "a").returncode == 0
    assert main(["run", "toy", "noise=0.3", "seed=7", "--out", "b"]) == 0
    assert main(["run", "toy", "noise=0.3", "seed=8", "--out", "c"]) == 0
    a, b, c = ((here / n / "metrics.jsonl").read_text() for n in "abc")
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown scenario 'nope'; valid: "),
        (["run", "toy", "speed=1"], "unknown option 'speed'; valid: seed, tensorboard, threads, device, lr"),
        (["run", "toy", "lr"], "malformed override 'lr'; expected key=value"),
        (["run", "toy", "steps=ten"], "steps='ten' is not a valid int"),
        (["run", "toy", "steps=1.5"], "steps='1.5' is not a valid int"),
        (["run", "toy", "init=1,x"], "init='1,x' is not a valid comma-separated list of float"),
        (["run", "toy", "tensorboard=maybe"], "tensorboard='maybe' is not a valid bool"),
        (["run", "toy", "lr=-1"], "lr must be positive, got -1.0"),
        (["sweep", "toy", "lr=0.1,-2"], "lr must be positive, got -2.0"),
        (["sweep", "toy", "lr=0.1,"], "empty value in sweep override lr='0.1,'"),
        (["sweep", "toy", "--workers", "0"], "--workers must be at least 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["report", "missing-dir"], "not a directory: 'missing-dir'"),
    ],
)
def test_bad_input_is_one_line_and_status_2(toy, capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("playground: error: ") and message in lines[0]
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_bad_input_from_the_shell_exits_2_without_traceback(cli):
    out = cli("run", "toy", "lr=-1")
    assert out.returncode == 2
    assert out.stderr == "playground: error: lr must be positive, got -1.0\n"


def test_unwritable_out_is_bad_input(here, capsys):
    (here / "file").write_text("in the way")
    assert main(["run", "toy", "--out", "file/run"]) == 2
    assert "cannot write to --out 'file/run'" in capsys.readouterr().err
    assert (here / "file").read_text() == "in the way"


def test_diverging_run_records_step_and_last_finite_values(here, capsys):
    assert main(["run", "toy", "lr=10", "steps=1000", "--out", "d"]) == 0
    summary = json.loads((here / "d" / "summary.json").read_text())
    assert summary["diverged"] is True
    # |x_t| = 9^t overflows float64 (max ~1.8e308) when 0.5·81^t does: t = 162
    assert summary["diverged_step"] == 162
    assert summary["last_finite"]["loss/f"] == pytest.approx(0.5 * 81.0**161, rel=1e-9)
    assert "diverged at step 162" in capsys.readouterr().out


def test_ctrl_c_keeps_what_was_logged_and_marks_the_summary(tmp_path):
    # a shell's background jobs (CI's, say) start with SIGINT ignored; a terminal's do not
    process = subprocess.Popen(
        [sys.executable, "-m", "playground", "run", "toy", "steps=1000", "pause=0.02", "--out", "i"],
        cwd=tmp_path,
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    metrics = tmp_path / "i" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text()) < 200):
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "i" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    rows = read_rows(metrics)
    assert 3 <= len(rows) < 1001 and summary["last_logged"]["step"] == rows[-1]["step"]


def test_tensorboard_events_when_asked(here):
    assert main(["run", "toy", "tensorboard=true", "steps=3", "--out", "tb"]) == 0
    assert list((here / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def test_sweep_runs_the_grid_writes_csv_and_resumes(here):
    args = ["sweep", "toy", "lr=0.1,0.5", "init=1;2,2", "steps=5", "--out", "s"]
    assert main(args) == 0
    lines = (here / "s" / "sweep.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["run", "status", "lr", "init", "steps"] and "final/loss" in header
    assert len(lines) == 5
    runs = sorted(p.name for p in (here / "s").iterdir() if p.is_dir())
    assert runs == [
        "lr=0.1,init=1,steps=5",
        "lr=0.1,init=2_2,steps=5",
        "lr=0.5,init=1,steps=5",
        "lr=0.5,init=2_2,steps=5",
    ]
    summary = json.loads((here / "s" / runs[1] / "summary.json").read_text())
    assert summary["final/loss"] == pytest.approx(0.5 * 8 * 0.9**10)
    # an interrupted sweep: one run never finished; the re-run redoes only that one
    stamps = {r: (here / "s" / r / "summary.json").stat().st_mtime_ns for r in runs}
    (here / "s" / runs[2] / "summary.json").unlink()
    assert main(args) == 0
    for r in runs:
        redone = (here / "s" / r / "summary.json").stat().st_mtime_ns != stamps[r]
        assert redone == (r == runs[2])


def test_sweep_with_parallel_workers_matches_serial(two_worker_sweep, here):
    assert two_worker_sweep.done.returncode == 0, two_worker_sweep.done.stderr
    assert main(["sweep", *two_worker_sweep.grid, "--out", "serial"]) == 0
    parallel = two_worker_sweep.out
    assert (here / "serial" / "sweep.csv").read_text().split("wall_s")[0] == (
        parallel / "sweep.csv"
    ).read_text().split("wall_s")[0]
    for run in (here / "serial").iterdir():
        if run.is_dir():
            assert (run / "metrics.jsonl").read_text() == (parallel / run.name / "metrics.jsonl").read_text()


def test_sweep_on_a_local_ray_instance(cli, tmp_path):
    pytest.importorskip("ray")
    out = cli("sweep", "toy", "lr=0.1,0.2,0.3", "steps=3", "--launcher", "ray", "--out", "ray")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "ray" / "sweep.csv").read_text().splitlines()
    assert len(lines) == 4
    summary = json.loads((tmp_path / "ray" / "lr=0.3,steps=3" / "summary.json").read_text())
    assert summary["final/x"] == pytest.approx([0.7**3])


def test_report_compares_runs_in_one_self_contained_page(here):
    assert main(["sweep", "toy", "lr=0.1,0.3", "steps=5", "--out", "s"]) == 0
    assert main(["run", "toy", "lr=10", "steps=400", "--out", "div"]) == 0
    assert main(["report", "s", "div", "--out", "page/report.html"]) == 0
    page = (here / "page" / "report.html").read_text()
    assert page.count("<thead><tr>") == 1 and page.count("<tr class='run") == 3  # one scenario, 3 runs
    assert "lr=0.1,steps=5" in page and "diverged (step 162)" in page
    assert page.count("data:image/png;base64,") == 1 + 3  # overlaid curves + one plot per run
    assert "src='http" not in page and 'src="http' not in page


def test_demo_runs_every_scenarios_demo_and_writes_the_report(here, capsys):
    assert main(["demo", "toy", "--out", "demo"]) == 0
    assert (here / "demo" / "toy" / "small-lr" / "summary.json").exists()
    assert (here / "demo" / "toy" / "large-lr" / "summary.json").exists()
    assert "demo report: demo/report.html" in capsys.readouterr().out


def test_the_older_name_of_playground_modules_still_loads_a_scenario(tmp_path):
    env = cli_env(PLAYGROUND_MODULES="", PLAYGROUND_SCENARIOS="toy_scenario")
    out = subprocess.run(
        [sys.executable, "-m", "playground", "list"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "toy: gradient descent on a quadratic" in out.stdout
