"""`playground report`: one self-contained HTML page comparing runs.

The page has a summary table (one row per run: scenario, the options that differ between runs, the
headline metrics), the curves of the runs of each scenario overlaid on shared axes, and each run's
own plots, all images embedded.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from playground.files import read_json, read_jsonl, write_atomic
from playground.plots import overlay_curves

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; font-family: monospace; }
tr.diverged td { background: #fff1f0; } img { max-width: 100%; }
details { margin: .5em 0; } summary { cursor: pointer; font-weight: 600; }
.plots img { max-width: 48%; margin: 4px; border: 1px solid #eee; }
"""


def find_runs(paths: list[Path]) -> list[Path]:
    """Run directories (those with a config.json) at or under each path, in order, no repeats."""
    found: dict[Path, None] = {}
    for path in paths:
        if not path.is_dir():
            raise ValueError(f"not a directory: {str(path)!r}")
        if (path / "config.json").exists():
            found[path] = None
        for config in sorted(path.rglob("config.json")):
            found[config.parent] = None
    if not found:
        raise ValueError(f"no run directories (with config.json) under {', '.join(map(str, paths))}")
    return list(found)


def write_report(paths: list[Path], out: Path) -> Path:
    runs = find_runs([Path(p) for p in paths])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render(runs, base=out.parent)
    write_atomic(out, lambda f: f.write(page))
    return out


def render(runs: list[Path], base: Path) -> str:
    records = [_load(run, base) for run in runs]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>playground report</title>"
             f"<style>{_STYLE}</style></head><body><h1>playground report</h1>",
             f"<p>{len(records)} runs.</p>", _summary_table(records)]
    for scenario in dict.fromkeys(r["scenario"] for r in records):
        group = [r for r in records if r["scenario"] == scenario]
        parts.append(f"<h2>{html.escape(scenario)}</h2>")
        fig = overlay_curves({r["name"]: r["metrics"] for r in group}, f"{scenario}: all runs")
        if fig is not None:
            parts.append(f"<img alt='curves' src='{_png_data(fig)}'>")
        for r in group:
            images = "".join(f"<img alt='{html.escape(p.stem)}' title='{html.escape(p.stem)}' "
                             f"src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
                             for p in r["plots"])
            parts.append(f"<details open><summary>{html.escape(r['name'])}</summary>"
                         f"<div class='plots'>{images or '<em>no plots</em>'}</div></details>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _load(run: Path, base: Path) -> dict:
    config = read_json(run / "config.json")
    summary = read_json(run / "summary.json") if (run / "summary.json").exists() else {"unfinished": True}
    metrics = read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
    try:
        name = str(run.relative_to(base))
    except ValueError:
        name = str(run)
    return {"name": name, "scenario": config["scenario"], "config": config["config"],
            "summary": summary, "metrics": metrics, "plots": sorted(run.glob("*.png"))}


def _summary_table(records: list[dict]) -> str:
    differing = _differing_options(records)
    metrics = list(dict.fromkeys(k for r in records for k, v in r["summary"].items()
                                 if _is_number(v) and k != "wall_s"))[:14]
    header = ["run", "scenario", *differing, *metrics, "diverged", "wall s"]
    rows = []
    for r in records:
        cells = [r["name"], r["scenario"], *(r["config"].get(k, "") for k in differing),
                 *(r["summary"].get(k, "") for k in metrics),
                 _status(r["summary"]), r["summary"].get("wall_s", "")]
        css = " class='diverged'" if r["summary"].get("diverged") else ""
        rows.append(f"<tr{css}>" + "".join(
            f"<td{' class=name' if i == 0 else ''}>{html.escape(_fmt(c))}</td>"
            for i, c in enumerate(cells)) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _differing_options(records: list[dict]) -> list[str]:
    keys = dict.fromkeys(k for r in records for k in r["config"])
    return [k for k in keys if len({repr(r["config"].get(k)) for r in records}) > 1]


def _status(summary: dict) -> str:
    if summary.get("interrupted"):
        return "interrupted"
    if "error" in summary:
        return "error"
    if summary.get("diverged"):
        return f"yes (step {summary.get('diverged_step')})"
    return "no"


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
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
