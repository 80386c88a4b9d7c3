"""playground from Python: `run`, `sweep` and `report`, the jobs the command line runs, on one path.

    import playground
    result = playground.run("game", game="bilinear", dynamics="sim_gd", lr=0.1, steps=200)
    result.summary["rate/measured"], result.metrics["dist"]      # see playground.results

Options are Python values (`lr=0.1`, `init=(1.0, 1.0)`, `resume=None`), and a factory's options are
a dict under the config's `<kind>_options` field (`dynamics_options={"gamma": 0.5}`) or the CLI's
dotted name (`**{"dynamics.gamma": 0.5}`). Each value is written as the text the CLI reads
(`playground.config.format_value`) and goes through the CLI's parser, bounds and checks, so what
`playground run` refuses is refused here with the same one line, raised as `BadInput` (a
`ValueError`; never `SystemExit`), spelled for Python (`overwrite=True` where the CLI says
`--overwrite`). The run directory, its files and its numbers are the CLI's, and config.json records
the `playground run` command that reproduces the run. A run leaves the caller's global random state
(Python's, numpy's, torch's) as it found it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import time
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playground.config import build_config, format_value
from playground.errors import BadInput, UserExit
from playground.results import Result, load
from playground.rundir import INTERRUPTED
from playground.scenario import Scenario
from reporting import History


def run(
    scenario: str | Scenario,
    out: str | Path | None = None,
    *,
    overwrite: bool = False,
    progress: bool | None = None,
    **options: Any,
) -> Result:
    """Run `scenario` (a registered name, `module:SCENARIO`, or a `Scenario`) with `options` into
    `out` (default runs/SCENARIO/<timestamp>), replacing what `out` holds only with `overwrite`;
    `progress` shows a bar (default: on a terminal or in a notebook). Returns the run's `Result`,
    whatever its status (a diverged run is a result); Ctrl-C is raised again once the run has
    recorded it, and a bug in the run is raised after summary.json records it as failed."""
    with _spelled_for_python():
        found = _scenario(scenario)
        return run_overrides(found, option_texts(found.config, options), out, overwrite, progress)


def sweep(
    scenario: str,
    grid: Mapping[str, Sequence[Any]],
    out: str | Path | None = None,
    *,
    workers: int = 1,
    launcher: str = "local",
    address: str | None = None,
    overwrite: bool = False,
    cpus_per_point: float | None = None,
    gpus_per_point: float | None = None,
    **options: Any,
) -> Sweep:
    """Every combination of `grid`'s values (option -> the values it takes; a list-valued option
    takes a list of tuples), with `options` fixed, one run directory each under `out` (default
    runs/SCENARIO-sweep/<timestamp>), as `playground sweep` runs it: `workers` processes at once,
    or Ray's (`launcher="ray"`, `address` of a cluster, default a local Ray; each point asks it for
    `cpus_per_point` CPUs, default 1, and `gpus_per_point` GPUs, default 0). A sweep re-run into
    the same `out` keeps the points that finished. Returns a `Sweep`; a failed point is a row of
    it, Ctrl-C is raised again."""
    with _spelled_for_python():
        if not isinstance(scenario, str):  # each point finds its scenario again, in its own process
            raise BadInput(
                f"sweep of a {type(scenario).__name__}: its points look the scenario up in their own "
                "processes; valid: a scenario's name, or module:SCENARIO"
            )
        from playground.sweeps import separator

        found = _scenario(scenario)
        hints = typing.get_type_hints(found.config)
        axes = []
        for key, values in grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise BadInput(f"grid[{key!r}] = {values!r}; valid: a list of the values {key} takes")
            texts = [format_value(value) for value in values]
            axes.append((key, separator(hints.get(key)).join(texts)))
        axes += list(option_texts(found.config, options).items())
        return sweep_overrides(
            scenario, axes, out, workers, launcher, address, overwrite, cpus_per_point, gpus_per_point
        )


def report(paths: str | Path | Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Write the HTML page comparing the runs at or under `paths` to `out` (default report.html
    in the first path); returns its path."""
    from playground.page import write_report

    with _spelled_for_python():
        paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        return write_report(paths, Path(out) if out is not None else paths[0] / "report.html")


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A sweep's outcome: its directory, `table` (the path of sweep.csv), and for each grid point
    (in grid order) its options as the text the CLI reads (its Result's `config` has them typed),
    its status (as sweep.csv's `status` column) and its `Result`."""

    dir: Path
    table: Path
    points: list[dict[str, str]]
    statuses: list[str]
    results: list[Result]

    def rows(self) -> list[dict[str, str]]:
        """The rows of sweep.csv: run, status, the point's options, its scalar summary metrics."""
        with open(self.table, newline="") as f:
            return list(csv.DictReader(f))

    def to_pandas(self):
        """sweep.csv as a pandas DataFrame (pandas is not a dependency: install it to use this)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Sweep.to_pandas needs pandas: pip install pandas") from None
        return pandas.read_csv(self.table)


def run_overrides(
    scenario: Scenario,
    overrides: dict[str, str],
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
    command: list[str] | None = None,
) -> Result:
    """One run from its `key=value` texts: the path `playground run` and `run` share. `command`
    is what config.json records (default: the `playground run` command that reproduces it)."""
    from playground.runner import execute, record_failure
    from playground.scenarios import SCENARIOS

    for key in ("resume", "checkpoint_every"):  # only where the scenario declares a checkpoint
        if key in overrides and scenario.checkpoint is None:
            resumable = [name for name, s in SCENARIOS.items() if s.checkpoint is not None]
            raise BadInput(
                f"scenario {scenario.name!r} declares no checkpoint, so it takes no {key}=; "
                f"valid: {key}= with {', '.join(resumable)}"
            )
    out = Path(out) if out is not None else timestamped(Path("runs") / scenario.name)
    if command is None:
        given = [f"{key}={value}" for key, value in overrides.items()]
        command = ["playground", "run", scenario.name, *given, "--out", str(out)]
    try:
        config = build_config(scenario.config, overrides)
    except (BadInput, KeyboardInterrupt):
        raise
    except BaseException as error:  # a bug in code the config called: recorded as a run that failed
        record_failure(out, scenario.name, overrides, error, command, overwrite=overwrite)
        raise
    execute(scenario, config, out, argv=command, progress=progress, overwrite=overwrite)
    return load(out)


def sweep_overrides(
    spec: str,
    axes: list[tuple[str, str]],
    out: str | Path | None = None,
    workers: int = 1,
    launcher: str = "local",
    address: str | None = None,
    overwrite: bool = False,
    cpus_per_point: float | None = None,
    gpus_per_point: float | None = None,
) -> Sweep:
    """A sweep from its `key=a,b,c` texts: the path `playground sweep` and `sweep` share."""
    from playground.scenarios import get_scenario
    from playground.sweeps import grid, run_sweep

    scenario = get_scenario(spec)
    if workers < 1:
        raise BadInput(f"--workers must be at least 1, got {workers}")
    if launcher not in ("local", "ray"):
        raise BadInput(f"unknown --launcher {launcher!r}; valid: local, ray")
    for flag, value, valid in (
        ("--cpus-per-point", cpus_per_point, lambda v: v > 0),
        ("--gpus-per-point", gpus_per_point, lambda v: v >= 0),
    ):
        if value is not None and launcher != "ray":
            raise BadInput(f"{flag} applies to --launcher ray, not {launcher}")
        if value is not None and not (math.isfinite(value) and valid(value)):
            raise BadInput(f"{flag} {value:g}; valid: a number {'> 0' if 'cpus' in flag else '>= 0'}")
    points = grid(scenario, axes)
    out = Path(out) if out is not None else timestamped(Path("runs") / f"{scenario.name}-sweep")
    table, statuses = run_sweep(
        scenario,
        points,
        out,
        workers,
        launcher,
        address,
        overwrite=overwrite,
        spec=spec,
        cpus_per_point=1 if cpus_per_point is None else cpus_per_point,
        gpus_per_point=gpus_per_point or 0,
    )
    results = [_point(out / name, scenario.name) for name in _run_names(points)]
    done = Sweep(out, table, points, statuses, results)
    if INTERRUPTED in done.statuses:
        raise KeyboardInterrupt
    return done


def _point(directory: Path, scenario: str) -> Result:
    """A point's `Result`; one whose directory was never made (its worker died first) is empty."""
    if directory.is_dir():
        return load(directory)
    return Result(directory, scenario, {}, {}, History(), status="not run")


def _run_names(points: list[dict[str, str]]) -> list[str]:
    from playground.sweeps import run_name

    return [run_name(point) for point in points]


def option_texts(config_type: type, options: Mapping[str, Any]) -> dict[str, str]:
    """Python option values as the `key=value` texts the CLI reads: a `<kind>_options` dict
    becomes `<kind>.<keyword>` texts; an option given twice (both ways) is refused."""
    spaces = {
        f.name: f.metadata["namespace"] for f in dataclasses.fields(config_type) if "namespace" in f.metadata
    }
    texts: dict[str, str] = {}
    for key, value in options.items():
        given = (
            {f"{spaces[key]}.{keyword}": v for keyword, v in value.items()}
            if key in spaces and isinstance(value, Mapping)
            else {key: value}
        )
        for name, item in given.items():
            if name in texts:
                raise BadInput(f"option {name!r} given twice; give it once")
            texts[name] = format_value(item)
    return texts


def _scenario(scenario: str | Scenario) -> Scenario:
    from playground.scenarios import get_scenario

    if isinstance(scenario, Scenario):
        return scenario
    if not isinstance(scenario, str):
        raise BadInput(f"scenario {scenario!r}; valid: a scenario's name, module:SCENARIO, or a Scenario")
    return get_scenario(scenario)


def timestamped(parent: Path) -> Path:
    """`parent/<YYYYmmdd-HHMMSS>`, with `-1`, `-2`, ... when that exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = parent / stamp, 1
    while path.exists():
        path, n = parent / f"{stamp}-{n}", n + 1
    return path


# The CLI's flags as a Python caller passes them, for refusals written for the command line
_PYTHON_SPELLING = {
    "--overwrite": "overwrite=True",
    "--out": "out",
    "--workers": "workers",
    "--launcher": "launcher",
    "--address": "address",
    "--cpus-per-point": "cpus_per_point",
    "--gpus-per-point": "gpus_per_point",
}


@contextmanager
def _spelled_for_python() -> Iterator[None]:
    """A refusal raised as `BadInput` naming keywords, not flags; user code's `SystemExit` as the
    bug it is (`UserExit`), never an exit of the caller's interpreter."""
    try:
        yield
    except BadInput as error:
        message = re.sub(
            r"--[a-z]+(?:-[a-z]+)*", lambda flag: _PYTHON_SPELLING.get(flag[0], flag[0]), str(error)
        )
        raise BadInput(message) from None
    except SystemExit as stop:
        raise UserExit(stop.code) from stop
