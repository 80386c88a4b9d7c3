"""Atomic file writes of strict JSON: a killed process leaves the old file or the new one, never
half of one, and no file holds the NaN or Infinity tokens that strict JSON parsers reject (a
non-finite number is written as null, and the writer lists where)."""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_atomic(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file an ordinary file's mode
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def png_data_url(png: bytes) -> str:
    """PNG bytes as a `data:` URL, for a page that embeds its images."""
    return "data:image/png;base64," + base64.b64encode(png).decode()


def write_json(path: Path, obj: Any) -> None:
    """`obj` as indented strict JSON (see `strict`)."""
    text = json.dumps(strict(obj)[0], indent=2, allow_nan=False)
    write_atomic(path, lambda f: f.write(text))


def strict(obj: Any) -> tuple[Any, list[str]]:
    """`obj` as plain JSON values (tensors and arrays as lists, tuples as lists, paths as text),
    with every non-finite float replaced by None; and the top-level keys where that happened."""
    if isinstance(obj, dict):
        plain, nonfinite = {}, []
        for key, value in obj.items():
            plain[key], found = strict(value)
            if found:
                nonfinite.append(key)
        return plain, nonfinite
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return strict(obj.tolist())
    if isinstance(obj, (list, tuple, set)):
        items = [strict(v) for v in obj]
        return [v for v, _ in items], ["*"] if any(found for _, found in items) else []
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, ["*"]
    if isinstance(obj, Path):
        return str(obj), []
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj, []
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The rows of a JSON-lines file and the number of lines that were not a JSON object (a line
    torn by a killed writer): each is skipped, the rows after it are kept."""
    rows, torn = [], 0
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                rows.append(row)
            else:
                torn += 1
    return rows, torn
