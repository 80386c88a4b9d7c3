"""The run directory's schema, in one place: its file names, the outcome a summary records, and
the record of a diverged run."""

import re
from pathlib import Path

import pytest

from playground import rundir
from playground.rundir import diverged, run_status

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "summary, status",
    [
        ({"status": "finished", "diverged": False}, "finished"),
        ({"status": "diverged", "diverged": True}, "diverged"),
        ({"status": "failed", "diverged": True, "error": {"type": "RuntimeError"}}, "failed"),
        ({"status": "interrupted"}, "interrupted"),
        ({"status": "finished", "diverged": True}, "diverged"),  # the runner's own reading of its end
        # summaries written before runs recorded a status
        ({"diverged": False}, "finished"),
        ({"diverged": True, "diverged_step": 3}, "diverged"),
        ({"error": {"type": "RuntimeError"}, "diverged": True}, "failed"),
        ({"interrupted": True}, "interrupted"),
        ({}, "finished"),
    ],
)
def test_the_status_a_summary_records(summary, status):
    assert run_status(summary) == status


def test_the_diverged_record():
    assert diverged(7, {"loss": 0.5}) == {"diverged": True, "diverged_step": 7, "last_finite": {"loss": 0.5}}
    assert diverged(0, {}) == {"diverged": True, "diverged_step": 0, "last_finite": {}}
    assert diverged(3) == {"diverged": True, "diverged_step": 3}  # a loop that keeps no last values


def test_file_names_are_written_only_in_rundir():
    names = [rundir.CONFIG, rundir.METRICS, rundir.SUMMARY, rundir.CHECKPOINT, rundir.SWEEP_TABLE]
    quoted = re.compile("|".join(rf"[\"']{re.escape(name)}[\"']" for name in names))
    found = [
        f"{path.relative_to(REPO)}: {match.group()}"
        for folder in ("playground", "tools", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "rundir.py"
        for match in quoted.finditer(path.read_text())
    ]
    assert found == []
