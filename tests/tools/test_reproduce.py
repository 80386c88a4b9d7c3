"""tools/reproduce.py: every README result table has its regenerating command, and (slow) each row
of each table is regenerated and agrees with the README, number by number.

The slow tests run the README's commands into a scratch folder (or into $REPRODUCE_OUT, to check
runs that `make reproduce` already made, e.g. REPRODUCE_OUT=runs/reproduce). A number printed
with "± c" must agree within c; any other within the table's stated tolerance (`Table.tolerance`,
also stated under the table in the README); both widened by the rounding of the printed digits.
Wall times are not compared.
"""

import dataclasses
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

from playground.rundir import MARKER

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("reproduce", REPO / "tools" / "reproduce.py")
reproduce = importlib.util.module_from_spec(_spec)
sys.modules["reproduce"] = reproduce
_spec.loader.exec_module(reproduce)

README = (REPO / "README.md").read_text()
_NUMBER = r"[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?"
_TOKEN = re.compile(rf"({_NUMBER})(?:\s*±\s*({_NUMBER}))?")


def readme_tables(text: str = README) -> list[list[str]]:
    """Each markdown table of the README as its lines (header, rule, rows)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def readme_row(table, first_cell: str) -> list[str]:
    header = "| " + " | ".join(table.header) + " |"
    lines = next(t for t in readme_tables() if t[0] == header)
    return next(cells(line) for line in lines[2:] if cells(line)[0] == first_cell)


def _value(text: str) -> float:
    return float(text.replace("−", "-"))


def _unit(text: str) -> float:
    """One unit of the last printed digit."""
    mantissa = text.replace("−", "-").split("e")[0]
    return 10.0 ** -len(mantissa.split(".")[1]) if "." in mantissa else 1.0


def disagreements(header, expected: list[str], found: list[str], tolerance: tuple[float, float]) -> list[str]:
    """Where the row `found` differs from `expected`: other text, or a number outside its CI (or the
    tolerance (relative, absolute) when printed without one), widened by one unit of rounding."""
    rel, absolute = tolerance
    problems = []
    for column, want, got in zip(header, expected, found):
        if "wall" in column:
            continue
        if _TOKEN.sub("#", want) != _TOKEN.sub("#", got):
            problems.append(f"{column}: {got!r} is not {want!r}")
            continue
        for (a, ci), (x, _) in zip(_TOKEN.findall(want), _TOKEN.findall(got)):
            allowed = (_value(ci) if ci else max(rel * abs(_value(a)), absolute)) + _unit(a)
            if abs(_value(x) - _value(a)) > allowed:
                problems.append(f"{column}: {x} is not {a} ± {allowed:.3g}")
    return problems


def test_every_readme_table_is_regenerated_by_its_command():
    """Each result table of the README has a table in the driver with the same header and rows,
    and the README names its command."""
    headers = {"| " + " | ".join(t.header) + " |": name for name, t in reproduce.TABLES.items()}
    matched = []
    for lines in readme_tables():
        assert lines[0] in headers, f"no `make reproduce` table prints {lines[0]}"
        name = headers[lines[0]]
        assert [cells(line)[0] for line in lines[2:]] == [
            row.cells[0]({}) for row in reproduce.TABLES[name].rows
        ], name
        assert f"make reproduce TABLE={name}" in README, name
        matched.append(name)
    assert sorted(matched) == sorted(reproduce.TABLES)


def test_rows_print_in_the_readme_format():
    """Summaries holding the README's numbers print the README's rows exactly."""
    sine = {
        "eval/post_adapt_mse": 0.317,
        "eval/post_adapt_mse_ci95": 0.031,
        "baseline/post_adapt_mse": 2.339,
        "baseline/post_adapt_mse_ci95": 0.200,
        "eval/post_eval_steps_mse": 0.098,
        "eval/post_eval_steps_mse_ci95": 0.013,
        "eval/pre_adapt_mse": 2.817,
        "eval/pre_adapt_mse_ci95": 0.242,
    }
    row = reproduce.SINE.rows[1]
    assert [cell({"k10": sine}) for cell in row.cells] == readme_row(reproduce.SINE, "10")
    seeds = {
        "seed0": {
            "eval/maml_returns": [-42.7, -18.4, -17.0, -17.8],
            "eval/maml_returns_ci95": [4.8, 1.8, 2, 2],
        },
        "seed1": {
            "eval/maml_returns": [-40.3, -16.9, -17.0, -17.6],
            "eval/maml_returns_ci95": [4.1, 1.4, 2, 2],
        },
    }
    assert [cell(seeds) for cell in reproduce.METARL.rows[0].cells] == readme_row(reproduce.METARL, "MAML")
    lsa = {
        "eval/loss": 1.6055,
        "gd/loss": 1.6040,
        "gd/lr": 1.498,
        "probe/model_cos": 0.9993,
        "probe/preds_diff": 0.044,
        "wall_s": 65.2,
    }
    found = [cell({"lsa1": lsa}) for cell in reproduce.ICL.rows[0].cells]
    assert found == readme_row(reproduce.ICL, found[0])
    assert [cell({}) for cell in row.cells] == ["10", "—", "—", "—", "—", "0.77"]  # runs missing


def test_rows_agree_within_the_ci_or_the_tolerance_and_with_the_same_words():
    header = ("policy", "after 1 step", "wall")
    expected = ["MAML", "**−18.4 ± 1.8 / −16.9 ± 1.4**", "900 s"]
    assert disagreements(header, expected, ["MAML", "**−20.2 ± 1.1 / −15.6 ± 3.0**", "1 s"], (0, 0)) == []
    assert disagreements(header, expected, ["MAML", "**−20.4 ± 1.1 / −15.6 ± 3.0**", "1 s"], (0, 0)) == [
        "after 1 step: −20.4 is not −18.4 ± 1.9"
    ]
    assert disagreements(("result",), ["loss 0.861, beats"], ["loss 0.880, beats"], (0.03, 0.01)) == []
    assert disagreements(("result",), ["loss 0.861, beats"], ["loss 0.900, beats"], (0.03, 0.01)) != []
    assert disagreements(("result",), ["loss 0.861, beats"], ["loss 0.861, does not beat"], (1, 1)) != []


def test_a_finished_run_is_kept_and_an_unfinished_one_made_again(tmp_path, monkeypatch):
    tiny = reproduce.Table(
        header=("run", "steps"),
        runs={"a": "game steps=3 plots=false"},
        rows=(
            reproduce.Row(
                ("a",), (reproduce._const("a"), reproduce._cell(lambda r: str(r["a"]["steps_run"])))
            ),
        ),
        tolerance=(0, 0),
        minutes=1,
    )
    monkeypatch.setitem(reproduce.TABLES, "tiny", tiny)
    summary = tmp_path / "tiny" / "a" / "summary.json"
    summary.parent.mkdir(parents=True)
    (summary.parent / MARKER).write_text(json.dumps({"kind": "run"}))  # a run playground wrote
    summary.write_text(json.dumps({"status": "interrupted", "steps_run": 1}))
    text, failed = reproduce.regenerate("tiny", tmp_path)  # made again, over the interrupted one
    assert failed == [] and text.splitlines()[-1] == "| a | 3 |"
    summary.write_text(json.dumps({"status": "finished", "steps_run": 7}))
    assert reproduce.regenerate("tiny", tmp_path)[0].splitlines()[-1] == "| a | 7 |"  # kept: not run


def _slow_rows():
    for name, table in reproduce.TABLES.items():
        for index, row in enumerate(table.rows):
            seconds = 3 * 60 * table.minutes * len(row.labels)
            marks = [pytest.mark.timeout(seconds)] + ([pytest.mark.gpu] if table.gpu else [])
            yield pytest.param(name, index, marks=marks, id=f"{name}-{'+'.join(row.labels)}")


@pytest.fixture(scope="session")
def reproduce_out(tmp_path_factory):
    where = os.environ.get("REPRODUCE_OUT")
    return Path(where).resolve() if where else tmp_path_factory.mktemp("reproduce")


@pytest.mark.slow
@pytest.mark.parametrize("name,index", list(_slow_rows()))
def test_readme_row_is_reproduced(name, index, reproduce_out):
    table = reproduce.TABLES[name]
    row = table.rows[index]
    text, failed = reproduce.regenerate(name, reproduce_out, labels=row.labels)
    assert failed == [], f"runs that did not finish: {failed}"
    found = cells(text.splitlines()[2 + index])
    assert reproduce.DASH not in found, found
    expected = readme_row(table, found[0])
    assert disagreements(table.header, expected, found, table.tolerance) == []


def test_the_published_sine_column_is_read_from_the_table_of_known_answers(monkeypatch):
    from playground import references

    assert [row.cells[-1]({}) for row in reproduce.SINE.rows] == ["1.13", "0.77", "0.48"]
    moved = tuple(
        dataclasses.replace(r, value=r.value + 1) if r.metric == "eval/post_adapt_mse" else r
        for r in references.REFERENCES
    )
    monkeypatch.setattr(references, "REFERENCES", moved)
    assert reproduce._published_sine(10) == "1.77"
