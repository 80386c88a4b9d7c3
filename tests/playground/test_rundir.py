"""The run directory's schema, in one place: its file names, the outcome a summary records, and
the record of a diverged run."""

import json
import re
from pathlib import Path

import pytest

from playground import rundir
from playground.cli import main
from playground.errors import BadInput
from playground.rundir import claim, diverged, run_status

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "summary, status",
    [
        ({"status": "finished", "diverged": False}, "finished"),
        ({"status": "diverged", "diverged": True}, "diverged"),
        ({"status": "failed", "diverged": True, "error": {"type": "RuntimeError"}}, "failed"),
        ({"status": "interrupted"}, "interrupted"),
        ({"status": "finished", "diverged": True}, "diverged"),  # the runner's own reading of its end
        # summaries written before runs recorded a status
        ({"diverged": False}, "finished"),
        ({"diverged": True, "diverged_step": 3}, "diverged"),
        ({"error": {"type": "RuntimeError"}, "diverged": True}, "failed"),
        ({"interrupted": True}, "interrupted"),
        ({}, "finished"),
    ],
)
def test_the_status_a_summary_records(summary, status):
    assert run_status(summary) == status


def test_the_diverged_record():
    assert diverged(7, {"loss": 0.5}) == {"diverged": True, "diverged_step": 7, "last_finite": {"loss": 0.5}}
    assert diverged(0, {}) == {"diverged": True, "diverged_step": 0, "last_finite": {}}
    assert diverged(3) == {"diverged": True, "diverged_step": 3}  # a loop that keeps no last values


def test_a_resume_name_the_file_system_cannot_look_up_is_refused_in_one_line():
    """A name longer than the file system takes: Path.is_file raised OSError (File name too long)."""
    name = "r" * 400
    with pytest.raises(ValueError) as raised:
        rundir.check_resume(name, "maml")
    assert str(raised.value) == (
        f"resume={name!r} names no readable run directory (File name too long); valid: a maml run "
        "directory written with checkpoint_every > 0"
    )
    with pytest.raises(
        ValueError, match=r"^resume='nope' holds no checkpoint.pt; valid: a icl run directory"
    ):
        rundir.check_resume("nope", "icl")


def test_file_names_are_written_only_in_rundir():
    names = [rundir.CONFIG, rundir.METRICS, rundir.SUMMARY, rundir.CHECKPOINT, rundir.SWEEP_TABLE]
    names.append(rundir.MARKER)
    quoted = re.compile("|".join(rf"[\"']{re.escape(name)}[\"']" for name in names))
    found = [
        f"{path.relative_to(REPO)}: {match.group()}"
        for folder in ("playground", "tools", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "rundir.py"
        for match in quoted.finditer(path.read_text())
    ]
    assert found == []


# A directory is playground's by its marker alone; --overwrite replaces nothing else.


def snapshot(root):
    """Every path under `root` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


@pytest.fixture
def checkout(tmp_path):
    """A user's git checkout, as far as --out can tell: a .git folder and their files."""
    root = tmp_path / "checkout"
    (root / ".git" / "objects" / "ab").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "objects" / "ab" / "cdef").write_bytes(b"\x78\x01blob")
    (root / "README.md").write_text("my project\n")
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    return root


def test_claim_marks_what_it_takes(tmp_path):
    with claim(tmp_path / "r"):
        pass
    with claim(tmp_path / "s", what="sweep"):
        pass
    assert json.loads((tmp_path / "r" / rundir.MARKER).read_text()) == {"kind": "run"}
    assert json.loads((tmp_path / "s" / rundir.MARKER).read_text()) == {"kind": "sweep"}


@pytest.mark.parametrize("overwrite, keep", [(False, False), (True, False), (False, True)])
def test_a_directory_without_the_marker_is_refused_and_left_alone(checkout, overwrite, keep):
    before = snapshot(checkout)
    refusal = r"'.*checkout' holds files playground did not mark as its own \(.git, "
    with pytest.raises(BadInput, match=refusal):
        with claim(checkout, overwrite=overwrite, keep=keep):
            pytest.fail("claimed a user's checkout")
    assert snapshot(checkout) == before  # not even a lock file added


