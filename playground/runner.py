"""One run: a run directory, its logged metrics, and the summary written when it ends.

A run directory holds `config.json` (resolved config, seed, command line, package versions),
`metrics.jsonl` (one JSON object per logged step), `summary.json` (written atomically at the end,
also after a divergence, an error in the input or Ctrl-C) and the scenario's PNG plots.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from tqdm import tqdm

from playground.config import config_dict
from playground.files import write_atomic, write_json
from playground.scenario import Scenario

_PACKAGES = ("torch", "numpy", "learn2learn", "gymnasium", "matplotlib")


class Run:
    """What a scenario's `run` function gets: where to log, plot and report progress."""

    def __init__(self, directory: Path, tensorboard: bool = False, progress: bool | None = None):
        self.dir = Path(directory)
        self._metrics = open(self.dir / "metrics.jsonl", "a")
        self._show_progress = sys.stderr.isatty() if progress is None else progress
        self._tensorboard = _summary_writer(self.dir) if tensorboard else None
        self.last_row: dict[str, Any] = {}
        self.last_finite: dict[str, float] = {}
        self.first_nonfinite_step: int | None = None

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one row `{"step": step, **metrics}` to metrics.jsonl."""
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        self.last_row = row
        for key, value in row.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                if self.first_nonfinite_step is None:
                    self.last_finite[key] = value
            elif self.first_nonfinite_step is None:
                self.first_nonfinite_step = int(step)
            if self._tensorboard is not None and key != "step":
                self._tensorboard.add_scalar(key, value, int(step))

    def progress(self, iterable: Iterable, total: int | None = None, desc: str | None = None):
        """`iterable` with a progress bar on a terminal; silent otherwise."""
        return tqdm(iterable, total=total, desc=desc, disable=not self._show_progress,
                    leave=False, dynamic_ncols=True)

    def save_figure(self, fig, name: str) -> Path:
        """Write a matplotlib Figure to `<name>.png` in the run directory."""
        path = self.dir / f"{name}.png"
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"),
                     mode="wb")
        fig.clear()
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        path = self.dir / f"{name}.json"
        write_json(path, obj)
        return path

    def close(self) -> None:
        self._metrics.close()
        if self._tensorboard is not None:
            self._tensorboard.close()


def execute(scenario: Scenario, config: Any, directory: Path, argv: list[str] | None = None,
            progress: bool | None = None) -> dict:
    """Run `scenario` with `config` in `directory`; return the summary (also in summary.json).

    A `ValueError` raised by the scenario is bad input found late (a missing data directory, say):
    it is recorded in the summary as `error` and raised again for the CLI to report.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / "config.json", {
        "scenario": scenario.name,
        "config": config_dict(config),
        "seed": config.seed,
        "command": list(sys.argv if argv is None else argv),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    seed_everything(config.seed)
    run = Run(directory, tensorboard=config.tensorboard, progress=progress)
    summary: dict[str, Any] = {"scenario": scenario.name}
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or threads)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            # torch.func's forward mode scripts torch's own decompositions on first use
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                                    category=FutureWarning)
            summary.update(scenario.run(config, run) or {})
    except KeyboardInterrupt:
        summary.update(interrupted=True, last_logged=run.last_row)
        raise
    except ValueError as error:
        summary.update(error=str(error), last_logged=run.last_row)
        raise
    finally:
        torch.set_num_threads(threads)
        run.close()
        summary["wall_s"] = round(time.perf_counter() - start, 3)
        summary.setdefault("interrupted", False)
        _record_divergence(summary, run)
        write_json(directory / "summary.json", summary)
    return summary


def _record_divergence(summary: dict, run: Run) -> None:
    """Mark a run whose metrics turned non-finite as diverged, unless the scenario said so."""
    if run.first_nonfinite_step is not None and not summary.get("diverged"):
        summary.update(diverged=True, diverged_step=run.first_nonfinite_step,
                       last_finite=run.last_finite)
    summary.setdefault("diverged", False)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    commit = _git_commit()
    if commit:
        found["playground_commit"] = commit
    return found


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _plain(value: Any) -> Any:
    """Tensors and numpy values as plain Python numbers or lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def _summary_writer(directory: Path):
    from torch.utils.tensorboard import SummaryWriter  # heavy: imported only when asked for

    return SummaryWriter(log_dir=str(directory / "tensorboard"))
