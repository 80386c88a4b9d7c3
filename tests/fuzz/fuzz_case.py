"""One fuzz case: the CLI run in this process on an argv, and what it must hold to.

`run_case` calls `playground.cli.main(argv)` in a fresh directory, as `python -m playground` would
run it there: stdout and stderr captured through the encodings a terminal gives them (stdout
strict UTF-8, stderr with backslash escapes), Python's default warning filters (a warning is a
line on stderr), a time limit (SIGALRM raises `Hang`), and a cap on the address space so that an
allocation no check refused fails at once instead of taking the shared machine's memory. An
exception out of `main` is what the command line shows as a traceback and exit status 1.

`violations` lists what the outcome breaks of the README's promises: exit status 0 (finished or
diverged) or 2 (bad input); never a traceback; on exit 2 exactly one line on stderr and no run
written; every JSON file written strict, with a summary that has a status; nothing touched
outside --out but the paths the user named (`data_dir=`, `task.cache_dir=`, ...).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from playground.cli import main

OUT = "out"
GIB = 2**30
_STATUSES = ("finished", "diverged")


class Hang(BaseException):
    """The case ran past its time limit (a BaseException, so no `except Exception` swallows it)."""


@dataclass
class Outcome:
    argv: list[str]
    code: int | str  # the exit status, or "hang"
    stdout: str
    stderr: str
    crash: str | None = None  # the traceback of an exception out of main
    error: str = ""  # its type and the first line of its message
    written: list[str] = field(default_factory=list)  # files under --out, relative to it
    invalid_json: list[str] = field(default_factory=list)  # "file: why"
    status: object = None  # summary.json's status, or "missing"
    outside: list[str] = field(default_factory=list)  # paths changed outside --out


def run_case(argv: list[str], directory: Path, limit_s: float, memory_gib: float, allowed=()) -> Outcome:
    """Run `main(argv)` with `directory` as the working directory; `allowed` are paths (relative
    to it) a case may write besides --out."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keep.txt").write_text("a user's file beside the run directory\n")
    before = _tree(directory, allowed)
    stdout_bytes, stderr_bytes = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(stdout_bytes, encoding="utf-8", errors="strict", write_through=True)
    stderr = io.TextIOWrapper(stderr_bytes, encoding="utf-8", errors="backslashreplace", write_through=True)
    crash, error, shown = None, "", []
    _alarm.update(running=False, fired=False)
    cwd = os.getcwd()
    previous, outer, start = signal.signal(signal.SIGALRM, _hang), (0.0, 0.0), time.monotonic()
    memory = resource.getrlimit(resource.RLIMIT_AS)
    try:
        os.chdir(directory)
        resource.setrlimit(resource.RLIMIT_AS, (_vm_size() + int(memory_gib * GIB), memory[1]))
        # again each second: a swallowed Hang recurs; the timer it replaces (pytest-timeout's) resumes after
        outer = signal.setitimer(signal.ITIMER_REAL, limit_s, 1.0)
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(stderr),
            _default_warnings() as caught,
        ):
            try:
                _alarm["running"] = True
                code = main(list(argv))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            finally:
                _alarm["running"] = False
                shown = list(caught)
    except Hang:
        code = "hang"
    except BaseException as raised:  # what the command line shows as a traceback and exit status 1
        code, crash = 1, traceback.format_exc()
        error = f"{type(raised).__name__}: {(str(raised).strip().splitlines() or [''])[0][:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer[0] - (time.monotonic() - start), 1e-3), outer[1])
        resource.setrlimit(resource.RLIMIT_AS, memory)
        os.chdir(cwd)
    if _alarm["fired"]:
        code, crash = "hang", None
    err = stderr_bytes.getvalue().decode("utf-8", "backslashreplace")
    err += "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in shown)
    err += crash or ""  # what the command line prints, after what the run printed
    outcome = Outcome(list(argv), code, stdout_bytes.getvalue().decode("utf-8", "replace"), err, crash, error)
    _inspect(outcome, directory / OUT)
    after = _tree(directory, allowed)
    outcome.outside = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    return outcome


def _hang(signum, frame):
    if _alarm["running"]:
        _alarm["fired"] = True
        raise Hang()


# whether main is running, and whether the alarm fired in it: a Hang that library code caught and
# wrapped (TorchScript does) is a hang still
_alarm = {"running": False, "fired": False}


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def _default_warnings():
    """Python's default filters outside __main__ (pytest's are its own): each warning once per
    place, deprecations hidden."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        yield caught


def _tree(directory: Path, allowed) -> dict[str, bytes | None]:
    """Every path under `directory` but --out and `allowed`, with a file's bytes (None: a folder)."""
    skipped = [directory / OUT, *(directory / a for a in allowed)]
    found = {}
    for path in directory.rglob("*"):
        if any(path == s or s in path.parents for s in skipped):
            continue
        found[str(path.relative_to(directory))] = path.read_bytes() if path.is_file() else None
    return found


def _inspect(outcome: Outcome, out: Path) -> None:
    if not out.is_dir():
        return
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name == ".lock":
            continue
        name = str(path.relative_to(out))
        outcome.written.append(name)
        if path.suffix not in (".json", ".jsonl"):
            continue
        text = path.read_text(errors="replace")
        try:
            lines = lines_of(text) if path.suffix == ".jsonl" else [text]
            documents = [json.loads(line, parse_constant=_refuse) for line in lines]
        except ValueError as error:
            outcome.invalid_json.append(f"{name}: {error}")
            continue
        if name == "summary.json":
            outcome.status = documents[0].get("status", "missing") if isinstance(documents[0], dict) else None
    if outcome.written and outcome.status is None:
        outcome.status = "missing"


def _refuse(constant: str):
    raise ValueError(f"non-standard JSON constant {constant}")


def lines_of(text: str) -> list[str]:
    """`text`'s lines as a terminal or a log shows them: split at newlines only (str.splitlines also
    splits at \\x1c-\\x1e, \\x85 and \\u2028, which a value may hold and a terminal prints in line)."""
    return text.rstrip("\n").split("\n") if text.rstrip("\n") else []


def violations(outcome: Outcome) -> list[str]:
    """What `outcome` breaks, one short phrase each (empty: it holds)."""
    found = []
    if outcome.code == "hang":
        found.append("hang")
    elif outcome.code not in (0, 2):
        found.append(f"exit {outcome.code}")
    if outcome.crash or "Traceback (most recent call last)" in outcome.stderr + outcome.stdout:
        found.append("traceback")
    if outcome.code == 2 and len(lines_of(outcome.stderr)) != 1:
        found.append(f"exit 2 with {len(lines_of(outcome.stderr))} lines on stderr")
    if outcome.code == 2 and outcome.written:
        found.append("exit 2 after writing a run")
    if outcome.code == 0 and outcome.status not in _STATUSES:
        found.append(f"exit 0 with summary status {outcome.status!r}")
    if outcome.invalid_json:
        found.append("JSON not strict")
    if outcome.written and outcome.status in (None, "missing"):
        found.append("files written without a summary status")
    if outcome.outside:
        found.append("touched files outside --out")
    return found