@pytest.mark.parametrize("args", [["run", "toy", "steps=2"], ["sweep", "toy", "lr=0.1,0.2", "steps=2"]])
def test_out_dot_overwrite_in_a_git_checkout_is_refused(toy, checkout, monkeypatch, capsys, args):
    monkeypatch.chdir(checkout)
    before = snapshot(checkout)
    assert main([*args, "--out", ".", "--overwrite"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "playground: error: '.' holds files playground did not mark as its own (.git, README.md, src; "
        "no .playground), so they are left alone; valid: a new or empty --out, or a directory playground "
        "wrote (one written before playground marked its directories: delete it yourself)"
    ]
    assert snapshot(checkout) == before


def test_a_run_written_before_markers_is_not_replaced(toy, tmp_path, monkeypatch, capsys):
    # Decision: no guess from file names. Its owner deletes it (or resumes it into a new --out).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text('{"scenario": "toy"}')
    (tmp_path / "old" / "summary.json").write_text('{"status": "finished"}')
    before = snapshot(tmp_path / "old")
    assert main(["run", "toy", "steps=2", "--out", "old", "--overwrite"]) == 2
    assert "delete it yourself" in capsys.readouterr().err
    assert snapshot(tmp_path / "old") == before


def test_a_users_own_marker_named_file_is_not_playgrounds(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / rundir.MARKER).write_text("my settings\n")  # not playground's JSON
    with pytest.raises(BadInput, match="did not mark as its own"):
        with claim(tmp_path / "d", overwrite=True):
            pass
    assert (tmp_path / "d" / rundir.MARKER).read_text() == "my settings\n"


def test_overwrite_replaces_a_marked_sweep_with_its_leftovers(tmp_path):
    with claim(tmp_path / "s", what="sweep"):
        with claim(tmp_path / "s" / "lr=0.1"):
            (tmp_path / "s" / "lr=0.1" / "summary.json").write_text("{}")
        (tmp_path / "s" / "lr=0.2").mkdir()  # a point killed before its marker
        (tmp_path / "s" / "sweep.csv").write_text("run,status\n")
        (tmp_path / "s" / ".sweep.csv.k3j2.tmp").write_text("run,")  # a write killed halfway
    with claim(tmp_path / "s", overwrite=True, what="sweep"):
        pass
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [rundir.LOCK, rundir.MARKER]


def test_overwrite_refuses_a_sweep_holding_files_not_its_own(tmp_path):
    with claim(tmp_path / "s", what="sweep"):
        with claim(tmp_path / "s" / "lr=0.1"):
            pass
        (tmp_path / "s" / "notes.txt").write_text("mine\n")
        (tmp_path / "s" / "data").mkdir()
        (tmp_path / "s" / "data" / "x.csv").write_text("1\n")
    before = snapshot(tmp_path / "s")
    with pytest.raises(BadInput, match=r"also holds data, notes.txt, which playground did not write"):
        with claim(tmp_path / "s", overwrite=True, what="sweep"):
            pass
    assert snapshot(tmp_path / "s") == before


def test_overwrite_refuses_a_tree_with_a_lock_held_below(tmp_path):
    with claim(tmp_path / "s", what="sweep"):
        for point in ("a=1", "a=2"):
            with claim(tmp_path / "s" / point):
                (tmp_path / "s" / point / "config.json").write_text("{}")
    before = snapshot(tmp_path / "s")
    with claim(tmp_path / "s" / "a=2", keep=True):  # another process's run, as flock sees it
        in_use = r"'.*a=2' is in use by another playground process, so '.*s' is not replaced"
        with pytest.raises(BadInput, match=in_use):
            with claim(tmp_path / "s", overwrite=True, what="sweep"):
                pytest.fail("claimed a sweep whose point is in use")
    assert snapshot(tmp_path / "s") == before  # nothing deleted, a=1 included


def test_keep_needs_the_marker_of_its_own_kind(tmp_path):
    with claim(tmp_path / "r"):
        (tmp_path / "r" / "config.json").write_text("{}")
    with pytest.raises(BadInput, match=r"is a run directory, not a sweep's; .* pass --overwrite"):
        with claim(tmp_path / "r", keep=True, what="sweep"):
            pass
    with claim(tmp_path / "r", keep=True):  # a run resumed in place
        assert (tmp_path / "r" / "config.json").read_text() == "{}"


def test_keep_wins_over_overwrite(tmp_path):
    with claim(tmp_path / "r"):
        (tmp_path / "r" / "checkpoint.pt").write_bytes(b"state")
    with claim(tmp_path / "r", overwrite=True, keep=True):
        pass
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == b"state"
