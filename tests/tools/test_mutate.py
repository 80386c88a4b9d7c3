"""tools/mutate.py: mutant names mapped to their modules, the report's counts, and the reset that
makes a rerun test every survivor against today's tests (mutmut itself retests only changed code)."""

import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutate", REPO / "tools" / "mutate.py")
mutate = importlib.util.module_from_spec(_spec)
sys.modules["mutate"] = mutate
_spec.loader.exec_module(mutate)


def test_a_mutant_name_names_its_module_file():
    assert mutate.module_of("bilevel.solvers.x_dense_solve__mutmut_6") == "bilevel/solvers.py"
    method = "bilevel.stn.method.xǁSelfTuningNetworkǁ_start__mutmut_6"
    assert mutate.module_of(method) == "bilevel/stn/method.py"
    assert mutate.module_of("registration.x_factory_options__mutmut_6") == "registration/__init__.py"


def test_every_core_module_exists():
    assert all((REPO / module).is_file() for module in mutate.core_modules())


def test_the_score_counts_equivalent_and_unrun_mutants_out_and_timeouts_and_crashes_in():
    statuses = {
        "games.dynamics.x_a__mutmut_1": "killed",
        "games.dynamics.x_a__mutmut_2": "timeout",
        "games.dynamics.x_a__mutmut_3": "segfault",
        "games.dynamics.x_a__mutmut_4": "survived",
        "games.dynamics.x_a__mutmut_5": "survived",
        "games.dynamics.x_a__mutmut_6": "no tests",
        "games.dynamics.x_a__mutmut_7": "not checked",
        "games.analysis.x_b__mutmut_1": "survived",
    }
    reasons = {"games.dynamics.x_a__mutmut_5": "only differs on a GPU"}
    why = {"games.dynamics.x_a__mutmut_4": "a line only a GPU runs"}
    row, section = mutate.summarise("games/dynamics.py", statuses, reasons, why)
    assert row == "| `games/dynamics.py` | 7 | 3 | 1 | 2 | 1 | 60.0% |"  # explained, still surviving
    assert "- equivalent `games.dynamics.x_a__mutmut_5`: only differs on a GPU" in section
    assert "- **surviving** `games.dynamics.x_a__mutmut_4` (survived): a line only a GPU runs" in section
    assert "- **surviving** `games.dynamics.x_a__mutmut_6` (no tests)" in section
    assert "- not yet run: 1 (" in section and "mutmut_7" not in section
    assert "analysis" not in section


def test_survivors_and_untested_mutants_are_reset_and_verdicts_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(mutate, "REPO", tmp_path)
    meta = tmp_path / "mutants" / "games" / "dynamics.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"killed": 1, "survived": 0, "no tests": 33, "timeout": 36, "unchecked": None}
    codes |= {"none collected": 5, "equivalent": 0}
    meta.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {"killed": 1.5}}))
    monkeypatch.setattr(mutate, "equivalents", lambda: {"equivalent": "no test can tell"})
    assert mutate.retest_undecided(["games/dynamics.py", "games/analysis.py"]) == 3
    data = json.loads(meta.read_text())
    assert data["exit_code_by_key"] == {
        "killed": 1,
        "survived": None,
        "no tests": None,
        "timeout": 36,
        "unchecked": None,
        "none collected": None,
        "equivalent": 0,  # judged equivalent: not retested
    }
    assert data["durations_by_key"] == {"killed": 1.5}


def test_an_interrupted_run_still_writes_the_report_of_what_it_decided(tmp_path, monkeypatch):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mutate, "REPO", tmp_path)
    monkeypatch.setattr(mutate, "core_modules", lambda: ["games/dynamics.py", "games/adjusted.py"])
    monkeypatch.setattr(mutate, "REPORT", tmp_path / "report.md")
    monkeypatch.setattr(mutate, "EQUIVALENTS", tmp_path / "equivalents.txt")
    monkeypatch.setattr(mutate.subprocess, "run", stopped)
    statuses = {"games.dynamics.x_a__mutmut_1": "killed", "games.dynamics.x_a__mutmut_2": "not checked"}
    monkeypatch.setattr(mutate, "results", lambda: statuses)
    assert mutate.main(["games/dynamics.py"]) == 130
    report = (tmp_path / "report.md").read_text()
    assert "| `games/dynamics.py` | 2 | 1 | 0 | 0 | 1 | 100.0% |" in report


def test_a_reason_written_for_an_earlier_version_of_its_function_is_not_trusted(tmp_path, monkeypatch):
    """mutmut numbers a function's mutants anew when the function changes, so `_2`'s reason may now
    describe another mutation: each reason names the hash of the source it was written for, and
    one whose function has changed since counts its mutant as surviving, marked stale."""
    monkeypatch.setattr(mutate, "REPO", tmp_path)
    meta = tmp_path / "mutants" / "games" / "dynamics.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": {}, "hash_by_function_name": {"x_a": "new"}}))
    reasons = tmp_path / "equivalents.txt"
    reasons.write_text(
        "# a comment\n"
        "games.dynamics.x_a__mutmut_1 @new: same numbers\n"
        "games.dynamics.x_a__mutmut_2 @old: same numbers\n"
    )
    monkeypatch.setattr(mutate, "EQUIVALENTS", reasons)
    monkeypatch.setattr(mutate, "SURVIVORS", tmp_path / "survivors.txt")
    monkeypatch.setattr(mutate, "REPORT", tmp_path / "report.md")
    monkeypatch.setattr(mutate, "core_modules", lambda: ["games/dynamics.py"])
    assert mutate.function_hash("games.dynamics.x_a__mutmut_2") == "new"
    assert mutate.equivalents() == {"games.dynamics.x_a__mutmut_1": "same numbers"}
    statuses = {"games.dynamics.x_a__mutmut_1": "survived", "games.dynamics.x_a__mutmut_2": "survived"}
    report = mutate.write_report(["games/dynamics.py"], statuses, 1.0)
    assert "| `games/dynamics.py` | 2 | 0 | 1 | 1 | 0 | 0.0% |" in report
    assert "- equivalent `games.dynamics.x_a__mutmut_1`: same numbers" in report
    stale = "its reason was written for an earlier version of its function"
    assert f"- **surviving** `games.dynamics.x_a__mutmut_2 @new` (survived): {stale}" in report
