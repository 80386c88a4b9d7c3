import subprocess
import sys
import types

import pytest
from child_env import HERE, cli_env


@pytest.fixture
def cli(tmp_path):
    """Run `python -m playground ARGS` in tmp_path; returns the CompletedProcess."""

    def call(*args, timeout=240, **kwargs):
        return subprocess.run(
            [sys.executable, "-m", "playground", *map(str, args)],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    return call


@pytest.fixture
def toy(monkeypatch):
    """The toy scenario registered in this process too (for in-process CLI calls)."""
    sys.path.insert(0, str(HERE))
    import toy_scenario

    from playground import scenarios

    monkeypatch.setitem(scenarios.SCENARIOS, "toy", toy_scenario.SCENARIO)
    return toy_scenario.SCENARIO


@pytest.fixture(scope="session")
def two_worker_sweep(tmp_path_factory):
    """`python -m playground sweep toy GRID --workers 2 --out parallel`, run once for the tests
    that read it (spawned workers each import torch afresh: the costliest command here)."""
    folder = tmp_path_factory.mktemp("two_workers")
    grid = ["toy", "noise=0.1,0.2", "seed=1,2", "steps=4"]
    done = subprocess.run(
        [sys.executable, "-m", "playground", "sweep", *grid, "--workers", "2", "--out", "parallel"],
        cwd=folder,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    return types.SimpleNamespace(grid=grid, out=folder / "parallel", done=done)
