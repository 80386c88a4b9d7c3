import subprocess
import sys

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
