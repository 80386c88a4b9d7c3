"""The grid the Ray Ctrl-C tests stop midway: two 1-step points that finish at once and two long
ones that are running when Ctrl-C comes (`toy`, seeds 1 and 2, 0.05 s a step)."""

import csv
import time


def grid(long_steps: int) -> list[str]:
    return ["toy", f"steps=1,{long_steps}", "seed=1,2", "pause=0.05"]


def points(out, steps: int) -> list:
    return [out / f"steps={steps},seed={seed},pause=0.05" for seed in (1, 2)]


def check_cancelled(out, long_steps: int) -> dict:
    """After Ctrl-C: sweep.csv says the short points finished and the long ones were interrupted,
    and nothing runs on (their metrics stop growing short of the end). Returns the finished
    points' summary.json mtimes, which a re-run must leave as they are."""
    with open(out / "sweep.csv") as table:
        statuses = {row["run"]: row["status"] for row in csv.DictReader(table)}
    short, long = points(out, 1), points(out, long_steps)
    assert statuses == {d.name: "finished" for d in short} | {d.name: "interrupted" for d in long}
    logged = {d: (d / "metrics.jsonl").read_text() for d in long}
    time.sleep(1.0)
    assert {d: (d / "metrics.jsonl").read_text() for d in long} == logged  # cancelled: nothing runs on
    assert all(len(text.splitlines()) < long_steps + 1 for text in logged.values())  # short of the end
    return summaries_written(short)


def summaries_written(finished) -> dict:
    """Each finished point's summary.json mtime, by point directory."""
    return {d: (d / "summary.json").stat().st_mtime_ns for d in finished}
