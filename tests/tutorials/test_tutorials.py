"""Every tutorial under tutorials/ runs and ends on its known answer.

`make test` runs each in its quick form (PLAYGROUND_QUICK=1: a small budget at which its closing
assertion still holds), in the test's process; `make test-slow` at its full budget, as a script in
a process of its own. A tutorial is a percent-format script (`# %%` cells, prose in
`# %% [markdown]` cells) that asserts its result before it ends and prints the line
`known answer: ...` beside ours.
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import torch

from playground.runner import random_state_kept

TUTORIALS = sorted((Path(__file__).resolve().parents[2] / "tutorials").glob("[0-9]*.py"))


def run_tutorial(path: Path, cwd: Path, quick: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PLAYGROUND_QUICK": "1" if quick else "0"}
    return subprocess.run(
        [sys.executable, str(path)], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def test_there_is_one_tutorial_per_chapter():
    assert len(TUTORIALS) >= 6, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_a_tutorial_is_cells_of_prose_and_code(path):
    text = path.read_text()
    assert text.count("# %% [markdown]") >= 3 and text.count("\n# %%\n") >= 3
    assert "PLAYGROUND_QUICK" in text


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_a_tutorial_runs_to_its_known_answer_quickly(path, tmp_path, monkeypatch, capsys):
    """In this process (a fresh one would spend most of the quick form importing torch), as a
    script: its assertions are the test; what it changes of the process is put back."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PLAYGROUND_QUICK", "1")
    threads = torch.get_num_threads()
    try:
        with random_state_kept():
            runpy.run_path(str(path), run_name="__main__")
    finally:
        torch.set_num_threads(threads)
        plt.close("all")
    assert "known answer:" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_a_tutorial_runs_to_its_known_answer_at_full_budget(path, tmp_path):
    done = run_tutorial(path, tmp_path, quick=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "known answer:" in done.stdout
