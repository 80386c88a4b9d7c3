"""A sweep through the CLI on a cluster made as a user makes one: `ray start --head` (no CPUs) and a
second node joined by `ray start --address` (two CPUs), both with token authentication, as Ray
turns it on for `ray start --head` from 2.59. Points run on the second node; Ctrl-C on the sweep
cancels the remote points, which record themselves interrupted; a re-run redoes only those.
Slow (`make test-slow`): two Ray nodes start in about 20 s, then their workers import torch."""

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cancelled_grid import check_cancelled, grid, points, summaries_written
from child_env import cli_env, free_port

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


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
    while "block forever" not in Path(log.name).read_text():
        assert process.poll() is None and time.time() < deadline, Path(log.name).read_text()
        time.sleep(0.5)
    return process


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The head's address and the environment that joins it (the token in RAY_AUTH_TOKEN, so no
    file of the user's is written)."""
    env = cli_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    port = free_port()
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
    command = [sys.executable, "-m", "playground", "sweep", *grid(200), "--launcher", "ray"]
    return subprocess.Popen(
        [*command, "--address", address, "--out", "s"],
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
    running = points(out, 200)
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
    finished = check_cancelled(out, 200)
    rerun = _sweep(address, env, tmp_path)
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, stderr
    assert "sweep: 4 runs (4 finished)" in stdout
    assert summaries_written(finished) == finished
