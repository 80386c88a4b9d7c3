"""The repository as a fresh clone sees it: no tracked links, the environment kept out of git, and
every file the README links to."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


def git(*args, **kwargs):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, **kwargs)


@pytest.fixture(autouse=True)
def _needs_git():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")


def test_git_tracks_no_symbolic_links():
    entries = git("ls-files", "-s").stdout.splitlines()
    assert entries
    links = [line.split("\t")[1] for line in entries if line.startswith("120000")]
    assert links == []


@pytest.mark.parametrize("kind", ["link", "directory", "file"])
def test_venv_is_ignored_whatever_it_is(kind, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    (clone / ".gitignore").write_text((REPO / ".gitignore").read_text())
    venv = clone / ".venv"
    if kind == "link":
        venv.symlink_to("/nowhere/venv")
    elif kind == "directory":
        venv.mkdir()
        (venv / "pyvenv.cfg").write_text("")
    else:
        venv.write_text("")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True)
    assert ".venv" not in status.stdout


@pytest.mark.parametrize(
    "setup, kept",
    [
        ("dangling", False),
        ("to_file", False),
        ("to_foreign_dir", False),
        ("plain_file", False),
        ("to_venv", True),
        ("to_empty_dir", True),
        ("directory", True),
    ],
)
def test_make_replaces_a_dangling_or_foreign_venv(setup, kept, tmp_path):
    venv, target = tmp_path / ".venv", tmp_path / "target"
    if setup == "dangling":
        venv.symlink_to(tmp_path / "gone")
    elif setup == "to_file":
        target.write_text("")
        venv.symlink_to(target)
    elif setup == "to_foreign_dir":
        target.mkdir()
        (target / "notes.txt").write_text("")
        venv.symlink_to(target)
    elif setup == "plain_file":
        venv.write_text("")
    elif setup == "to_venv":
        target.mkdir()
        (target / "pyvenv.cfg").write_text("")
        venv.symlink_to(target)
    elif setup == "to_empty_dir":
        target.mkdir()
        venv.symlink_to(target)
    else:
        venv.mkdir()
    subprocess.run(["sh", str(REPO / "tools" / "venv-link.sh"), str(venv)], check=True)
    assert (venv.exists() or venv.is_symlink()) == kept
    if setup.startswith("to_") or setup == "dangling":
        assert target.exists() == (setup != "dangling")  # the link goes, never what it pointed to


def test_every_relative_link_of_the_readme_names_a_file_in_the_repository():
    readme = (REPO / "README.md").read_text()
    targets = {t for t in re.findall(r"\]\(([^)#\s]+)\)", readme) if "://" not in t}
    assert {"tutorials/01_games.py", "docs/tutorials/01_games.png"} <= targets
    assert sorted(t for t in targets if not (REPO / t).exists()) == []
