"""A run directory as Python reads it: `load(path)` gives a `Result`, whatever state the run is in.

A `Result` holds what a run wrote: its options (`config`), its `summary` and `status`, its logged
`metrics` by key, its figures, and the version of the code that made it. A damaged run still loads:
a torn line of metrics.jsonl is skipped, a missing or unreadable summary.json or config.json leaves
that part empty, and each such file is named in `problems` (the report shows the same).

    result = playground.load("runs/game/20261207-101500")
    steps, distance = result.metrics["dist"]     # numpy arrays, ready for plt.plot
    result.metrics.to_pandas()                   # one row per logged step (needs pandas)

`metrics` is a `reporting.History`, as the library loops return.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.files import png_data_url, read_json, read_jsonl
from playground.rundir import (
    CONFIG,
    DIVERGED,
    FAILED,
    FIGURE_SUFFIX,
    FINISHED,
    INTERRUPTED,
    METRICS,
    SUMMARY,
    run_status,
)
from reporting import History

STATUSES = (FINISHED, DIVERGED, INTERRUPTED, FAILED)  # what a summary's "status" may say


@dataclass(frozen=True)
class Result:
    """What one run wrote, as `playground.run` returns it and `playground.load` reads it back.

    `status` is finished, diverged, interrupted or failed as the summary says, `unfinished` (no
    summary: still running, or killed), `unreadable` (no readable config.json either) or `unknown`
    (a status no run writes); `problems` names each damaged or missing file."""

    dir: Path
    scenario: str
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: History
    status: str
    figures: dict[str, Path] = field(default_factory=dict)  # name -> png in the run directory
    versions: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"Result({self.scenario!r}, status={self.status!r}, dir={str(self.dir)!r})"

    def _repr_html_(self) -> str:
        """How a notebook shows a result: its summary as a table, then its figures inline."""
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_short(v))}</td></tr>"
            for k, v in self.summary.items()
        )
        images = "".join(
            f"<img alt='{html.escape(name)}' style='max-width:48%' src='{png_data_url(path.read_bytes())}'>"
            for name, path in self.figures.items()
            if path.exists()
        )
        where = html.escape(str(self.dir))
        title = f"<p><b>{html.escape(self.scenario)}</b>: {html.escape(self.status)} in {where}</p>"
        return f"{title}<table>{rows}</table>{images}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load(path: str | Path) -> Result:
    """The run in directory `path` (one with a config.json, or a damaged one without)."""
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(f"not a run directory: {str(directory)!r}")
    problems: list[str] = []
    config = _read_object(directory / CONFIG, problems)
    if config is not None and not (
        isinstance(config.get("scenario"), str) and isinstance(config.get("config"), dict)
    ):
        problems.append(f"{CONFIG}: no scenario and config in it")
        config = None
    summary = _read_object(directory / SUMMARY, problems, missing_ok=True)
    if summary is not None and run_status(summary) not in STATUSES:
        problems.append(f"{SUMMARY}: unknown status {summary.get('status')!r}; valid: {', '.join(STATUSES)}")
    rows: list[dict] = []
    if (directory / METRICS).exists():
        try:
            rows, torn = read_jsonl(directory / METRICS)
        except (OSError, UnicodeDecodeError) as error:
            torn = 0
            problems.append(f"{METRICS} unreadable: {error}")
        if torn:
            problems.append(f"{METRICS}: {torn} damaged line{'s' if torn > 1 else ''} skipped")
    versions = config.get("versions") if config else None
    return Result(
        dir=directory,
        scenario=config["scenario"] if config else f"(unreadable {CONFIG})",
        config=config["config"] if config else {},
        summary=summary or {},
        metrics=History(_logged(rows)),
        status=_status(summary, config),
        figures={p.stem: p for p in sorted(directory.glob(f"*{FIGURE_SUFFIX}"))},
        versions=versions if isinstance(versions, dict) else {},
        problems=tuple(problems),
    )


def _logged(rows: list[dict]) -> list[dict]:
    """The rows with a step, without the file's "nonfinite" list (their nulls read as nan)."""
    return [
        {k: v for k, v in row.items() if k != "nonfinite"}
        for row in rows
        if isinstance(row.get("step"), (int, float))
    ]


def _read_object(path: Path, problems: list[str], missing_ok: bool = False) -> dict | None:
    try:
        value = read_json(path)
    except FileNotFoundError:
        if not missing_ok:
            problems.append(f"{path.name} missing")
        return None
    except (OSError, ValueError) as error:
        problems.append(f"{path.name} unreadable: {error}")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} unreadable: not a JSON object")
        return None
    return value


def _status(summary: dict | None, config: dict | None) -> str:
    if summary is None:
        return "unreadable" if config is None else "unfinished"
    state = run_status(summary)
    return state if state in STATUSES else "unknown"
