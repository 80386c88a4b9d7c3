"""Sweeps on a Ray cluster of two nodes on this machine (`ray.cluster_utils.Cluster`): a head with
no CPUs, so every point runs on the other node; requests no node can meet refused before anything
is written; nodes that do not see the sweep directory or run other code named; Ctrl-C cancels the
remote points, which record themselves interrupted, and a re-run redoes only those."""

import os
import signal
import threading
import time

import pytest
from cancelled_grid import check_cancelled, grid, points, summaries_written
from child_env import cli_env

from playground.cli import main
from playground.sweeps import differences

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def address():
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:  # the nodes' workers find the toy scenario
        for name, value in cli_env().items():
            patch.setenv(name, value)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
    yield cluster.address
    ray.shutdown()
    cluster.shutdown()


def test_every_point_runs_on_the_node_with_cpus(address, tmp_path, capsys):
    out = tmp_path / "s"
    args = [
        "sweep",
        "game",
        "lr=0.1,0.2",
        "steps=5",
        "plots=false",
        "--launcher",
        "ray",
        "--address",
        address,
    ]
    assert main([*args, "--out", str(out)]) == 0
    assert "sweep: 2 runs (2 finished)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "lr=0.1,steps=5,plots=false",
        "lr=0.2,steps=5,plots=false",
    ]
    assert not list(out.glob(".node-probe-*"))  # the nodes' probe is gone


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--cpus-per-point", "4"],
            "--cpus-per-point 4 --gpus-per-point 0: no node of the Ray cluster has as much",
        ),
        (
            ["--gpus-per-point", "1"],
            "--cpus-per-point 1 --gpus-per-point 1: no node of the Ray cluster has as much",
        ),
    ],
)
def test_a_point_larger_than_every_node_is_refused_before_anything_is_written(
    address, tmp_path, capsys, flags, message
):
    out = tmp_path / "s"
    args = ["sweep", "game", "lr=0.1", "steps=5", "--launcher", "ray", "--address", address, *flags]
    assert main([*args, "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert message in line and "0 CPUs, 0 GPUs" in line and "2 CPUs, 0 GPUs" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--cpus-per-point", "2"], "--cpus-per-point applies to --launcher ray, not local"),
        (["--launcher", "ray", "--cpus-per-point", "0"], "--cpus-per-point 0; valid: a number > 0"),
        (["--launcher", "ray", "--gpus-per-point", "-1"], "--gpus-per-point -1; valid: a number >= 0"),
    ],
)
def test_resource_flags_are_checked(tmp_path, capsys, flags, message):
    assert main(["sweep", "game", "lr=0.1", *flags, "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip().endswith(message)


HERE = {
    "host": "a",
    "sees the sweep directory": True,
    "python": "3.11.7",
    "torch": "2.14.1",
    "playground": "0.1.0",
}


@pytest.mark.parametrize(
    "there, said",
    [
        ({}, None),
        (
            {"sees the sweep directory": False},
            "does not see the sweep directory: give --out a directory every node shares (NFS, say)",
        ),
        ({"torch": "2.13.0"}, "runs other code: torch 2.13.0 there, 2.14.1 here"),
        (
            {"playground_commit": "b" * 40},
            f"runs other code: playground_commit {'b' * 40} there, {'a' * 40} here",
        ),
    ],
)
def test_a_node_that_differs_is_named_with_what_differs(there, said):
    here = HERE | {"playground_commit": "a" * 40}
    assert differences(here | {"host": "b"} | there, here) == said


def test_ctrl_c_cancels_the_remote_points_and_a_rerun_redoes_only_those(address, toy, tmp_path, capsys):
    out = tmp_path / "s"
    args = ["sweep", *grid(100), "--launcher", "ray", "--address", address, "--out", str(out)]
    running, start, sent = points(out, 100), time.monotonic(), []

    def ctrl_c_once_both_long_points_log():
        deadline = time.time() + 120
        while time.time() < deadline and not all((d / "metrics.jsonl").exists() for d in running):
            time.sleep(0.1)
        time.sleep(0.5)
        sent.append(time.monotonic() - start)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=ctrl_c_once_both_long_points_log, daemon=True).start()
    code = main(args)
    assert code == 130, f"exit {code} after {time.monotonic() - start:.1f} s; SIGINT sent at {sent} s"
    finished = check_cancelled(out, 100)
    capsys.readouterr()
    assert main(args) == 0
    assert "sweep: 4 runs (4 finished)" in capsys.readouterr().out
    assert summaries_written(finished) == finished
