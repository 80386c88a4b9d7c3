"""A grid sweep: every combination of the given values, one run directory each, and sweep.csv.

`key=a,b,c` sweeps a scalar option over three values; an option that itself takes a list is swept
with `;` between alternatives (`init='1,1;2,2'`). Re-running a sweep with the same directory skips
the runs that finished (their summary.json exists and says neither interrupted nor error).
"""
from __future__ import annotations

import csv
import io
import itertools
import re
import typing
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path


from playground.config import build_config
from playground.files import read_json, write_atomic
from playground.runner import execute
from playground.scenario import Scenario
from playground.scenarios import get_scenario


def grid(scenario: Scenario, overrides: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Every combination of the swept values, each validated by building its config."""
    hints = typing.get_type_hints(scenario.config)
    axes = []
    for key, text in overrides:
        takes_list = typing.get_origin(hints.get(key)) is tuple or tuple in map(
            typing.get_origin, typing.get_args(hints.get(key)))
        values = [v.strip() for v in text.split(";" if takes_list else ",")]
        if not all(values):
            raise ValueError(f"empty value in sweep override {key}={text!r}")
        axes.append([(key, v) for v in values])
    points = [dict(combo) for combo in itertools.product(*axes)]
    for point in points:
        build_config(scenario.config, point)  # bad input fails before anything runs
    return points


def run_sweep(scenario: Scenario, points: list[dict[str, str]], out: Path, workers: int = 1,
              launcher: str = "local", address: str | None = None) -> Path:
    """Run the grid `points` into `out/<point>/` and write `out/sweep.csv`; return its path."""
    directories = [out / run_name(point) for point in points]
    todo = [(p, d) for p, d in zip(points, directories) if not finished(d)]
    if todo:
        jobs = [(scenario.name, p, str(d)) for p, d in todo]
        if launcher == "ray":
            _run_ray(jobs, address)
        else:
            _run_local(jobs, workers)
    path = out / "sweep.csv"
    write_atomic(path, lambda f: f.write(sweep_table(points, directories)))
    return path


def run_name(point: dict[str, str]) -> str:
    """A directory name for one grid point: `lr=0.1,dynamics=sim_gd` made filesystem-safe."""
    name = ",".join(f"{k}={v.replace(',', '_')}" for k, v in point.items()) or "default"
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


def finished(directory: Path) -> bool:
    summary = directory / "summary.json"
    if not summary.exists():
        return False
    data = read_json(summary)
    return not data.get("interrupted") and "error" not in data


def sweep_table(points: list[dict[str, str]], directories: list[Path]) -> str:
    """CSV text: one row per run, its overrides then its scalar summary metrics."""
    rows = []
    for point, directory in zip(points, directories):
        summary = read_json(directory / "summary.json") if (directory / "summary.json").exists() else {}
        scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))}
        rows.append({"run": directory.name, **point, **scalars})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_point(scenario_name: str, point: dict[str, str], directory: str) -> str:
    """One grid point, in whichever process the launcher chose."""
    scenario = get_scenario(scenario_name)
    config = build_config(scenario.config, point)
    command = ["playground", "sweep", scenario_name, *(f"{k}={v}" for k, v in point.items())]
    try:
        execute(scenario, config, Path(directory), argv=command, progress=False)
    except ValueError as error:  # recorded in the run's summary; the sweep goes on
        return f"{directory}: {error}"
    return directory


def _run_local(jobs: list[tuple], workers: int) -> None:
    from tqdm import tqdm

    if workers == 1:
        for job in tqdm(jobs, desc="sweep", leave=False, disable=None):
            run_point(*job)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(tqdm(pool.map(run_point, *zip(*jobs)), total=len(jobs), desc="sweep", leave=False,
                  disable=None))


def _run_ray(jobs: list[tuple], address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise ValueError("--launcher ray needs Ray: pip install 'ray'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        remote = ray.remote(num_cpus=1)(run_point)
        ray.get([remote.remote(*job) for job in jobs])
    finally:
        if started_here:
            ray.shutdown()


