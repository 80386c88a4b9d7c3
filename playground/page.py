"""`playground report`: one self-contained HTML page to compare runs and see whether they reproduced.

A contents bar that stays in view links one section per scenario. A section's table has the runs as
rows, only the options that vary between them, the scenario's headline metrics (`Scenario.headline`;
a scenario without them shows its first numeric summary keys), each rounded to what its 95%
confidence interval supports, and beside a metric the known answer where a run's settings match
one (`playground.references`: a published number or a closed form, its source in the cell's
tooltip and listed under the table); then the code that made the run (flagged where a section's
runs come from more than one state of the code), its status and its wall time. Clicking a column
header sorts by it. Each run's own figures sit in a collapsed row under it. Below the table, runs
that share every varying option but one are overlaid on shared axes, one panel per headline metric
logged over steps, the legend naming the option's values, confidence half-widths drawn as bands and
known answers as dashed lines.

A damaged run never stops the page: a torn line of metrics.jsonl skips that line and flags the run;
a missing or unreadable summary.json or config.json shows the run as unfinished or unreadable,
naming the file, and a summary whose status no run writes (say `"status": 3`) shows it as unknown.
Run names are drawn literally. Images are embedded, re-encoded with at most 256 colours and
1000 pixels across, so the page needs no network and stays small.
"""

from __future__ import annotations

import html
import io
import math
import re
from pathlib import Path

from playground import references
from playground.errors import BadInput
from playground.files import png_data_url, write_atomic
from playground.plots import CI_SUFFIX, is_number, overlay_curves, scalar_keys
from playground.provenance import label
from playground.results import Result, load
from playground.rundir import CONFIG, COST_KEYS, DIVERGED, FAILED, FINISHED

# options that say how or where a run computed, not what: never a reason to tell runs apart
_HOW = {"threads", "device", "tensorboard", "plots", "checkpoint_every", "resume", "log_every"}
_FALLBACK_METRICS = 6  # headline columns of a scenario that declares none
_MAX_OVERLAYS = 6  # per scenario
_IMAGE_WIDTH = 1000  # pixels
_LIST_SHOWN = 4  # a longer list is shown by its ends and its length

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #222; }
main { max-width: 1240px; margin: 0 auto; padding: 0 12px 2em; }
nav#contents { position: sticky; top: 0; z-index: 1; background: #fafafa; border-bottom: 1px solid #ddd;
  padding: 6px 12px; font-size: 14px; }
