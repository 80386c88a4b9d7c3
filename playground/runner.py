"""One run: its directory (laid out as `playground.rundir` says), its logged metrics, its
checkpoint, and the summary written when it ends, whatever the outcome, with its `status`. Every
file is strict JSON: a non-finite number is written as null and listed under "nonfinite".
"""

from __future__ import annotations

import json
import platform
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from playground.config import config_dict, format_value, option_defaults
from playground.devices import resolve_device
from playground.errors import BadInput, OutOfMemory
from playground.files import strict, write_atomic, write_json
from playground.provenance import versions
from playground.ranks import all_agree, process_group, world_size
from playground.resources import check_threads
from playground.rundir import (
    CHECKPOINT,
    CONFIG,
    FAILED,
    FIGURE_SUFFIX,
    FINISHED,
    INTERRUPTED,
    METRICS,
    SUMMARY,
    TENSORBOARD,
    claim,
    diverged,
    resumes_in_place,
    run_status,
)
from playground.scenario import Scenario


class Run:
    """What a scenario's `run` function gets: where to log, plot and report progress."""

    def __init__(
        self,
        directory: Path,
        tensorboard: bool = False,
        progress: bool | None = None,
        device: torch.device | None = None,
    ):
        self.dir = Path(directory)
        self.device = device or torch.device("cpu")  # where the scenario puts its models and tensors
        path = self.dir / METRICS
        self.rows = sum(1 for _ in open(path)) if path.exists() else 0  # rows in metrics.jsonl
        self._metrics = open(path, "a")
        self._show_progress = progress_shown() if progress is None else progress
        self._tensorboard = _summary_writer(self.dir) if tensorboard else None
        self.last_row: dict[str, Any] = {}
        self.last_finite: dict[str, float] = {}
        self.first_nonfinite_step: int | None = None
        self.checkpoint: Checkpointer | None = None  # for a scenario that declares a Checkpoint

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one row `{"step": step, **metrics}` to metrics.jsonl: strict JSON, a non-finite
        number written as null and its key listed under "nonfinite"."""
        row, nonfinite = strict({"step": int(step), **metrics})
        if nonfinite:
            row["nonfinite"] = nonfinite
        self._metrics.write(json.dumps(row, allow_nan=False) + "\n")
        self._metrics.flush()
        self.rows += 1
        self.last_row = row
        if nonfinite and self.first_nonfinite_step is None:
            self.first_nonfinite_step = int(step)
        for key, value in row.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or key == "step":
                continue
            if self.first_nonfinite_step is None:
                self.last_finite[key] = value
            if self._tensorboard is not None:
                self._tensorboard.add_scalar(key, value, int(step))

    def truncate_metrics(self, rows: int) -> None:
        """Keep the first `rows` rows of metrics.jsonl (a run resumed in place from a checkpoint
        taken when it held that many), so no row is written twice."""
        self._metrics.close()
        path = self.dir / METRICS
        with open(path) as f:
            kept = [line for _, line in zip(range(rows), f)]
        write_atomic(path, lambda f: f.writelines(kept))
        self.rows = len(kept)
        self._metrics = open(path, "a")

    def progress(self, iterable: Iterable, total: int | None = None, desc: str | None = None):
        """`iterable` with a progress bar where one was asked for (by default on a terminal or in
        a notebook, as a widget there when ipywidgets is installed); silent otherwise."""
        bar = _notebook_bar() if self._show_progress and _in_notebook() else tqdm
        return bar(
            iterable, total=total, desc=desc, disable=not self._show_progress, leave=False, dynamic_ncols=True
        )

    def save_figure(self, fig, name: str) -> Path:
        """Write a matplotlib Figure to `<name>.png` in the run directory."""
        path = self.dir / f"{name}{FIGURE_SUFFIX}"
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"), mode="wb")
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


def progress_shown() -> bool:
    """Whether a run shows progress by default: on a terminal, or in a notebook."""
    return sys.stderr.isatty() or _in_notebook()


def _in_notebook() -> bool:
    """Whether this is a Jupyter kernel (where stderr is no terminal, yet a person watches)."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _notebook_bar():
    """tqdm's notebook widget where ipywidgets is installed; its text bar otherwise."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.notebook import tqdm as widget
    except ImportError:
        return tqdm
    return widget


class Checkpointer:
    """A run's checkpoint (`checkpoint.pt` in its directory), for a scenario that declares one.

    `save(step, state)` writes the scenario's `state` (tensors, numbers, text, and lists and dicts
    of them) atomically, with the step it was taken after, the options a resumed run must keep and
    the number of metrics rows logged so far. `load()` gives back `(step, state)` from the run
    directory `resume=` names (None when the run starts afresh), read by `read_checkpoint`, which
    `check` has already run before the run directory was touched; a run resumed in its own
    directory drops the metrics rows logged after the checkpoint.
    """

    def __init__(self, run: Run, config: Any, scenario: Scenario):
        self._run, self._config, self._scenario = run, config, scenario

    def save(self, step: int, state: dict[str, Any]) -> None:
        options = _fixed_options(self._scenario, self._config)
        saved = {"iteration": step, "metrics_rows": self._run.rows, "options": options, **state}
        write_atomic(self._run.dir / CHECKPOINT, lambda f: torch.save(saved, f), mode="wb")

    def load(self) -> tuple[int, dict[str, Any]] | None:
        saved = read_checkpoint(self._scenario, self._config)
        if saved is None:
            return None
        rows = saved.get("metrics_rows")  # None: written before rows were counted
        if resumes_in_place(self._config.resume, self._run.dir) and rows is not None:
            self._run.truncate_metrics(rows)
        return saved["iteration"], {k: v for k, v in saved.items() if k not in _CHECKPOINTER_KEYS}


_CHECKPOINTER_KEYS = ("iteration", "metrics_rows", "options")  # written beside the scenario's state


def read_checkpoint(scenario: Scenario, config: Any) -> dict[str, Any] | None:
    """The checkpoint `config.resume` names (None when the run starts afresh), once it is known
    to continue this run: its options are this run's, but those the scenario's
    `Checkpoint.may_change` (an option the checkpoint does not name, one added since, counts at its
    default), and its step is within this run's budget. Anything else is `BadInput`."""
    resume, name = config.resume, scenario.name
    if not resume:
        return None
    path = Path(resume) / CHECKPOINT
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")  # the scenario moves it
        theirs, step = dict(saved["options"]), int(saved["iteration"])
    except Exception as error:  # truncated, corrupt, or not ours
        raise BadInput(
            f"resume={resume!r}: cannot read {path}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}; valid: a {name} run's checkpoint"
        ) from None
    theirs = {k: theirs.get(k, default) for k, default in option_defaults(config).items()}
    ours = _fixed_options(scenario, config)
    changed = [f"{k}={theirs[k]!r} there, {v!r} here" for k, v in ours.items() if theirs[k] != v]
    if changed:
        raise BadInput(
            f"resume={resume!r} was run with other options ({'; '.join(changed)}); "
            f"only {', '.join(scenario.checkpoint.may_change)} may change"
        )
    budget = scenario.checkpoint.budget
    if step > getattr(config, budget):
        raise BadInput(
            f"{budget}={getattr(config, budget)} is below the checkpoint's {step}; valid: >= {step}"
        )
    return saved


