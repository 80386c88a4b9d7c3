"""`playground report`: one self-contained HTML page comparing runs.

The page has a summary table (one row per run: scenario, the options that differ between runs, the
headline metrics, the code that made it, the status; above it a warning where the runs come from
more than one commit or uncommitted state of the code), the curves of the runs of each scenario
overlaid on shared axes, and each run's own plots, all images embedded. A damaged run never stops
the page: a torn line of metrics.jsonl skips that line and flags the run; a missing or unreadable
summary.json or config.json shows the run as unfinished or unreadable, naming the file, and a
summary whose status no run writes (say `"status": 3`) shows it as unknown. Text is drawn literally
(no mathtext), whatever a run is called.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import matplotlib

from playground.errors import BadInput
from playground.files import png_data_url, write_atomic
from playground.plots import overlay_curves
from playground.provenance import label
from playground.results import Result, load
from playground.rundir import (
    CONFIG,
    COST_KEYS,
    DIVERGED,
    FAILED,
    FINISHED,
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; font-family: monospace; }
tr.diverged td { background: #fff1f0; } tr.problem td { background: #fff8e1; } img { max-width: 100%; }
.warning { background: #fff8e1; border-left: 4px solid #e0a800; padding: 4px 8px; }
details { margin: .5em 0; } summary { cursor: pointer; font-weight: 600; }
.plots img { max-width: 48%; margin: 4px; border: 1px solid #eee; }
"""


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories (those with a config.json) at or under each path, in order, no repeats."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            raise BadInput(f"not a directory: {str(path)!r}")
        if (path / CONFIG).exists():
            found[path] = None
        for config in sorted(path.rglob(CONFIG)):
            found[config.parent] = None
    if not found:
        raise BadInput(f"no run directories (with {CONFIG}) under {', '.join(map(str, paths))}")
    return list(found)


def write_report(paths: list[Path], out: Path) -> Path:
    runs = find_runs([Path(p) for p in paths])
    out = Path(out)
    if out.is_dir():
        raise BadInput(
            f"--out {str(out)!r} is a directory; valid: a file path such as {str(out / 'report.html')!r}"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot write --out {str(out)!r}: {error.strerror or error}") from None
    with matplotlib.rc_context({"text.parse_math": False}):
        page = render(runs, base=out.parent)
    try:
        write_atomic(out, lambda f: f.write(page))
    except OSError as error:
        raise BadInput(f"cannot write --out {str(out)!r}: {error.strerror or error}") from None
    return out


def render(runs: list[Path], base: Path) -> str:
    records = [_load(run, base) for run in runs]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>playground report</title>"
        f"<style>{_STYLE}</style></head><body><h1>playground report</h1>",
        f"<p>{len(records)} runs.</p>",
        _code_states(records),
        _summary_table(records),
    ]
    problems = [
        f"<li>{html.escape(r['name'])}: {html.escape(p)}</li>" for r in records for p in r["problems"]
    ]
    if problems:
        parts.append(f"<h2>Damaged runs</h2><ul>{''.join(problems)}</ul>")
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        group = [r for r in records if r["scenario"] == scenario]
        parts.append(f"<h2>{html.escape(scenario)}</h2>")
        fig = overlay_curves({r["name"]: r["metrics"] for r in group}, f"{scenario}: all runs")
        if fig is not None:
            parts.append(f"<img alt='curves' src='{_png_data(fig)}'>")
        for r in group:
            images = "".join(
                f"<img alt='{html.escape(p.stem)}' title='{html.escape(p.stem)}' "
                f"src='{png_data_url(p.read_bytes())}'>"
                for p in r["plots"]
            )
            parts.append(
                f"<details open><summary>{html.escape(r['name'])}</summary>"
                f"<div class='plots'>{images or '<em>no plots</em>'}</div></details>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _load(run: Path, base: Path) -> dict:
    """What the page shows of one run (`playground.results.load` reads it), named from `base`."""
    try:
        name = str(run.relative_to(base))
    except ValueError:
        name = str(run)
    result = load(run)
    return {
        "name": name,
        "scenario": result.scenario,
        "config": result.config,
        "versions": result.versions,
        "summary": result.summary,
        "status": _status(result),
        "problems": list(result.problems),
        "metrics": result.metrics.rows,
        "plots": list(result.figures.values()),
    }


def _summary_table(records: list[dict]) -> str:
    differing = _differing_options(records)
    metrics = list(
        dict.fromkeys(
            k for r in records for k, v in r["summary"].items() if _is_number(v) and k not in COST_KEYS
        )
    )[:14]
    header = ["run", "scenario", *differing, *metrics, "code", "status", "wall s"]
    rows = []
    for r in records:
        cells = [
            r["name"],
            r["scenario"],
            *(r["config"].get(k, "") for k in differing),
            *(r["summary"].get(k, "") for k in metrics),
            label(r["versions"]),
            r["status"] + (" (damaged files)" if r["problems"] else ""),
            r["summary"].get("wall_s", ""),
        ]
        css = (
            " class='diverged'"
            if r["summary"].get("diverged")
            else " class='problem'"
            if r["problems"] or r["status"] != FINISHED
            else ""
        )
        rows.append(
            f"<tr{css}>"
            + "".join(
                f"<td{' class=name' if i == 0 else ''}>{html.escape(_fmt(c))}</td>"
                for i, c in enumerate(cells)
            )
            + "</tr>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _code_states(records: list[dict]) -> str:
    """A warning naming each state of the code the runs were made from (version, commit, and the
    hash of any uncommitted changes), where there is more than one; empty otherwise."""
    states = [state for state in dict.fromkeys(label(r["versions"]) for r in records) if state]
    if len(states) < 2:
        return ""
    named = "; ".join(html.escape(state) for state in states)
    warning = f"These runs come from {len(states)} states of the code:"
    return f"<p class='warning'><strong>{warning}</strong> {named}</p>"


def _differing_options(records: list[dict]) -> list[str]:
    keys = dict.fromkeys(k for r in records for k in r["config"])
    return [k for k in keys if len({repr(r["config"].get(k)) for r in records}) > 1]


def _status(result: Result) -> str:
    """The run's status, with the step a diverged run diverged at and the error a failed run
    raised."""
    if result.status == DIVERGED:
        return f"diverged (step {result.summary.get('diverged_step')})"
    if result.status == FAILED and isinstance(result.summary.get("error"), dict):
        return f"failed ({result.summary['error'].get('type')})"
    return result.status


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def _png_data(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return png_data_url(buffer.getvalue())