nav#contents a { margin-right: 1.2em; text-decoration: none; }
section { scroll-margin-top: 3em; }
table { border-collapse: collapse; font-size: 12px; margin: .6em 0; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th { overflow-wrap: anywhere; } td.name { overflow-wrap: anywhere; min-width: 8em; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[data-dir=asc]::after { content: " ▲"; } th[data-dir=desc]::after { content: " ▼"; }
td.name, td.text { text-align: left; } td.known { color: #555; background: #f6f9ff; }
td.differs { background: #fff8e1; }
tr.diverged td { background: #fff1f0; } tr.problem td { background: #fff8e1; }
tr.figures td { text-align: left; border-top: none; background: #fff; }
.warning { background: #fff8e1; border-left: 4px solid #e0a800; padding: 4px 8px; }
details summary { cursor: pointer; color: #555; }
details img { max-width: 48%; margin: 4px; border: 1px solid #eee; }
div.overlays figure { display: inline-block; vertical-align: top; margin: .5em 1em .5em 0; max-width: 100%; }
div.overlays img { max-width: 100%; } figcaption { font-size: 12px; color: #555; max-width: 40em; }
ol.sources { font-size: 12px; color: #555; }
"""

# Sorting keeps each run's figures row under it; a cell's data-sort holds its raw number.
_SCRIPT = """
document.querySelectorAll('table.runs').forEach(function (table) {
  var heads = table.querySelectorAll('thead th');
  heads.forEach(function (th, column) {
    th.addEventListener('click', function () {
      var ascending = th.dataset.dir !== 'asc';
      heads.forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = ascending ? 'asc' : 'desc';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.querySelectorAll('tr.run'));
      var key = function (row) {
        var cell = row.cells[column];
        var text = cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent;
        var number = parseFloat(text);
        return text === '' ? null : (isNaN(number) ? text : number);
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        if (typeof x !== typeof y) return (typeof x === 'number' ? -1 : 1) * (ascending ? 1 : -1);
        return (x < y ? -1 : 1) * (ascending ? 1 : -1);
      });
      rows.forEach(function (row) {
        var figures = row.nextElementSibling;
        body.appendChild(row);
        if (figures && figures.classList.contains('figures')) body.appendChild(figures);
      });
    });
  });
});
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
    page = render(runs, base=out.parent)
    try:
        write_atomic(out, lambda f: f.write(page))
    except OSError as error:
        raise BadInput(f"cannot write --out {str(out)!r}: {error.strerror or error}") from None
    return out


def render(runs: list[Path], base: Path) -> str:
    records = [_load(run, base) for run in runs]
    scenarios = list(dict.fromkeys(r["scenario"] for r in records))
    ids = {
        name: f"s-{index}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"
        for index, name in enumerate(scenarios)
    }
    groups = {name: [r for r in records if r["scenario"] == name] for name in scenarios}
    contents = "".join(
        f"<a href='#{ids[name]}'>{html.escape(name)} ({len(groups[name])})</a>" for name in scenarios
    )
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>playground report</title><style>{_STYLE}</style></head><body>",
        f"<nav id='contents'><strong>playground report</strong> · {contents}</nav><main>",
        f"<h1>playground report</h1><p>{len(records)} runs of {len(scenarios)} scenarios.</p>",
        _code_states(records),
    ]
    problems = [
        f"<li>{html.escape(r['name'])}: {html.escape(p)}</li>" for r in records for p in r["problems"]
    ]
    if problems:
        parts.append(f"<h2>Damaged runs</h2><ul>{''.join(problems)}</ul>")
    parts += [_section(name, ids[name], groups[name]) for name in scenarios]
    parts.append(f"</main><script>{_SCRIPT}</script></body></html>")
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
        "plots": [path for path in result.figures.values() if path.exists()],
        "known": _known(result),
    }


def _known(result: Result) -> dict[str, tuple[references.Reference, float]]:
    """The known answers that apply to a run, by metric, each with its value for this run (those
    whose formula gives none here left out)."""
    found = {}
    for ref in references.for_run(result.scenario, result.config):
        value = ref.resolve(result.config, result.summary)
        if value is not None:
            found[ref.metric] = (ref, value)
    return found


def headline(scenario: str, records: list[dict]) -> list[str]:
    """The scenario's headline metrics that some run reported, in the scenario's order; for a
    scenario that declares none, the first numeric keys of its summaries (cost keys left out)."""
    from playground.scenarios import SCENARIOS

    declared = SCENARIOS[scenario].headline if scenario in SCENARIOS else ()
    if declared:
        return [
            k for k in declared if any(references.metric_value(r["summary"], k) is not None for r in records)
        ]
    keys = dict.fromkeys(
        k
        for r in records
        for k, v in r["summary"].items()
        if is_number(v) and k not in COST_KEYS and not k.endswith(CI_SUFFIX)
    )
    return list(keys)[:_FALLBACK_METRICS]


def _section(scenario: str, anchor: str, records: list[dict]) -> str:
    metrics = headline(scenario, records)
    metrics += [k for k in dict.fromkeys(k for r in records for k in r["known"]) if k not in metrics]
    varying = _differing_options(records)
    known = [k for k in metrics if any(k in r["known"] for r in records)]
    sources = list(dict.fromkeys(r["known"][k][0].source for r in records for k in known if k in r["known"]))
    states = {label(r["versions"]) for r in records} - {""}
    header = ["run", *varying]
    for key in metrics:
        header += [key, "known"] if key in known else [key]
    header += ["status", "code", "wall s"]
    rows = [
        _row(r, varying, metrics, known, sources, differs=len(states) > 1, width=len(header)) for r in records
    ]
    head = "".join(f"<th title='sort by {html.escape(h)}'>{_breakable(h)}</th>" for h in header)
    parts = [
        f"<section id='{anchor}'><h2>{html.escape(scenario)}</h2>",
        f"<p>{len(records)} run{'s' if len(records) > 1 else ''}"
        + (f"; varying: {html.escape(', '.join(varying))}" if varying else "")
        + ".</p>",
        f"<table class='runs'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    if sources:
        parts.append(
            "<p>Known answers:</p><ol class='sources'>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in sources)
            + "</ol>"
        )
    parts += _overlays(scenario, records, varying, metrics)
    parts.append("</section>")
    return "\n".join(parts)


def _row(r: dict, varying, metrics, known, sources, differs: bool, width: int) -> str:
    cells = [f"<td class='name text'>{html.escape(r['name'])}</td>"]
    cells += [_cell(r["config"].get(k)) for k in varying]
    for key in metrics:
        value = references.metric_value(r["summary"], key)
        cells.append(_cell(value, _ci(r["summary"], key)))
        if key in known:
            if key not in r["known"]:
                cells.append("<td class='known'></td>")
                continue
            ref, number = r["known"][key]
            note = sources.index(ref.source) + 1
            cells.append(
                f"<td class='known' data-sort='{number!r}' title='{html.escape(ref.source)}'>"
                f"{html.escape(_fmt(number, ref.spread))} <sup>[{note}]</sup></td>"
            )
    code = label(r["versions"])
    cells += [
        f"<td class='text'>{html.escape(r['status'] + (' (damaged files)' if r['problems'] else ''))}</td>",
        f"<td class='text{' differs' if differs else ''}'>{html.escape(code)}</td>",
        _cell(r["summary"].get("wall_s")),
    ]
    css = (
        " diverged"
        if r["summary"].get("diverged")
        else " problem"
        if r["problems"] or r["status"] != FINISHED
        else ""
    )
    row = f"<tr class='run{css}'>{''.join(cells)}</tr>"
    if not r["plots"]:
        return row
    names = ", ".join(p.stem for p in r["plots"])
    images = "".join(
        f"<img alt='{html.escape(p.stem)}' title='{html.escape(p.stem)}' loading='lazy' "
        f"src='{png_data_url(_shrunk(p.read_bytes()))}'>"
        for p in r["plots"]
    )
    return (
        row + f"<tr class='figures'><td colspan='{width}'><details><summary>{html.escape(r['name'])}: "
        f"{html.escape(names)}</summary>{images}</details></td></tr>"
    )


def _overlays(scenario: str, records: list[dict], varying: list[str], metrics: list[str]) -> list[str]:
    """Overlays of the runs that share every varying option but one, for each such option, the
    largest groups first: one panel per headline metric they logged over steps (where they logged
    none of them, their first logged metrics)."""
    groups = []
    for axis in varying:
        others = [k for k in varying if k != axis]
        by_rest: dict[str, list[dict]] = {}
        for r in records:
            by_rest.setdefault(", ".join(f"{k}={_text(r['config'].get(k))}" for k in others), []).append(r)
        groups += [(axis, rest, group) for rest, group in by_rest.items() if len(group) > 1]
    figures = []
    for axis, rest, group in sorted(groups, key=lambda g: -len(g[2])):
        runs = {_text(r["config"].get(axis)) or "(unset)": r["metrics"] for r in group}
        logged = scalar_keys([row for r in group for row in r["metrics"]])
        panels = [k for k in metrics if k in logged] or logged[:_FALLBACK_METRICS]
        fig = overlay_curves(runs, panels, axis, _shared_references(group))
        if fig is None:
            continue
        caption = f"{len(group)} runs, {axis} varies" + (f"; all at {rest}" if rest else "")
        figures.append(
            f"<figure><img alt='{html.escape(caption)}' src='{_figure_data(fig)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        if len(figures) == _MAX_OVERLAYS:
            break
    return [f"<div class='overlays'>{''.join(figures)}</div>"] if figures else []


def _shared_references(group: list[dict]) -> dict[str, list[tuple[float, str]]]:
    """Known answers with the same value for every run of the group, by metric."""
    shared = {}
    for key, (ref, _) in group[0]["known"].items():
        values = {r["known"][key][1] if key in r["known"] else None for r in group}
        if len(values) == 1 and None not in values:
            shared[key] = [(values.pop(), ref.source)]
    return shared


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
    keys = dict.fromkeys(k for r in records for k in r["config"] if k not in _HOW)
    return [k for k in keys if len({repr(r["config"].get(k)) for r in records}) > 1]


def _status(result: Result) -> str:
    """The run's status, with the step a diverged run diverged at and the error a failed run
    raised."""
    if result.status == DIVERGED:
        return f"diverged (step {result.summary.get('diverged_step')})"
    if result.status == FAILED and isinstance(result.summary.get("error"), dict):
        return f"failed ({result.summary['error'].get('type')})"
    return result.status


def _ci(summary: dict, metric: str) -> float | None:
    key, bracket, index = metric.partition("[")
    return references.metric_value(summary, f"{key}{CI_SUFFIX}{bracket}{index}")


def _cell(value, ci=None) -> str:
    sort = f" data-sort='{value!r}'" if is_number(value) and math.isfinite(value) else ""
    css = "" if is_number(value) else " class='text'"
    return f"<td{css}{sort}>{html.escape(_fmt(value, ci))}</td>"


def _fmt(value, ci=None) -> str:
    """A number to the digits its 95% CI supports (the CI to two significant digits), else to four
    significant digits; lists and other values as text."""
    if is_number(ci) and is_number(value) and math.isfinite(ci) and ci > 0 and math.isfinite(value):
        digits = max(0, 1 - math.floor(math.log10(ci)))
        return f"{value:.{digits}f} ± {ci:.{digits}f}"
    return _text(value)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        if len(value) > _LIST_SHOWN:  # a vector (hypercleaning's λ, say): its ends and its length
            return f"{_text(value[0])}, {_text(value[1])}, …, {_text(value[-1])} ({len(value)} values)"
        return ",".join(_text(v) for v in value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return str(value)


def _breakable(name: str) -> str:
    """A metric's name that may wrap after its `/` and `_` (`eval/<wbr>post_<wbr>adapt_<wbr>mse`)."""
    return re.sub(r"([/_])", r"\1<wbr>", html.escape(name))


def _shrunk(png: bytes) -> bytes:
    """The image at most _IMAGE_WIDTH pixels across, with at most 256 colours (a plot has few)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, "white")
            background.paste(image, mask=image.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
        if image.width > _IMAGE_WIDTH:
            image = image.resize(
                (_IMAGE_WIDTH, round(image.height * _IMAGE_WIDTH / image.width)), Image.LANCZOS
            )
        buffer = io.BytesIO()
        image.quantize(256).save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _figure_data(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return png_data_url(_shrunk(buffer.getvalue()))