def _fixed_options(scenario: Scenario, config: Any) -> dict[str, Any]:
    """The options a run resumed from this config's checkpoint must keep."""
    may_change = scenario.checkpoint.may_change
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in may_change}


def execute(
    scenario: Scenario,
    config: Any,
    directory: Path,
    argv: list[str] | None = None,
    progress: bool | None = None,
    overwrite: bool = False,
) -> dict:
    """Run `scenario` with `config` in `directory`; return the summary (also in summary.json).

    The directory must be empty, or hold this run's own files when the config resumes it in place
    (`resume=` the same directory), or be replaced whole (`overwrite`); it is locked for the run.
    Nothing is touched before `check` passes: a refusal (`BadInput`) leaves every file as it was;
    a bug in a check is recorded (`record_failure`) and raised.
    summary.json always gets a `status`: `finished`, `diverged`, `interrupted` (Ctrl-C, SIGTERM)
    or `failed`, with `error` (type and message) when failed; the exception is raised again for
    the caller to report, out of memory as `OutOfMemory`, one line naming the `sizes` to lower.
    """
    directory = Path(directory)
    command = list(sys.argv if argv is None else argv)
    try:
        device = check(scenario, config)
    except (BadInput, KeyboardInterrupt):
        raise
    except BaseException as error:  # a bug in a check (a user's scenario or factory): recorded too
        record_failure(directory, scenario.name, config_dict(config), error, command, overwrite)
        raise
    size = world_size()
    if size > 1 and not scenario.data_parallel:
        raise BadInput(
            f"scenario {scenario.name!r} runs in one process; valid under torchrun (WORLD_SIZE={size}): "
            f"a scenario that splits its work across processes ({splitting_scenarios()})"
        )
    in_place = scenario.checkpoint is not None and resumes_in_place(config.resume, directory)
    with process_group(device) as (rank, device), ExitStack() as stack:
        if rank > 0:  # rank 0 alone writes the run directory
            if not all_agree(True, device):
                raise BadInput(f"rank 0 did not take {str(directory)!r} (its message says why)")
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"playground-rank{rank}-")))
            stack.enter_context(random_state_kept())
            return _execute(scenario, config, scratch, command, False, device)
        try:
            stack.enter_context(claim(directory, overwrite=overwrite, keep=in_place))
        except BaseException:
            if size > 1:
                all_agree(False, device)
            raise
        if size > 1:
            all_agree(True, device)
        stack.enter_context(random_state_kept())
        return _execute(scenario, config, directory, command, progress, device)


