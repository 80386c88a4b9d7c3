"""A sweep's ends: it replaces nothing of the user's, refuses a point before any runs, leaves a
clean stderr, and stops (locally or on Ray) with every point's outcome recorded."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from child_env import cli_env, free_port

from playground.cli import main
from playground.rundir import claim


def snapshot(root):
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def read_table(path):
    return list(csv.DictReader(path.read_text().splitlines()))


@pytest.fixture
def here(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_users_own_sweep_csv_is_left_alone(here, capsys, overwrite):
    (here / "mine").mkdir()
    (here / "mine" / "sweep.csv").write_text("my,own\n1,2\n")
    assert main(["sweep", "toy", "lr=0.1,0.2", "steps=2", "--out", "mine", *overwrite]) == 2
    assert "'mine' holds files playground did not mark as its own (sweep.csv;" in capsys.readouterr().err
    assert snapshot(here / "mine") == {"sweep.csv": b"my,own\n1,2\n"}


def test_a_sweep_rerun_into_its_own_directory_keeps_its_finished_points(here):
    args = ["sweep", "toy", "lr=0.1,0.2", "steps=2", "--out", "s"]
    assert main(args) == 0
    stamps = {p: p.stat().st_mtime_ns for p in (here / "s").glob("*/summary.json")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (here / "s").glob("*/summary.json")} == stamps
    assert [row["status"] for row in read_table(here / "s" / "sweep.csv")] == ["finished", "finished"]


def test_overwrite_refuses_a_sweep_while_one_of_its_points_is_in_use(here, capsys):
    assert main(["sweep", "toy", "lr=0.1,0.2", "steps=2", "--out", "s"]) == 0
    before = snapshot(here / "s")
    with claim(here / "s" / "lr=0.2,steps=2", keep=True):  # a run another process holds
        assert main(["sweep", "toy", "lr=0.3", "steps=2", "--out", "s", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'s/lr=0.2,steps=2' is in use by another playground process" in err[0]
    assert snapshot(here / "s") == before


def test_a_points_resources_are_checked_before_any_point_runs(here, capsys):
    cores = len(os.sched_getaffinity(0))
    args = ["sweep", "toy", "lr=0.1,0.2", f"threads=1,{cores + 1}", "steps=2", "--out", "s"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    refusal = f"threads={cores + 1} but this machine gives the run {cores} cores; valid: 0..{cores}"
    assert err == [f"playground: error: {refusal}"]
    assert list(here.iterdir()) == []  # no point ran, no directory made


def test_a_successful_sweep_with_workers_says_only_its_summary(two_worker_sweep):
    out = two_worker_sweep.done
    assert out.returncode == 0
    assert out.stdout == "sweep: 4 runs (4 finished), table parallel/sweep.csv\n"
    assert out.stderr == ""  # no "Exception ignored in atexit", no leaked-semaphore warning


def test_a_ray_address_where_nothing_listens_fails_at_once(here, capsys):
    pytest.importorskip("ray")
    address = f"127.0.0.1:{free_port()}"
    start = time.monotonic()
    assert main(["sweep", "toy", "lr=0.1", "--launcher", "ray", "--address", address, "--out", "s"]) == 2
    assert time.monotonic() - start < 30
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"playground: error: --address '{address}': no Ray cluster answers there (")
    assert not (here / "s").exists()


def test_a_ray_cluster_that_answers_but_cannot_be_joined_is_refused_in_one_line(here, capsys, monkeypatch):
    ray = pytest.importorskip("ray")

    def refused(**options):  # what ray.init raises after its retries, at a cluster that asks for a token
        raise ConnectionError("Failed to connect to Ray cluster at 192.0.2.2:6379")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refused)
    with socket.socket() as head:  # something answers there
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        assert main(["sweep", "toy", "lr=0.1", "--launcher", "ray", "--address", address, "--out", "s"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"playground: error: --address '{address}': Ray could not join the cluster there (Failed to connect "
        "to Ray cluster at 192.0.2.2:6379); a cluster that asks for a token (Ray 2.59 on turns it on for "
        "`ray start --head`) is joined with RAY_AUTH_MODE=token set here, and its token in "
        "~/.ray/auth_token or RAY_AUTH_TOKEN"
    ]
    assert not (here / "s").exists()


def test_a_sweep_with_a_point_nothing_ran_to_its_end_exits_1(here, monkeypatch, capsys):
    from playground import sweeps

    monkeypatch.setattr(sweeps, "run_point", lambda *job: "not run")  # its process killed, say
    assert main(["sweep", "toy", "lr=0.1,0.2", "steps=2", "--out", "s"]) == 1
    assert "sweep: 2 runs (2 not run)" in capsys.readouterr().out


@pytest.mark.parametrize("address", ["somehost", "somehost:port", "somehost:99999", ":6379", "somehost:²"])
def test_a_ray_address_that_is_not_host_port_is_refused(here, capsys, address):
    pytest.importorskip("ray")
    assert main(["sweep", "toy", "lr=0.1", "--launcher", "ray", "--address", address, "--out", "s"]) == 2
    assert f"--address '{address}' is not HOST:PORT" in capsys.readouterr().err
    assert list(here.iterdir()) == []


def descendants(pid):
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, of in parents.items() if of == parent]
        found += children
        todo += children
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # a local Ray and its workers take about 30 s to start here
def test_ctrl_c_on_a_ray_sweep_records_its_points_interrupted_and_ends_its_workers(tmp_path):
    pytest.importorskip("ray")
    args = ["sweep", "toy", "seed=1,2,3,4", "steps=400", "pause=0.05", "--launcher", "ray", "--out", "s"]
    process = subprocess.Popen(
        [sys.executable, "-m", "playground", *args],
        cwd=tmp_path,
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 180
    while time.time() < deadline and len(list((tmp_path / "s").glob("*/metrics.jsonl"))) < 2:
        time.sleep(0.2)
    time.sleep(1.0)
    ray_processes = descendants(process.pid)
    assert ray_processes
    process.send_signal(signal.SIGINT)  # the sweep's process alone: Ray cancels its tasks
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    statuses = sorted(row["status"] for row in read_table(tmp_path / "s" / "sweep.csv"))
    assert statuses == ["interrupted"] * 2 + ["not run"] * 2
    deadline = time.time() + 5
    while time.time() < deadline and any(map(alive, ray_processes)):
        time.sleep(0.2)
    assert [pid for pid in ray_processes if alive(pid)] == []


def test_a_point_whose_user_code_exits_while_its_config_is_built_is_recorded(here, monkeypatch, capsys):
    from playground.sweeps import run_point

    (here / "user_exits.py").write_text("def leaving():\n    raise SystemExit(0)\n")
    monkeypatch.syspath_prepend(str(here))
    monkeypatch.delitem(sys.modules, "user_exits", raising=False)
    assert run_point("game", {"game": "user_exits:leaving"}, str(here / "p")) == "failed"
    summary = json.loads((here / "p" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["error"] == {"type": "SystemExit", "message": "0"}
    assert "SystemExit: 0" in capsys.readouterr().err
