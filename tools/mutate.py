"""Mutation testing of the core modules: `python tools/mutate.py [MODULE ...]` (`make mutate`).

mutmut 3 (configured under [tool.mutmut] in pyproject.toml, whose `only_mutate` lists the core
modules) copies the libraries into `mutants/`, changes one operator, constant or argument at a time
and runs the tests that `make test` runs and that reach the changed function; a mutant that no test
fails survives. This script runs it on the named modules (paths such as bilevel/solvers.py; default
every core module), then writes tools/mutation/report.md: per module the mutants, those killed (a
test failed or timed out), those judged equivalent (behaviour unchanged; each with its one-line
reason in tools/mutation/equivalents.txt, `name @hash: reason`), and the survivors, listed by
name, with why they survive where tools/mutation/survivors.txt says (such as a line only a GPU
runs). Rows of modules not run this time are kept from the last report.

mutmut keeps its results in `mutants/`. The default run (no module named) retests only what is
undecided: mutants whose function changed, those not yet run, and, reset here first, those that
survived or had no test (the tests may have changed since). A named module is retested whole, since
mutmut reruns every mutant it is given by name, cached or not; `--fresh` deletes the cache and
retests everything. Ctrl-C stops the run and still writes the report, the mutants not reached
counted as not yet run; the next default run picks up from there. The map from each function to the
tests that reach it is rebuilt on every run (one traced run of the suite): mutmut extends it only
with new tests, so an old test that has come to reach a function would go unseen and its mutants
would be counted as survivors.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "tools" / "mutation" / "report.md"
EQUIVALENTS = REPO / "tools" / "mutation" / "equivalents.txt"
SURVIVORS = REPO / "tools" / "mutation" / "survivors.txt"
# A timeout (it ran past its budget) and a crash of the test process are mutants the tests noticed.
_KILLED = {"killed", "timeout", "segfault"}
_UNDECIDED = {0, 5, 33}  # mutmut's exit codes for "survived" and "no tests"
_HEADER = (
    "| module | mutants | killed | equivalent | surviving | not yet run | "
    "killed of those that change behaviour |"
)


def core_modules() -> list[str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def module_of(mutant: str) -> str:
    """`bilevel.solvers.x_dense_solve__mutmut_6` -> `bilevel/solvers.py` (methods: `xǁClassǁname`;
    a package's own module: `registration.x_make` -> `registration/__init__.py`)."""
    path = mutant.split(".x_")[0].split(".xǁ")[0].replace(".", "/")
    return f"{path}/__init__.py" if (REPO / path).is_dir() else f"{path}.py"


def retest_undecided(modules: list[str]) -> int:
    """Clear mutmut's cached verdict of every mutant of `modules` that survived or had no test, so
    the next run tests it against today's tests (mutmut itself retests only changed code). A
    mutant judged equivalent (its reason in EQUIVALENTS) is not retested: no test can kill it, and
    mutmut retests it anyway once its function's code changes."""
    count = 0
    reasons = equivalents()
    for module in modules:
        meta = REPO / "mutants" / f"{module}.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for name, code in codes.items():
            if code in _UNDECIDED and name not in reasons:
                codes[name] = None
                count += 1
        meta.write_text(json.dumps(data, indent=4))
    return count


def drop_stale_copies() -> None:
    """Delete mutmut's copies of the tests and of `also_copy`: it copies them anew on every run
    but never deletes, so a module or test removed since would linger in mutants/ (a renamed
    module's old file, found by a test that walks its package, fails the first, traced run)."""
    if not (REPO / "mutants").is_dir():
        return
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    for name in ["tests", *settings.get("also_copy", [])]:
        copy = REPO / "mutants" / name
        if copy.is_dir():
            shutil.rmtree(copy)
        else:
            copy.unlink(missing_ok=True)


def results() -> dict[str, str]:
    """mutant name -> status, from mutmut's cache."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"^\s*(\S+): (.+?)\s*$", out, flags=re.M))


def equivalents() -> dict[str, str]:
    return _reasons(EQUIVALENTS)[0]


def _reasons(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The `name @hash: reason` lines of `path`, split into those written for the mutated
    function as it is now (`hash` is mutmut's hash of its source) and stale ones: the function has
    changed since, and mutmut numbers its mutants anew, so a stale reason may describe another
    mutant."""
    current, stale = {}, {}
    lines = path.read_text().splitlines() if path.exists() else []
    for line in lines:
        if line.strip() and not line.startswith("#"):
            head, reason = line.split(": ", 1)
            name, _, written_for = head.partition(" @")
            (current if written_for == function_hash(name) else stale)[name] = reason
    return current, stale


def function_hash(mutant: str) -> str | None:
    """mutmut's hash of the source of the function `mutant` mutates (None before mutmut has run)."""
    meta = REPO / "mutants" / f"{module_of(mutant)}.meta"
    hashes = json.loads(meta.read_text()).get("hash_by_function_name", {}) if meta.exists() else {}
    return hashes.get(mutant.rsplit("__mutmut_", 1)[0].split(".")[-1])


def summarise(
    module: str, statuses: dict[str, str], reasons: dict[str, str], why: dict[str, str] | None = None
) -> tuple[str, str]:
    """The module's table row and its section: equivalent mutants with `reasons`, then survivors,
    each with its entry in `why` where it has one. Survivors count against the score, explained or
    not."""
    mine = {name: status for name, status in statuses.items() if module_of(name) == module}
    pending = [name for name, status in mine.items() if status == "not checked"]
    decided = {name: status for name, status in mine.items() if status != "not checked"}
    killed = [name for name, status in decided.items() if status in _KILLED]
    equivalent = [name for name, status in decided.items() if status not in _KILLED and name in reasons]
    surviving = [name for name, status in decided.items() if status not in _KILLED and name not in reasons]
    behaving = len(killed) + len(surviving)
    score = f"{100 * len(killed) / behaving:.1f}%" if behaving else "—"
    counts = (len(mine), len(killed), len(equivalent), len(surviving), len(pending))
    row = f"| `{module}` | {' | '.join(map(str, counts))} | {score} |"
    lines = [f"### `{module}`", ""]
    lines += [f"- equivalent `{name}`: {reasons[name]}" for name in equivalent]
    why = why or {}
    for name in surviving:  # with the hash a reason for it must name (`name @hash: reason`)
        written_for = f" @{source}" if (source := function_hash(name)) else ""
        explained = f": {why[name]}" if name in why else ""
        lines.append(f"- **surviving** `{name}{written_for}` ({mine[name]}){explained}")
    if pending:
        lines.append(f"- not yet run: {len(pending)} (the run stopped before them)")
    if len(lines) == 2:
        lines.append("- every mutant killed")
    return row, "\n".join(lines)


def previous() -> tuple[dict[str, str], dict[str, str]]:
    """Rows and sections of the last report, by module."""
    if not REPORT.exists():
        return {}, {}
    text = REPORT.read_text()
    rows = dict(re.findall(r"^\| `([^`]+)` (\|.*)$", text, flags=re.M))
    sections = dict(re.findall(r"^### `([^`]+)`\n(.*?)(?=^### |\Z)", text, flags=re.M | re.S))
    return (
        {m: f"| `{m}` {row}" for m, row in rows.items()},
        {m: f"### `{m}`\n{body.rstrip()}" for m, body in sections.items()},
    )


def write_report(run: list[str], statuses: dict[str, str], minutes: float) -> str:
    rows, sections = previous()
    (reasons, stale), (why, stale_why) = _reasons(EQUIVALENTS), _reasons(SURVIVORS)
    why |= dict.fromkeys(stale | stale_why, "its reason was written for an earlier version of its function")
    for module in run:
        rows[module], sections[module] = summarise(module, statuses, reasons, why)
    order = [m for m in core_modules() if m in rows]
    totals = [sum(int(rows[m].split("|")[k]) for m in order) for k in (2, 3, 4, 5, 6)]
    behaving = totals[1] + totals[3]
    named = "every core module" if run == core_modules() else ", ".join(f"`{m}`" for m in run)
    total_row = f"| all | {' | '.join(map(str, totals))} | {100 * totals[1] / max(behaving, 1):.1f}% |"
    text = "\n".join(
        [
            "# Mutation testing of the core modules",
            "",
            "Written by `make mutate` (tools/mutate.py, mutmut 3.8.1) against the tests `make test` runs. "
            f"Last run: {named}, {minutes:.0f} minutes on the 2-core machine.",
            "",
            _HEADER,
            "|---|---|---|---|---|---|---|",
            *(rows[m] for m in order),
            total_row,
            "",
            "## Equivalent and surviving mutants",
            "",
            *(sections[m] + "\n" for m in order),
        ]
    )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(text.rstrip() + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="core modules to mutate (default: all of them)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--fresh", action="store_true", help="delete mutmut's cache (mutants/) first")
    args = parser.parse_args(argv)
    core = core_modules()
    unknown = [m for m in args.modules if m not in core]
    if unknown:
        print(f"mutate: not a core module: {', '.join(unknown)}; valid: {', '.join(core)}", file=sys.stderr)
        return 2
    modules = args.modules or core
    if args.fresh:
        shutil.rmtree(REPO / "mutants", ignore_errors=True)
    print(f"mutate: {retest_undecided(modules)} surviving or untested mutants to retest")
    drop_stale_copies()
    (REPO / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # the tests-to-functions map
    patterns = [
        m.removesuffix(".py").removesuffix("/__init__").replace("/", ".") + ".x*" for m in args.modules
    ]
    start = time.perf_counter()
    try:
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *patterns],
            cwd=REPO,
            check=True,
        )
    except KeyboardInterrupt:  # stopped: the mutants decided so far are reported, the rest as not yet run
        print("mutate: interrupted; reporting the mutants decided so far", file=sys.stderr)
        write_report(modules, results(), (time.perf_counter() - start) / 60)
        return 130
    text = write_report(modules, results(), (time.perf_counter() - start) / 60)
    print(text.split("## Equivalent")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
