import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PLAYGROUND_SCENARIOS"] = "toy_scenario"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    if env.get("MUTANT_UNDER_TEST") == "stats":
        # `make mutate` maps tests to the functions they reach in this process only; a child run in
        # tmp_path would look for mutmut's configuration there. Children still run mutants.
        del env["MUTANT_UNDER_TEST"]
    env.update(extra)
    return env


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
