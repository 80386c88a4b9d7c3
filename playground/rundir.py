"""A run directory belongs to one run: an exclusive lock while it runs, and no mixing with the
files of another run.

`claim` takes an advisory `flock` on `<dir>/.lock` (released by the kernel when the process ends,
however it ends), so a second writer fails at once. A directory that already holds files is
refused unless the caller replaces them (`overwrite`) or continues them (`keep`, a run resumed in
place).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playground.errors import BadInput

LOCK = ".lock"
# summary.json keys that measure what a run cost, not what it found: left out of result tables
COST_KEYS = ("wall_s", "peak_gpu_memory_mib")


@contextmanager
def claim(directory: Path, overwrite: bool = False, keep: bool = False, what: str = "run") -> Iterator[Path]:
    """Hold `directory` exclusively for the body of the `with`; see the module docstring."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise BadInput(f"cannot write to --out {str(directory)!r}: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInput(
                f"{str(directory)!r} is in use by another playground process; "
                "wait for it or choose another --out"
            ) from None
        others = sorted(p.name for p in directory.iterdir() if p.name != LOCK)
        if others and not keep:
            if not overwrite:
                shown = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
                raise BadInput(
                    f"{str(directory)!r} already holds another {what}'s files ({shown}); "
                    "pass --overwrite to replace them, or choose another --out"
                )
            for name in others:
                path = directory / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        yield directory
    finally:
        os.close(fd)
