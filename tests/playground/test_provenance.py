"""A run records what code made it (version, commit, uncommitted changes), asking git never fails a
run, and the report warns when the runs in its table come from different states of the code."""

import hashlib
import importlib.metadata
import json
import subprocess

import pytest

from playground import provenance
from playground.page import write_report

_GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false")


def git(repo, *args) -> bytes:
    return subprocess.run([*_GIT, *args], cwd=repo, capture_output=True, check=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A checkout with one commit, its package in `pkg/` as playground's is in its own."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "module.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_a_clean_checkout_records_its_commit_and_no_hash(repo):
    state = provenance.git_state(repo / "pkg")
    assert state == {
        "playground_commit": git(repo, "rev-parse", "HEAD").decode().strip(),
        "playground_dirty": False,
    }


def test_a_modified_tracked_file_makes_it_dirty_with_the_hash_of_the_diff(repo):
    (repo / "pkg" / "module.py").write_text("x = 2\n")
    (repo / "untracked.py").write_text("ignored\n")
    state = provenance.git_state(repo / "pkg")
    assert state["playground_dirty"] is True
    assert (
        state["playground_diff_sha256"] == hashlib.sha256(git(repo, "diff", "HEAD", "--binary")).hexdigest()
    )


def test_the_same_changes_give_the_same_hash_and_others_another(repo):
    module = repo / "pkg" / "module.py"
    module.write_text("x = 2\n")
    first = provenance.git_state(repo / "pkg")["playground_diff_sha256"]
    module.write_text("x = 1\n")
    assert provenance.git_state(repo / "pkg")["playground_dirty"] is False
    module.write_text("x = 2\n")
    assert provenance.git_state(repo / "pkg")["playground_diff_sha256"] == first
    module.write_text("x = 3\n")
    assert provenance.git_state(repo / "pkg")["playground_diff_sha256"] != first


def test_code_outside_a_checkout_or_without_git_records_no_git_keys(repo, tmp_path_factory, monkeypatch):
    outside = tmp_path_factory.mktemp("not_a_repo")
    (repo / "site-packages").mkdir()  # a copy installed into a venv inside some other repository
    assert provenance.git_state(outside) == {}
    assert provenance.git_state(repo / "site-packages") == {}
    assert not any(key.startswith("playground_") for key in provenance.versions(outside))
    monkeypatch.setenv("PATH", str(outside))  # no git at all
    assert provenance.git_state(repo / "pkg") == {}


def test_a_git_that_hangs_is_given_up(repo, monkeypatch):
    def hang(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs["timeout"])

    monkeypatch.setattr(provenance.subprocess, "run", hang)
    assert provenance.git_state(repo / "pkg") == {}


def test_versions_names_the_installed_package_and_keeps_the_libraries(monkeypatch, tmp_path):
    found = provenance.versions(tmp_path)
    assert found["playground"] == importlib.metadata.version("playground")
    assert {"python", "platform", "torch", "numpy"} <= set(found)
    installed = importlib.metadata.version

    def without_playground(name):
        if name == "playground":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(provenance.importlib.metadata, "version", without_playground)
    assert "playground" not in provenance.versions(tmp_path)


@pytest.mark.parametrize(
    "versions, shown",
    [
        (
            {"playground": "0.1.0", "playground_commit": "a" * 40, "playground_dirty": False},
            "0.1.0 aaaaaaaaaa",
        ),
        (
            {"playground_commit": "a" * 40, "playground_dirty": True, "playground_diff_sha256": "f" * 64},
            "aaaaaaaaaa (modified ffffffff)",
        ),
        ({"playground_commit": "a" * 40, "playground_dirty": True}, "aaaaaaaaaa (modified)"),
        ({"playground": "0.1.0"}, "0.1.0"),
        ({"torch": "2.0"}, ""),
    ],
)
def test_label_is_the_version_the_short_commit_and_a_modified_mark(versions, shown):
    assert provenance.label(versions) == shown


def runs_made_by(tmp_path, *versions):
    """Run directories written by hand, one per entry of `versions`, as `playground run` lays them out."""
    for i, recorded in enumerate(versions):
        run = tmp_path / "runs" / f"r{i}"
        run.mkdir(parents=True)
        config = {"scenario": "toy", "config": {"seed": i}, "versions": recorded}
        (run / "config.json").write_text(json.dumps(config))
        (run / "summary.json").write_text(json.dumps({"status": "finished", "scenario": "toy"}))
    return write_report([tmp_path / "runs"], tmp_path / "r.html").read_text()


def test_the_report_warns_when_runs_come_from_different_commits(tmp_path):
    clean = {"playground": "0.1.0", "playground_commit": "a" * 40, "playground_dirty": False}
    dirty = {
        **clean,
        "playground_commit": "b" * 40,
        "playground_dirty": True,
        "playground_diff_sha256": "c" * 64,
    }
    page = runs_made_by(tmp_path, clean, dirty, clean)
    assert "<td class='text differs'>0.1.0 aaaaaaaaaa</td>" in page  # flagged in the scenario's table
    assert "<td class='text differs'>0.1.0 bbbbbbbbbb (modified cccccccc)</td>" in page
    assert "These runs come from 2 states of the code:</strong> 0.1.0 aaaaaaaaaa; 0.1.0 bbbbbbbbbb" in page


def test_the_report_warns_of_different_uncommitted_changes_to_one_commit(tmp_path):
    dirty = {"playground_commit": "a" * 40, "playground_dirty": True, "playground_diff_sha256": "c" * 64}
    page = runs_made_by(tmp_path, dirty, {**dirty, "playground_diff_sha256": "d" * 64})
    assert "These runs come from 2 states of the code" in page


def test_the_report_does_not_warn_about_runs_of_one_commit(tmp_path):
    clean = {"playground": "0.1.0", "playground_commit": "a" * 40, "playground_dirty": False}
    page = runs_made_by(tmp_path, clean, clean, {})  # {}: a run that recorded no code, as older ones
    assert "states of the code" not in page and page.count("<td class='text'>0.1.0 aaaaaaaaaa</td>") == 2
