"""What code made a run, as its config.json records it under "versions": Python, the platform, the
installed versions of playground and the libraries it runs on, and, where playground runs from a git
checkout, the commit and whether the checkout had uncommitted changes to tracked files, with a
sha256 of those changes (`git diff HEAD`) so that runs made from the same uncommitted state can be
matched. `label` is the short form a report shows beside each run.

Asking git never fails a run: without git, outside a checkout, or past the timeout, the git keys
are just absent (and `playground_dirty` alone is absent when only the diff could not be taken).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

_DISTRIBUTION = "playground"  # pyproject.toml's [project] name
_LIBRARIES = ("torch", "numpy", "learn2learn", "gymnasium", "matplotlib")
_PACKAGE = Path(__file__).parent
_GIT_TIMEOUT_S = 5
# Byte-for-byte the same diff whatever the user's git config: full blob ids, binary contents, no
# colour, external diff drivers or text conversion.
_DIFF = ("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv")


def versions(checkout: Path = _PACKAGE) -> dict[str, str | bool]:
    """Python, the platform, each of playground and its libraries that is installed, and the state
    of the git checkout holding `checkout` (playground's own directory), if it is tracked in one."""
    found: dict[str, str | bool] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in (_DISTRIBUTION, *_LIBRARIES):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found | git_state(checkout)


def git_state(directory: Path) -> dict[str, str | bool]:
    """`playground_commit` (HEAD), `playground_dirty` (whether tracked files differ from it) and,
    when dirty, `playground_diff_sha256`; empty unless `directory` holds files tracked by git, so a
    copy installed into site-packages inside some other repository records no commit."""
    if _git(directory, "ls-files", "--error-unmatch", "--", ".") is None:
        return {}
    commit = _git(directory, "rev-parse", "HEAD")
    if commit is None:
        return {}
    state: dict[str, str | bool] = {"playground_commit": commit.decode().strip()}
    diff = _git(directory, *_DIFF)
    if diff is not None:
        state["playground_dirty"] = bool(diff)
        if diff:
            state["playground_diff_sha256"] = hashlib.sha256(diff).hexdigest()
    return state


def _git(directory: Path, *args: str) -> bytes | None:
    """The standard output of `git ARGS` run in `directory`, or None where it fails or times out."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, cwd=directory, timeout=_GIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def label(versions: dict) -> str:
    """The code a run recorded, in short: `0.1.0 1a2b3c4d5e (modified 9f8e7d6c)`, with the commit
    cut to 10 characters and the diff's hash to 8; empty where nothing was recorded."""
    parts = [str(versions[_DISTRIBUTION])] if versions.get(_DISTRIBUTION) else []
    if versions.get("playground_commit"):
        parts.append(str(versions["playground_commit"])[:10])
    if versions.get("playground_dirty") is True:
        digest = str(versions.get("playground_diff_sha256") or "")[:8]
        parts.append(f"(modified {digest})" if digest else "(modified)")
    return " ".join(parts)


def node_facts(probe: str, keys: tuple[str, ...]) -> dict[str, str | bool | None]:
    """What the machine this runs on says of itself for a sweep spread over a cluster: its host
    name, whether it sees the file `probe`, and `keys` of `versions()` (a Ray task pinned to each
    node calls this; it imports nothing heavier than this module)."""
    found = versions()
    return {
        "host": socket.gethostname(),
        "sees the sweep directory": Path(probe).exists(),
        **{key: found.get(key) for key in keys},
    }
