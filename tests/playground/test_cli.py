"""The CLI as a user meets it: run, list, sweep (with resume), report, bad input, Ctrl-C."""

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


def test_list_shows_every_option_with_default_and_help(cli):
    out = cli("list")
    assert out.returncode == 0, out.stderr
    assert "toy: gradient descent on a quadratic" in out.stdout
    assert "lr (float, default 0.1): step size η" in out.stdout
    assert "init (comma-separated list of float, default 1.0)" in out.stdout
    assert "seed (int, default 0)" in out.stdout


def test_run_writes_config_metrics_summary_and_plot(cli, tmp_path):
    out = cli("run", "toy", "lr=0.25", "steps=8", "init=2,-1", "--out", "r")
    assert out.returncode == 0, out.stderr
    run = tmp_path / "r"
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


def test_default_output_directory_is_timestamped_under_runs(cli, tmp_path):
    assert cli("run", "toy", "steps=2").returncode == 0
    (run,) = (tmp_path / "runs" / "toy").iterdir()
    assert (run / "summary.json").exists()


def test_same_seed_same_numbers_bit_for_bit(cli, toy, tmp_path, monkeypatch):
    for name in ("a", "b"):
        assert cli("run", "toy", "noise=0.3", "seed=7", "--out", name).returncode == 0
    monkeypatch.chdir(tmp_path)
    assert main(["run", "toy", "noise=0.3", "seed=8", "--out", "c"]) == 0
    a, b, c = ((tmp_path / n / "metrics.jsonl").read_text() for n in "abc")
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


def test_unwritable_out_is_bad_input(cli, tmp_path):
    (tmp_path / "file").write_text("in the way")
    out = cli("run", "toy", "--out", "file/run")
    assert out.returncode == 2 and "cannot write to --out 'file/run'" in out.stderr
    assert (tmp_path / "file").read_text() == "in the way"


def test_diverging_run_records_step_and_last_finite_values(cli, tmp_path):
    out = cli("run", "toy", "lr=10", "steps=1000", "--out", "d")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["diverged"] is True
    # |x_t| = 9^t overflows float64 (max ~1.8e308) when 0.5·81^t does: t = 162
    assert summary["diverged_step"] == 162
    assert summary["last_finite"]["loss/f"] == pytest.approx(0.5 * 81.0**161, rel=1e-9)
    assert "diverged at step 162" in out.stdout


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


def test_tensorboard_events_when_asked(cli, tmp_path):
    assert cli("run", "toy", "tensorboard=true", "steps=3", "--out", "tb").returncode == 0
    assert list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))


def test_sweep_runs_the_grid_writes_csv_and_resumes(cli, tmp_path):
    out = cli("sweep", "toy", "lr=0.1,0.5", "init=1;2,2", "steps=5", "--out", "s")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "s" / "sweep.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["run", "status", "lr", "init", "steps"] and "final/loss" in header
    assert len(lines) == 5
    runs = sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir())
    assert runs == [
        "lr=0.1,init=1,steps=5",
        "lr=0.1,init=2_2,steps=5",
        "lr=0.5,init=1,steps=5",
        "lr=0.5,init=2_2,steps=5",
    ]
    summary = json.loads((tmp_path / "s" / runs[1] / "summary.json").read_text())
    assert summary["final/loss"] == pytest.approx(0.5 * 8 * 0.9**10)
    # an interrupted sweep: one run never finished; the re-run redoes only that one
    stamps = {r: (tmp_path / "s" / r / "summary.json").stat().st_mtime_ns for r in runs}
    (tmp_path / "s" / runs[2] / "summary.json").unlink()
    assert cli("sweep", "toy", "lr=0.1,0.5", "init=1;2,2", "steps=5", "--out", "s").returncode == 0
    for r in runs:
        redone = (tmp_path / "s" / r / "summary.json").stat().st_mtime_ns != stamps[r]
        assert redone == (r == runs[2])


def test_sweep_with_parallel_workers_matches_serial(cli, tmp_path):
    args = ["sweep", "toy", "noise=0.1,0.2", "seed=1,2", "steps=4"]
    assert cli(*args, "--out", "serial").returncode == 0
    assert cli(*args, "--workers", "2", "--out", "parallel").returncode == 0
    assert (tmp_path / "serial" / "sweep.csv").read_text().split("wall_s")[0] == (
        tmp_path / "parallel" / "sweep.csv"
    ).read_text().split("wall_s")[0]
    for run in (tmp_path / "serial").iterdir():
        if run.is_dir():
            assert (run / "metrics.jsonl").read_text() == (
                tmp_path / "parallel" / run.name / "metrics.jsonl"
            ).read_text()


def test_sweep_on_a_local_ray_instance(cli, tmp_path):
    pytest.importorskip("ray")
    out = cli("sweep", "toy", "lr=0.1,0.2,0.3", "steps=3", "--launcher", "ray", "--out", "ray")
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "ray" / "sweep.csv").read_text().splitlines()
    assert len(lines) == 4
    summary = json.loads((tmp_path / "ray" / "lr=0.3,steps=3" / "summary.json").read_text())
    assert summary["final/x"] == pytest.approx([0.7**3])


def test_report_compares_runs_in_one_self_contained_page(cli, tmp_path):
    assert cli("sweep", "toy", "lr=0.1,0.3", "steps=5", "--out", "s").returncode == 0
    assert cli("run", "toy", "lr=10", "steps=400", "--out", "div").returncode == 0
    out = cli("report", "s", "div", "--out", "page/report.html")
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "page" / "report.html").read_text()
    assert page.count("<tr") == 4  # header + 3 runs
    assert "lr=0.1,steps=5" in page and "diverged (step 162)" in page
    assert page.count("data:image/png;base64,") == 1 + 3  # overlaid curves + one plot per run
    assert "src='http" not in page and 'src="http' not in page


def test_demo_runs_every_scenarios_demo_and_writes_the_report(cli, tmp_path):
    out = cli("demo", "toy", "--out", "demo")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "demo" / "toy" / "small-lr" / "summary.json").exists()
    assert (tmp_path / "demo" / "toy" / "large-lr" / "summary.json").exists()
    assert "demo report: demo/report.html" in out.stdout


def test_the_older_name_of_playground_modules_still_loads_a_scenario(tmp_path):
    env = cli_env(PLAYGROUND_MODULES="", PLAYGROUND_SCENARIOS="toy_scenario")
    out = subprocess.run(
        [sys.executable, "-m", "playground", "list"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "toy: gradient descent on a quadratic" in out.stdout
