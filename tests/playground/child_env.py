"""The environment of a child `playground` process in these tests (a module of its own, so that
test files import it by a name no other folder's conftest shares)."""

import os
import socket
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PLAYGROUND_MODULES"] = "toy_scenario"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    if env.get("MUTANT_UNDER_TEST") == "stats":
        # `make mutate` maps tests to the functions they reach in this process only; a child run in
        # tmp_path would look for mutmut's configuration there. Children still run mutants.
        del env["MUTANT_UNDER_TEST"]
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port of this machine that nothing listens on (closed on return), for a child's
    rendezvous or Ray head."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