def splitting_scenarios() -> str:
    """The registered scenarios that split their work across processes (`data_parallel`), in
    words for a refusal."""
    from playground.scenarios import SCENARIOS

    return ", ".join(name for name, s in SCENARIOS.items() if s.data_parallel)


def check(scenario: Scenario, config: Any) -> torch.device:
    """What a run of `config` needs beyond its options' types and bounds (which `build_config`
    checks), checked before any file is touched: its device, its threads, the checkpoint it
    resumes (`read_checkpoint`), and the scenario's own `check` (memory, data). Returns the device;
    a refusal is `BadInput`. Resources are checked here, not when the config is built: a sweep
    builds its configs where it starts, and runs them where its launcher puts them."""
    try:
        device = resolve_device(config.device)
        check_threads(config.threads)
        if scenario.checkpoint is not None:
            read_checkpoint(scenario, config)
        if scenario.check is not None:
            with _torch_quiet():
                scenario.check(config, device)
    except BadInput:
        raise
    except ValueError as error:
        raise BadInput(str(error)) from None
    return device


@contextmanager
def _torch_quiet() -> Iterator[None]:
    """Without the FutureWarning torch.func's forward mode gives when it first scripts torch's own
    decompositions: nothing a user can act on, and noise above a refusal's one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
        yield


def record_failure(
    directory: Path,
    scenario: str,
    config: dict,
    error: BaseException,
    argv: list[str],
    overwrite: bool = False,
) -> None:
    """Record a run that failed before it started, by a bug in the code that built or checked its
    config (a user's game, factory or scenario, or ours): config.json with what is known of the
    config, summary.json with status `failed` and the error. A directory that holds files is
    replaced only with `overwrite`; where it cannot be written, a note on `error` says why."""
    try:
        with claim(directory, overwrite=overwrite):
            started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            record = {"scenario": scenario, "config": config, "command": argv, "versions": versions()}
            write_json(directory / CONFIG, {**record, "started": started})
            write_json(directory / SUMMARY, {"status": FAILED, "scenario": scenario, "error": _error(error)})
    except BadInput as refusal:
        error.add_note(f"playground: the failure is not recorded in {str(directory)!r}: {refusal}")


def _error(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)}


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocator's refusal: torch's CUDA or CPU allocator, or Python's."""
    cpu = isinstance(error, RuntimeError) and any(text in str(error) for text in _CPU_ALLOCATOR)
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or cpu


_CPU_ALLOCATOR = ("can't allocate memory", "not enough memory")  # DefaultCPUAllocator's messages


def _out_of_memory(
    scenario: Scenario, config: Any, device: torch.device, error: BaseException
) -> OutOfMemory:
    """One line: the allocator's words and the options to lower (the scenario's `sizes`)."""
    said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    values = {name: getattr(config, name) for name in scenario.sizes}
    sizes = ", ".join(f"{name}={format_value(value)}" for name, value in values.items() if value is not None)
    lower = sizes or "the settings that size its batches, data and models"
    return OutOfMemory(f"out of {device.type} memory during the run ({said}); valid: lower {lower}")


def _execute(scenario, config, directory, command, progress, device) -> dict:
    write_json(
        directory / CONFIG,
        {
            "scenario": scenario.name,
            "config": config_dict(config),
            "seed": config.seed,
            "command": command,
            "versions": versions(),
            "device": device_info(device),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    seed_everything(config.seed)
    run = Run(directory, tensorboard=config.tensorboard, progress=progress, device=device)
    if scenario.checkpoint is not None:
        run.checkpoint = Checkpointer(run, config, scenario)
    summary: dict[str, Any] = {"scenario": scenario.name}
    ended = FAILED
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads or threads)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        with _torch_quiet():
            summary.update(scenario.run(config, run) or {})
        ended = FINISHED
    except KeyboardInterrupt:
        ended = INTERRUPTED
        summary["last_logged"] = run.last_row
        raise
    except BaseException as error:
        summary.update(error=_error(error), last_logged=run.last_row)
        if out_of_memory(error):
            short = _out_of_memory(scenario, config, device, error)
            summary["error"] = _error(short)
            raise short from error
        raise
    finally:
        torch.set_num_threads(threads)
        run.close()
        summary["wall_s"] = round(time.perf_counter() - start, 3)
        if device.type == "cuda":  # the CUDA allocator's peak: what the run needs of the GPU's memory
            summary["peak_gpu_memory_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        _record_divergence(summary, run)
        summary = {"status": run_status({**summary, "status": ended}), **summary}
        summary, nonfinite = strict(summary)
        if nonfinite:
            summary["nonfinite"] = nonfinite
        write_json(directory / SUMMARY, summary)
    return summary


def _record_divergence(summary: dict, run: Run) -> None:
    """Mark a run whose metrics turned non-finite as diverged, unless the scenario said so."""
    if run.first_nonfinite_step is not None and not summary.get("diverged"):
        summary.update(diverged(run.first_nonfinite_step, run.last_finite))
    summary.setdefault("diverged", False)


def device_info(device: torch.device) -> dict[str, Any]:
    """The device a run used, by name, with the CUDA version torch was built with; on a GPU also
    its memory and whether float32 products may run in TF32 (torch's defaults: not matrix
    products, but cuDNN convolutions). No run uses mixed precision."""
    info: dict[str, Any] = {"type": device.type, "torch": torch.__version__, "cuda": torch.version.cuda}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
        info["tf32"] = {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
        }
    else:
        info["name"] = platform.processor() or platform.machine()
    return info


@contextmanager
def random_state_kept() -> Iterator[None]:
    """Python's, numpy's and torch's global random states (CUDA's too, once initialised) as they
    were before, whatever ran inside: a run seeds them, its caller's stream goes on untouched."""
    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _summary_writer(directory: Path):
    from torch.utils.tensorboard import SummaryWriter  # heavy: imported only when asked for

    return SummaryWriter(log_dir=str(directory / TENSORBOARD))
