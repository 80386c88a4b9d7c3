"""A run directory: the files a run writes there, the outcome its summary records, and the lock
that gives it to one run.

    config.json     the resolved config, seed, command line, device and the code (`playground.provenance`):
                    package versions, git commit, uncommitted changes and their hash
    metrics.jsonl   one strict-JSON object per logged step
    summary.json    written atomically when the run ends, whatever the outcome, with its status
    checkpoint.pt   the state a resumed run continues from (scenarios that declare a Checkpoint)
    <name>.png      the scenario's figures
    tensorboard/    TensorBoard events, when asked for
    .playground     the marker: {"kind": "run"}, written when playground takes the directory
    .lock           held while a process writes the directory

A sweep directory holds its marker ({"kind": "sweep"}), `sweep.csv` (one row per grid point) and
one run directory per point.

`claim` takes an advisory `flock` on the lock (released by the kernel when the process ends,
however it ends), so a second writer fails at once, and marks the directory as playground's. The
marker, never a guess from file names, is what makes a directory playground's. A directory that
holds files (besides its marker and lock) is refused unless the caller replaces them (`overwrite`)
or continues them (`keep`: a run resumed in place, a sweep re-run; `keep` wins over `overwrite`),
and either needs the marker: a directory without one (the user's own, or one written before
playground marked its directories) is never written into or deleted; its owner deletes it. `keep`
needs the marker of its own kind. `overwrite` also refuses a sweep directory holding anything but
its table and marked run directories, and a tree with any `.lock` below it held by another process;
it checks everything, and holds those locks, before it deletes anything. A refusal is `BadInput`
and leaves every file as it was: the checks run before the lock file is created, and again under
the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playground.errors import BadInput
from playground.files import write_json

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
FIGURE_SUFFIX = ".png"
TENSORBOARD = "tensorboard"
LOCK = ".lock"
MARKER = ".playground"
SWEEP_TABLE = "sweep.csv"

# The kinds of directory playground makes, as its marker names them
RUN, SWEEP = "run", "sweep"

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
    built, before anything runs). A name the file system cannot look up (too long, say) is refused
    alike, with its reason."""
    if resume is None:
        return
    try:
        found = (Path(resume) / CHECKPOINT).is_file()
    except OSError as error:  # is_file answers False only for a missing file or folder
        raise ValueError(
            f"resume={resume!r} names no readable run directory ({error.strerror}); valid: a {scenario} "
            "run directory written with checkpoint_every > 0"
        ) from None
    if not found:
        raise ValueError(
            f"resume={resume!r} holds no {CHECKPOINT}; valid: a {scenario} run directory "
            "written with checkpoint_every > 0"
        )


@contextmanager
def claim(directory: Path, overwrite: bool = False, keep: bool = False, what: str = RUN) -> Iterator[Path]:
    """Hold `directory` exclusively for the body of the `with`, marked as playground's `what` (run
    or sweep); see the module docstring."""
    directory = Path(directory)
    replace = overwrite and not keep
    _check_takeable(directory, replace, keep, what)  # before the lock file exists: a refusal leaves no trace
    fd = _lock(directory)
    try:
        _check_takeable(directory, replace, keep, what)  # again: another process may have written meanwhile
        if replace:
            _clear(directory)
        if _kind(directory) != what:
            write_json(directory / MARKER, {"kind": what})
        yield directory
    finally:
        os.close(fd)


def _kind(directory: Path) -> str | None:
    """The kind of directory (run or sweep) its marker names; None where it has no valid marker."""
    path = directory / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with open(path) as f:
            kind = json.loads(f.read(256)).get("kind")
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not an object
        return None
    return kind if kind in (RUN, SWEEP) else None


def _contents(directory: Path) -> list[str]:
    """The names in `directory` but its lock and its marker; [] where it does not exist yet."""
    ours = {LOCK, MARKER} if _kind(directory) else {LOCK}
    try:
        return sorted(p.name for p in directory.iterdir() if p.name not in ours)
    except FileNotFoundError:
        return []
    except OSError as error:  # not a directory, not readable
        raise BadInput(f"cannot write to --out {str(directory)!r}: {error.strerror or error}") from None


def _check_takeable(directory: Path, replace: bool, keep: bool, what: str) -> None:
    held = _contents(directory)
    if not held:
        return
    where, kind = str(directory), _kind(directory)
    if kind is None:
        raise BadInput(
            f"{where!r} holds files playground did not mark as its own ({_show(held)}; no {MARKER}), "
            "so they are left alone; valid: a new or empty --out, or a directory playground wrote "
            "(one written before playground marked its directories: delete it yourself)"
        )
    if not (replace or keep):
        raise BadInput(
            f"{where!r} already holds another {what}'s files ({_show(held)}); "
            "pass --overwrite to replace them, or choose another --out"
        )
    if keep and kind != what:
        raise BadInput(
            f"--out {where!r} is a {kind} directory, not a {what}'s; "
            "choose another --out, or pass --overwrite to replace it"
        )
    if replace and kind == SWEEP:
        foreign = [name for name in held if not _sweeps_own(directory / name)]
        if foreign:
            raise BadInput(
                f"sweep directory {where!r} also holds {_show(foreign)}, which playground did not write, "
                "so --overwrite leaves it alone; valid: move them out, or delete it yourself"
            )


def _sweeps_own(path: Path) -> bool:
    """Whether `path`, in a sweep directory, is the sweep's: its table, a temporary file an atomic
    write of it or of the marker left behind (a killed process), or a point's run directory."""
    name = path.name
    left_behind = name.endswith(".tmp") and name.startswith((f".{SWEEP_TABLE}.", f".{MARKER}."))
    if name == SWEEP_TABLE or left_behind:
        return path.is_file() and not path.is_symlink()
    if path.is_symlink() or not path.is_dir():
        return False
    return _kind(path) == RUN or not _contents(path)  # a point killed before its marker: empty


def _show(names: list[str]) -> str:
    return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")


def _lock(directory: Path) -> int:
    """Create `directory` if need be and take its lock; the lock's file descriptor."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise BadInput(f"cannot write to --out {str(directory)!r}: {error.strerror or error}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BadInput(
            f"{str(directory)!r} is in use by another playground process; wait for it or choose another --out"
        ) from None
    return fd


def _clear(directory: Path) -> None:
    """Delete everything in `directory` but its own lock, holding every lock below it while it
    does (a sweep's points each have one): one held by another process refuses the whole,
    before anything is deleted."""
    below = [
        Path(root) / LOCK
        for root, _, files in os.walk(directory)
        if LOCK in files and Path(root) != directory and not (Path(root) / LOCK).is_symlink()
    ]
    held: list[int] = []
    try:
        for lock in below:
            try:
                held.append(os.open(lock, os.O_RDONLY))
                fcntl.flock(held[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BadInput(
                    f"{str(lock.parent)!r} is in use by another playground process, so {str(directory)!r} "
                    "is not replaced; wait for it or choose another --out"
                ) from None
            except OSError as error:
                reason = error.strerror or error
                raise BadInput(f"cannot replace {str(directory)!r}: {lock}: {reason}") from None
        for path in directory.iterdir():
            if path.name == LOCK:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    finally:
        for fd in held:
            os.close(fd)
