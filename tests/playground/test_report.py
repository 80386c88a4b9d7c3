"""`playground report` renders whatever state the runs are in, and names what is damaged."""

import html
import json

import pytest

from playground.cli import main


@pytest.fixture
def runs(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        assert (
            main(["run", "toy", "steps=6", f"lr={0.1 if name == 'a' else 0.2}", "--out", f"runs/{name}"]) == 0
        )
    return tmp_path / "runs"


def page(path):
    return path.read_text()


def test_a_torn_line_skips_only_that_line_and_flags_the_run(runs, monkeypatch):
    from playground import page as report

    metrics = runs / "a" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:3] + ['{"step": 3, "loss/f": 0.'] + lines[4:]) + "\n")
    seen = {}
    draw = report.overlay_curves
    monkeypatch.setattr(report, "overlay_curves", lambda runs, *args: seen.update(runs) or draw(runs, *args))
    assert main(["report", "runs", "--out", "r.html"]) == 0
    assert [row["step"] for row in seen["0.1"]] == [0, 1, 2, 4, 5, 6]  # run a
    text = page(runs.parent / "r.html")
    assert "metrics.jsonl: 1 damaged line skipped" in text and "finished (damaged files)" in text


def test_missing_or_unreadable_files_show_the_run_and_the_rest_renders(runs):
    (runs / "a" / "summary.json").unlink()
    (runs / "b" / "config.json").write_text("{}")
    for name in ("c", "d"):
        (runs / name).mkdir()
    (runs / "c" / "config.json").write_text('{"scenario": "toy", "config": {}}')
    (runs / "c" / "summary.json").write_text('{"status": "fini')
    (runs / "d" / "config.json").write_text("not json")
    assert main(["report", "runs", "--out", "r.html"]) == 0
    text = page(runs.parent / "r.html")
    assert text.count("<tr class='run") == 4
    assert "<td class='text'>unfinished</td>" in text  # a: no summary.json
    assert "config.json: no scenario and config in it" in text  # b
    assert "summary.json unreadable" in text  # c
    assert "config.json unreadable" in text  # d


@pytest.mark.parametrize(
    "out, message",
    [
        ("/proc/x/r.html", "cannot write --out '/proc/x/r.html'"),
        ("afile/r.html", "cannot write --out 'afile/r.html'"),
        ("adir", "--out 'adir' is a directory"),
    ],
)
def test_bad_output_paths_exit_2(runs, capsys, out, message):
    (runs.parent / "afile").write_text("x")
    (runs.parent / "adir").mkdir()
    assert main(["report", "runs", "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_any_run_name_renders_literally(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("$x^2$", "$\\frac{"):
        assert main(["run", "toy", "steps=3", "--out", f"runs/{name}"]) == 0
    assert main(["report", "runs", "--out", "r.html"]) == 0
    assert "$\\frac{" in page(tmp_path / "r.html")


def test_status_of_every_outcome_is_shown(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "toy", "lr=10", "steps=300", "--out", "runs/div"]) == 0
    with pytest.raises(RuntimeError):
        main(["run", "toy", "fail=bug", "--out", "runs/bug"])
    assert main(["report", "runs", "--out", "r.html"]) == 0
    text = page(tmp_path / "r.html")
    assert "diverged (step 162)" in text and "failed (RuntimeError)" in text
    json.loads((tmp_path / "runs" / "bug" / "summary.json").read_text())


def test_what_a_run_cost_is_not_a_metric_column(runs):
    """A GPU run's peak memory, like its wall time, stays out of the table of results."""
    summary = runs / "a" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "peak_gpu_memory_mib": 12.5}))
    assert main(["report", "runs", "--out", "r.html"]) == 0
    text = page(runs.parent / "r.html")
    assert "peak_gpu_memory_mib" not in text and "wall s" in text


@pytest.mark.parametrize("status", [3, "bogus", [1]])
def test_a_status_no_run_writes_is_shown_as_unknown(runs, status):
    summary = runs / "a" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "status": status}))
    assert main(["report", "runs", "--out", "r.html"]) == 0
    text = page(runs.parent / "r.html")
    assert "<td class='text'>unknown (damaged files)</td>" in text  # a
    assert "<td class='text'>finished</td>" in text  # b
    problem = f"summary.json: unknown status {status!r}; valid: finished, diverged, interrupted, failed"
    assert html.escape(problem) in text
