"""A sweep through the CLI on a cluster made as a user makes one: `ray start --head` (no CPUs) and a
second node joined by `ray start --address` (two CPUs), both with token authentication, as Ray
turns it on for `ray start --head` from 2.59. Points run on the second node; Ctrl-C on the sweep
cancels the remote points, which record themselves interrupted; a re-run redoes only those.
Slow (`make test-slow`): two Ray nodes start in about 20 s, then their workers import torch."""

import csv
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest
from child_env import cli_env

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(args: list[str], env: dict, log) -> subprocess.Popen:
    """`ray start ... --block` in a session of its own; returns once it says it blocks."""
    process = subprocess.Popen(
        [RAY, "start", *args, "--disable-usage-stats", "--block"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while "block forever" not in open(log.name).read():
        assert process.poll() is None and time.time() < deadline, open(log.name).read()
        time.sleep(0.5)
    return process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The head's address and the environment that joins it (the token in RAY_AUTH_TOKEN, so no
    file of the user's is written)."""
    env = cli_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    port = _free_port()
    logs = tmp_path_factory.mktemp("ray")
    nodes = []
    try:
        with open(logs / "head.log", "w") as head_log, open(logs / "node.log", "w") as node_log:
            head = ["--head", "--num-cpus", "0", "--port", str(port), "--include-dashboard", "false"]
            nodes.append(_start(head, env, head_log))
            nodes.append(_start(["--address", f"127.0.0.1:{port}", "--num-cpus", "2"], env, node_log))
            yield f"127.0.0.1:{port}", env
    finally:
        for node in reversed(nodes):  # `ray start --block` stops what it started on SIGTERM
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(timeout=60)


def _sweep(address: str, env: dict, cwd, **popen) -> subprocess.Popen:
    grid = ["toy", "steps=1,200", "seed=1,2", "pause=0.05"]
    command = [sys.executable, "-m", "playground", "sweep", *grid, "--launcher", "ray", "--address", address]
    return subprocess.Popen(
        [*command, "--out", "s"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_ctrl_c_on_a_cli_sweep_cancels_the_remote_points_and_a_rerun_redoes_only_those(cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "s"
    running = [out / f"steps=200,seed={seed},pause=0.05" for seed in (1, 2)]
    # a terminal's Ctrl-C reaches the whole foreground process group
    process = _sweep(
        address,
        env,
        tmp_path,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 240
    while not all((d / "metrics.jsonl").exists() for d in running):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    with open(out / "sweep.csv") as table:
        statuses = {row["run"]: row["status"] for row in csv.DictReader(table)}
    assert statuses == {
        "steps=1,seed=1,pause=0.05": "finished",
        "steps=1,seed=2,pause=0.05": "finished",
        "steps=200,seed=1,pause=0.05": "interrupted",
        "steps=200,seed=2,pause=0.05": "interrupted",
    }
    logged = {d: (d / "metrics.jsonl").read_text() for d in running}
    time.sleep(1.0)
    assert {d: (d / "metrics.jsonl").read_text() for d in running} == logged  # nothing runs on
    finished = [out / f"steps=1,seed={seed},pause=0.05" / "summary.json" for seed in (1, 2)]
    written = [path.stat().st_mtime_ns for path in finished]
    rerun = _sweep(address, env, tmp_path)
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, stderr
    assert "sweep: 4 runs (4 finished)" in stdout
    assert [path.stat().st_mtime_ns for path in finished] == written
