"""`torchrun --nproc_per_node 2 -m playground run maml ...` on the CPU (gloo): the run of one
process, written by rank 0 alone, resumable by any number of ranks; other scenarios refused."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from child_env import cli_env, free_port

from playground.cli import main

MAML = ["maml", "iterations=10", "eval_every=5", "eval_tasks=20", "log_every=1", "checkpoint_every=5"]


def playground(tmp_path, *args, ranks=1):
    """`playground run ARGS`, with `--nproc` (torchrun, standalone) for more ranks than one."""
    done = subprocess.run(
        [sys.executable, "-m", "playground", "run", *(["--nproc", str(ranks)] if ranks > 1 else []), *args],
        cwd=tmp_path,
        env=cli_env(TMPDIR=str(tmp_path / "tmp")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def losses(directory):
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    return torch.tensor([row["loss/meta_train"] for row in rows if "loss/meta_train" in row])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Ten meta-steps with 2 ranks (`--nproc 2`), then resumed to 20 by one process; 20 by one
    process."""
    tmp_path = tmp_path_factory.mktemp("ranks")
    (tmp_path / "tmp").mkdir()
    two = playground(tmp_path, *MAML, "--out", "two", ranks=2)
    playground(tmp_path, *MAML[:1], "iterations=20", *MAML[2:], "resume=two", "--out", "two")
    playground(tmp_path, *MAML[:1], "iterations=20", *MAML[2:], "--out", "one")
    return tmp_path, two


def test_two_ranks_train_the_curve_of_one_and_resume_as_one(runs):
    tmp_path, _ = runs
    one, two = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one) == len(two) == 20
    torch.testing.assert_close(two, one, rtol=1e-4, atol=0)
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("one", "two")]
    assert summaries[1]["eval/post_adapt_mse"] == pytest.approx(summaries[0]["eval/post_adapt_mse"], rel=1e-4)


def test_rank_zero_alone_writes_and_prints(runs):
    tmp_path, two = runs
    leftover = [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("playground")]
    assert leftover == []  # the other rank's scratch directory is gone (torch keeps its own there)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "tmp", "two"]
    assert two.stdout.count("two: eval/pre_adapt_mse=") == 1


@pytest.mark.parametrize(
    "args, said",
    [
        (["--nproc", "0", "maml"], "--nproc 0; valid: a whole number >= 1"),
        (
            ["--nproc", "2", "game"],
            "--nproc 2 with scenario 'game', which runs in one process; valid: a scenario",
        ),
        (["--nproc", "2", "maml", "meta_batch=0"], "meta_batch"),
    ],
)
def test_nproc_refuses_in_one_line_before_any_rank_starts(args, said, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", *args, "--out", "r"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and said in lines[0]
    assert not (tmp_path / "r").exists()


def test_a_scenario_that_runs_in_one_process_is_refused_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "game", "steps=3", "--out", str(tmp_path / "g")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "scenario 'game' runs in one process; valid under torchrun (WORLD_SIZE=2)" in line
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("stop", ["rank 1 killed", "ctrl-c"])
def test_a_killed_rank_stops_the_run_which_keeps_its_log_and_resumes(tmp_path, stop):
    """SIGKILL to rank 1: rank 0 stops (its collective fails, or torchrun ends it), its run recorded
    as failed or interrupted; Ctrl-C at the terminal (SIGINT to torchrun and its ranks): recorded as
    interrupted. Either way the metrics and checkpoint are kept, no process is left, and one
    process resumes the run to the end."""
    options = ["maml", "iterations=3000", "eval_every=0", "eval_tasks=20", "checkpoint_every=20"]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port())]
    torchrun = subprocess.Popen(
        [sys.executable, *launcher, "-m", "playground", "run", *options, "--out", "run"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C reaches the whole foreground process group
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-P", str(torchrun.pid)], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2 and (tmp_path / "run" / "checkpoint.pt").exists()
    if stop == "ctrl-c":
        os.killpg(torchrun.pid, signal.SIGINT)
    else:
        os.kill(int(ranks[1]), signal.SIGKILL)
    assert torchrun.wait(timeout=120) != 0
    assert all(subprocess.run(["kill", "-0", pid], capture_output=True).returncode != 0 for pid in ranks)
    assert subprocess.run(["pgrep", "-s", str(torchrun.pid)], capture_output=True).stdout == b""  # none left
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    recorded = ("interrupted",) if stop == "ctrl-c" else ("interrupted", "failed")
    assert summary["status"] in recorded and summary["last_logged"]["step"] >= 20
    logged = losses(tmp_path / "run")
    playground(tmp_path, *options[:1], "iterations=100", *options[2:], "resume=run", "--out", "run")
    resumed = losses(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"
    assert len(resumed) == 10 and len(logged) >= 2
