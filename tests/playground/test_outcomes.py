"""Every outcome is recorded, a run directory belongs to one run, and files are strict JSON."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from child_env import cli_env

from playground.cli import main
from playground.rundir import claim


def read_table(path):
    return list(csv.DictReader(path.read_text().splitlines()))


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def strict_load(text):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def here(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def summary_of(directory):
    return json.loads((directory / "summary.json").read_text())


def test_a_finished_run_says_so(here):
    assert main(["run", "toy", "steps=3", "--out", "r"]) == 0
    assert summary_of(here / "r")["status"] == "finished"


def test_a_diverged_run_says_so(here):
    assert main(["run", "toy", "lr=10", "steps=400", "--out", "r"]) == 0
    summary = summary_of(here / "r")
    assert summary["status"] == "diverged" and summary["diverged_step"] == 162


def test_a_bug_is_recorded_as_failed_and_raised_with_its_traceback(here):
    with pytest.raises(RuntimeError, match="toy bug"):
        main(["run", "toy", "fail=bug", "fail_step=2", "--out", "r"])
    summary = summary_of(here / "r")
    assert summary["status"] == "failed"
    assert summary["error"] == {"type": "RuntimeError", "message": "toy bug"}
    assert summary["last_logged"]["step"] == 2


def test_a_bug_exits_1_with_traceback_from_the_shell(cli, tmp_path):
    out = cli("run", "toy", "fail=bug", "--out", "r")
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "RuntimeError: toy bug" in out.stderr
    assert summary_of(tmp_path / "r")["status"] == "failed"


def test_bad_input_found_during_the_run_exits_2_with_one_line(here, capsys):
    assert main(["run", "toy", "fail=input", "--out", "r"]) == 2
    assert capsys.readouterr().err == "playground: error: toy input: wrong\n"
    summary = summary_of(here / "r")
    assert summary["status"] == "failed" and summary["error"]["type"] == "BadInput"


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "playground", "run", "toy", "steps=1000", "pause=0.02", "--out", "t"],
        cwd=tmp_path,
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = tmp_path / "t" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text()) < 200):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stderr
    summary = summary_of(tmp_path / "t")
    assert summary["status"] == "interrupted"
    assert summary["last_logged"]["step"] == read_rows(metrics)[-1]["step"]


def test_out_holding_another_run_is_refused_and_left_alone(here, capsys):
    assert main(["run", "toy", "steps=2", "--out", "r"]) == 0
    before = {p.name: p.read_bytes() for p in (here / "r").iterdir()}
    assert main(["run", "toy", "steps=3", "lr=0.2", "--out", "r"]) == 2
    err = capsys.readouterr().err
    assert "'r' already holds another run's files" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (here / "r").iterdir()} == before


def test_overwrite_replaces_the_directory_whole(here):
    assert main(["run", "toy", "steps=5", "--out", "r"]) == 0
    (here / "r" / "stray.png").write_bytes(b"old")
    assert main(["run", "toy", "steps=2", "--out", "r", "--overwrite"]) == 0
    assert [row["step"] for row in read_rows(here / "r" / "metrics.jsonl")] == [0, 1, 2]
    assert not (here / "r" / "stray.png").exists()
    assert json.loads((here / "r" / "config.json").read_text())["config"]["steps"] == 2


def test_a_second_writer_fails_at_once(here, capsys):
    with claim(here / "busy"):
        assert main(["run", "toy", "steps=2", "--out", "busy"]) == 2
    assert "'busy' is in use by another playground process" in capsys.readouterr().err
    assert not (here / "busy" / "config.json").exists()


def test_every_file_a_run_writes_is_strict_json(here):
    assert main(["run", "toy", "lr=10", "steps=400", "init=1,-1", "--out", "r"]) == 0
    rows = [strict_load(line) for line in (here / "r" / "metrics.jsonl").read_text().splitlines()]
    summary = strict_load((here / "r" / "summary.json").read_text())
    strict_load((here / "r" / "config.json").read_text())
    flagged = [row for row in rows if "nonfinite" in row]
    assert flagged[0]["step"] == 162 and flagged[0]["nonfinite"] == ["loss/f"]
    assert flagged[0]["loss/f"] is None
    assert summary["final/loss"] is None and "final/loss" in summary["nonfinite"]


def test_config_json_names_the_device_and_versions(here):
    assert main(["run", "toy", "steps=1", "--out", "r"]) == 0
    device = json.loads((here / "r" / "config.json").read_text())["device"]
    assert device["type"] == "cpu" and device["torch"] and "cuda" in device


def test_a_sweep_goes_past_a_failed_point_records_it_and_retries_it(here, capsys):
    args = ["sweep", "toy", "fail_step=1,50", "fail=bug", "steps=3", "--out", "s"]
    assert main(args) == 1  # fail_step=1 fails; fail_step=50 is beyond the run's 3 steps
    err = capsys.readouterr().err
    assert "RuntimeError: toy bug" in err and "Traceback" in err
    assert (here / "s" / "sweep.csv").read_text().startswith("run,status,")
    assert [row["status"] for row in read_table(here / "s" / "sweep.csv")] == ["failed", "finished"]
    stamps = {d.name: (d / "summary.json").stat().st_mtime_ns for d in (here / "s").iterdir() if d.is_dir()}
    assert main(args) == 1
    for name, stamp in stamps.items():
        redone = (here / "s" / name / "summary.json").stat().st_mtime_ns != stamp
        assert redone == name.startswith("fail_step=1,")


def test_a_sweep_reruns_an_interrupted_point_from_a_clean_directory(here):
    assert main(["sweep", "toy", "lr=0.1,0.2", "steps=4", "--out", "s"]) == 0
    point = here / "s" / "lr=0.2,steps=4"
    summary = summary_of(point)
    summary["status"] = "interrupted"
    (point / "summary.json").write_text(json.dumps(summary))
    assert main(["sweep", "toy", "lr=0.1,0.2", "steps=4", "--out", "s"]) == 0
    assert [row["step"] for row in read_rows(point / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    assert summary_of(point)["status"] == "finished"


def test_a_sweep_into_a_run_directory_is_refused(here, capsys):
    assert main(["run", "toy", "steps=2", "--out", "r"]) == 0
    assert main(["sweep", "toy", "lr=0.1,0.2", "--out", "r"]) == 2
    assert "is a run directory" in capsys.readouterr().err


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended


def _start_slow_sweep(tmp_path, **popen):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "playground",
            "sweep",
            "toy",
            "seed=1,2,3,4",
            "steps=400",
            "pause=0.05",
            "--workers",
            "2",
            "--out",
            "s",
        ],
        cwd=tmp_path,
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "s").glob("*/metrics.jsonl"))) < 2:
        time.sleep(0.2)
    time.sleep(1.0)
    return process


def test_killing_the_sweep_ends_its_workers(tmp_path):
    process = _start_slow_sweep(tmp_path)
    workers = _children(process.pid)
    assert workers
    process.kill()  # SIGKILL: the parent cannot clean up
    process.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(map(_alive, workers)):
        time.sleep(0.2)
    assert not any(map(_alive, workers))
    started = sorted(p.parent.name for p in (tmp_path / "s").glob("*/config.json"))
    assert len(started) == 2  # the two queued points never started
    for name in started:
        assert summary_of(tmp_path / "s" / name)["status"] == "interrupted"


def test_ctrl_c_stops_the_sweep_and_starts_no_queued_point(tmp_path):
    # a terminal's Ctrl-C reaches the whole foreground process group
    process = _start_slow_sweep(
        tmp_path, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    started = sorted(p.parent.name for p in (tmp_path / "s").glob("*/config.json"))
    assert len(started) == 2
    statuses = sorted(row["status"] for row in read_table(tmp_path / "s" / "sweep.csv"))
    assert statuses == ["interrupted"] * 2 + ["not run"] * 2


USER_CODE = """
def exploding():
    raise RuntimeError("factory bug")


