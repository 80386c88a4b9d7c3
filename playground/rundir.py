"""A run directory: the files a run writes there, the outcome its summary records, and the lock
that gives it to one run.

    config.json     the resolved config, seed, command line, package versions and device
    metrics.jsonl   one strict-JSON object per logged step
    summary.json    written atomically when the run ends, whatever the outcome, with its status
    checkpoint.pt   the state a resumed run continues from (scenarios that declare a Checkpoint)
    <name>.png      the scenario's figures
    tensorboard/    TensorBoard events, when asked for
    .lock           held while a process writes the directory

A sweep directory holds one run directory per grid point and `sweep.csv`, one row per point.

`claim` takes an advisory `flock` on the lock (released by the kernel when the process ends,
however it ends), so a second writer fails at once. A directory that already holds files is
refused unless the caller replaces them (`overwrite`) or continues them (`keep`, a run resumed in
place).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playground.errors import BadInput

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
FIGURE_SUFFIX = ".png"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
SWEEP_TABLE = "sweep.csv"

# The outcomes a summary records: the runner writes one of these as its `status`.
FINISHED, DIVERGED, INTERRUPTED, FAILED = "finished", "diverged", "interrupted", "failed"
# summary.json keys that measure what a run cost, not what it found: left out of result tables
COST_KEYS = ("wall_s", "peak_gpu_memory_mib")


def run_status(summary: Mapping[str, Any]) -> str:
    """The outcome of the run that wrote `summary`: the `status` it records (how the run ended:
    finished, interrupted or failed), where a finished run whose numbers diverged is `diverged`.
    A summary written before runs recorded a status is read from its keys."""
    ended = summary.get("status") or (
        INTERRUPTED if summary.get("interrupted") else FAILED if "error" in summary else FINISHED
    )
    return DIVERGED if ended == FINISHED and summary.get("diverged") else ended


def diverged(step: int, last_finite: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary keys of a run whose numbers stopped being finite at `step`, with the last
    finite value of each metric when the loop kept them."""
    record: dict[str, Any] = {"diverged": True, "diverged_step": step}
    if last_finite is not None:
        record["last_finite"] = last_finite
    return record


def resumes_in_place(resume: str | Path | None, directory: Path) -> bool:
    """Whether a run written to `directory` continues the checkpoint of that same directory."""
    return bool(resume) and Path(resume).resolve() == Path(directory).resolve()


def check_resume(resume: str | Path | None, scenario: str) -> None:
    """A `resume=` option names a run directory holding a checkpoint (checked when the config is
    built, before anything runs)."""
    if resume is not None and not (Path(resume) / CHECKPOINT).is_file():
        raise ValueError(
            f"resume={resume!r} holds no {CHECKPOINT}; valid: a {scenario} run directory "
            "written with checkpoint_every > 0"
        )


@contextmanager
def claim(directory: Path, overwrite: bool = False, keep: bool = False, what: str = "run") -> Iterator[Path]:
    """Hold `directory` exclusively for the body of the `with`; see the module docstring."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise BadInput(f"cannot write to --out {str(directory)!r}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(
                f"{str(directory)!r} is in use by another playground process; "
                "wait for it or choose another --out"
            ) from None
        others = sorted(p.name for p in directory.iterdir() if p.name != LOCK)
        if others and not keep:
            if not overwrite:
                shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
                raise BadInput(
                    f"{str(directory)!r} already holds another {what}'s files ({shown}); "
                    "pass --overwrite to replace them, or choose another --out"
                )
            for name in others:
                path = directory / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        yield directory
    finally:
        os.close(fd)