def leaving():
    raise SystemExit(0)
"""


@pytest.fixture
def user_code(here, monkeypatch):
    """A module of the user's factories in the working directory, imported afresh."""
    (here / "user_factories.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(here))
    monkeypatch.delitem(sys.modules, "user_factories", raising=False)
    yield here
    sys.modules.pop("user_factories", None)


def test_a_user_factory_that_raises_while_the_config_is_built_is_recorded(user_code):
    with pytest.raises(RuntimeError, match="factory bug"):
        main(["run", "game", "game=user_factories:exploding", "lr=0.2", "--out", "r"])
    summary = strict_load((user_code / "r" / "summary.json").read_text())
    assert summary == {
        "status": "failed",
        "scenario": "game",
        "error": {"type": "RuntimeError", "message": "factory bug"},
    }
    config = strict_load((user_code / "r" / "config.json").read_text())
    assert config["scenario"] == "game"
    assert config["config"] == {"game": "user_factories:exploding", "lr": "0.2"}  # as given
    assert config["command"] == [
        "playground",
        "run",
        "game",
        "game=user_factories:exploding",
        "lr=0.2",
        "--out",
        "r",
    ]


def test_a_user_factory_that_exits_0_is_a_failure_not_a_success(user_code):
    from playground.errors import UserExit

    with pytest.raises(UserExit, match=r"user code raised SystemExit\(0\)") as raised:
        main(["run", "game", "game=user_factories:leaving", "--out", "r"])
    assert isinstance(raised.value.__cause__, SystemExit)
    summary = summary_of(user_code / "r")
    assert summary["status"] == "failed" and summary["error"] == {"type": "SystemExit", "message": "0"}


def test_a_user_factory_that_exits_0_exits_1_with_its_traceback_from_the_shell(cli, tmp_path):
    (tmp_path / "user_factories.py").write_text(USER_CODE)
    out = cli("run", "game", "game=user_factories:leaving", "--out", "r")
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "SystemExit: 0" in out.stderr
    assert "UserExit: user code raised SystemExit(0) inside a playground command" in out.stderr
    assert summary_of(tmp_path / "r")["status"] == "failed"


def test_a_value_error_of_a_user_factory_stays_bad_input(user_code, capsys):
    (user_code / "user_values.py").write_text(
        "def refusing():\n    raise ValueError('scale=3; valid: < 1')\n"
    )
    assert main(["run", "game", "game=user_values:refusing", "--out", "r"]) == 2
    assert capsys.readouterr().err == "playground: error: scale=3; valid: < 1\n"
    assert not (user_code / "r").exists()
    sys.modules.pop("user_values", None)


def test_a_failure_before_the_run_never_replaces_another_runs_files(user_code):
    assert main(["run", "toy", "steps=2", "--out", "r"]) == 0
    before = {p.name: p.read_bytes() for p in (user_code / "r").iterdir()}
    with pytest.raises(RuntimeError, match="factory bug") as raised:
        main(["run", "game", "game=user_factories:exploding", "--out", "r"])
    assert "the failure is not recorded in 'r'" in "".join(raised.value.__notes__)
    assert {p.name: p.read_bytes() for p in (user_code / "r").iterdir()} == before


def _scenario(run=None, check=None):
    """The toy scenario with another run function or check."""
    import dataclasses

    import toy_scenario

    return dataclasses.replace(
        toy_scenario.SCENARIO, name="toy", run=run or toy_scenario.run, check=check, sizes=("steps", "label")
    )


def test_a_systemexit_during_the_run_is_recorded_as_failed(here, monkeypatch):
    from playground import scenarios
    from playground.errors import UserExit

    def leave(config, run):
        run.log(0, {"x": 1.0})
        raise SystemExit(3)

    monkeypatch.setitem(scenarios.SCENARIOS, "toy", _scenario(run=leave))
    with pytest.raises(UserExit, match=r"SystemExit\(3\)"):
        main(["run", "toy", "--out", "r"])
    summary = summary_of(here / "r")
    assert summary["status"] == "failed" and summary["error"] == {"type": "SystemExit", "message": "3"}
    assert summary["last_logged"] == {"step": 0, "x": 1.0}


def test_a_bug_in_a_scenarios_check_is_recorded_as_failed(here, monkeypatch):
    from playground import scenarios

    def check(config, device):
        raise KeyError("check bug")

    monkeypatch.setitem(scenarios.SCENARIOS, "toy", _scenario(check=check))
    with pytest.raises(KeyError):
        main(["run", "toy", "steps=4", "--out", "r"])
    assert summary_of(here / "r")["error"] == {"type": "KeyError", "message": "'check bug'"}
    assert json.loads((here / "r" / "config.json").read_text())["config"]["steps"] == 4  # as built


@pytest.mark.parametrize(
    "error, said",
    [
        (
            lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
            "CUDA out of memory",
        ),
        (
            lambda: RuntimeError(
                "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                "you tried to allocate 80000000000 bytes. Error code 12 (Cannot allocate memory)"
            ),
            "DefaultCPUAllocator: can't allocate memory",
        ),
        (lambda: MemoryError(), "MemoryError"),
    ],
)
def test_out_of_memory_during_the_run_is_one_line_exit_1_and_recorded(here, monkeypatch, capsys, error, said):
    from playground import scenarios

    def allocate(config, run):
        run.log(0, {"x": 1.0})
        raise error()

    monkeypatch.setitem(scenarios.SCENARIOS, "toy", _scenario(run=allocate))
    assert main(["run", "toy", "steps=7", "--out", "r"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("playground: failed: out of cpu memory during the run (")
    assert said in err and err.endswith("); valid: lower steps=7\n")  # label=none is not a size given
    summary = summary_of(here / "r")
    assert summary["status"] == "failed" and summary["error"]["type"] == "OutOfMemory"
    assert summary["error"]["message"] == err.removeprefix("playground: failed: ").strip()
