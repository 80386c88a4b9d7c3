"""A grid sweep: every combination of the given values, one run directory each, and sweep.csv.

`key=a,b,c` sweeps a scalar option over three values; an option that itself takes a list is swept
with `;` between alternatives (`init='1,1;2,2'`). Every point's outcome is in sweep.csv's `status`
column. A failed point does not stop the others; re-running a sweep with the same directory (one
playground marked as a sweep's: see `playground.rundir`) skips the points that finished (or
diverged) and redoes the failed, interrupted and missing ones from a clean directory. Local workers
are separate processes that end when the sweep's process ends, by whatever signal; after Ctrl-C no
queued point starts, and a sweep that ends well leaves its workers to end by themselves, so that no
signal reaches one on its way out. On Ray, Ctrl-C or SIGTERM cancels the tasks.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import queue
import re
import signal
import socket
import sys
import threading
import traceback
import typing
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing import get_context
from pathlib import Path

from playground.config import build_config, parse_value
from playground.errors import BadInput, Interrupted
from playground.files import read_json, write_atomic
from playground.provenance import node_facts
from playground.rundir import (
    DIVERGED,
    FINISHED,
    INTERRUPTED,
    SUMMARY,
    SWEEP,
    SWEEP_TABLE,
    claim,
    run_status,
)
from playground.runner import check, execute, progress_shown, record_failure
from playground.scenario import Scenario
from playground.scenarios import get_scenario

DONE = (FINISHED, DIVERGED)  # outcomes a re-run keeps
_CONNECT_S = 5.0  # how long --address gets to answer
_GRACE_S = 10.0  # how long a cancelled Ray point gets to record its end
_SAME_ON_EVERY_NODE = ("python", "torch", "playground", "playground_commit")


def grid(scenario: Scenario, overrides: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Every combination of the swept values, each validated as a run of it would be (its config
    built, then what it needs beyond its options: device, threads, memory, data), so a refusal
    comes before any point runs."""
    hints = typing.get_type_hints(scenario.config)
    axes, seen = [], set()
    for key, text in overrides:
        if key in seen:
            raise BadInput(f"option {key!r} given twice; give each option once, its values comma-separated")
        seen.add(key)
        values = [v.strip() for v in text.split(separator(hints.get(key)))]
        if not all(values):
            raise BadInput(f"empty value in sweep override {key}={text!r}")
        if key in hints:
            parsed = [repr(parse_value(key, v, hints[key])) for v in values]
            if len(set(parsed)) < len(parsed):
                raise BadInput(f"sweep override {key}={text!r} repeats a value; give each value once")
        axes.append([(key, v) for v in values])
    points = [dict(combo) for combo in itertools.product(*axes)]
    for point in points:
        check(scenario, build_config(scenario.config, point))
    names = [run_name(p) for p in points]
    if len(set(names)) < len(names):
        raise BadInput("two grid points map to one run directory name; write their values alike")
    return points


def separator(annotation) -> str:
    """What separates a swept option's alternatives: `;` for an option that takes a list (its
    items are comma-separated themselves), `,` otherwise."""
    options = typing.get_args(annotation)
    takes_list = typing.get_origin(annotation) is tuple or tuple in map(typing.get_origin, options)
    return ";" if takes_list else ","


def run_sweep(
    scenario: Scenario,
    points: list[dict[str, str]],
    out: Path,
    workers: int = 1,
    launcher: str = "local",
    address: str | None = None,
    overwrite: bool = False,
    spec: str | None = None,
    cpus_per_point: float = 1,
    gpus_per_point: float = 0,
) -> tuple[Path, list[str]]:
    """Run the grid `points` into `out/<point>/` and write `out/sweep.csv`; return its path and
    each point's status. The sweep directory is locked while the sweep runs. `spec` is how each
    run finds the scenario again (default its registered name; `module:SCENARIO` for one that
    is not registered). The directory is refused unless it is new, empty or playground's (see
    `playground.rundir.claim`): a re-run keeps a sweep's directory, `overwrite` replaces it.

    On Ray each point asks for `cpus_per_point` CPUs and `gpus_per_point` GPUs, and runs on a node
    that has them; before the sweep directory is touched, a request that no node can meet is
    refused, and before the first point every node that could run one is asked whether it sees
    the sweep directory and runs the same Python, torch and playground (version and commit)."""
    out = Path(out)
    with ExitStack() as stack:
        if launcher == "ray":
            _check_ray(address)  # before the sweep directory is touched
            stack.enter_context(_ray_session(address))
            _check_resources(cpus_per_point, gpus_per_point)
        stack.enter_context(claim(out, overwrite=overwrite, keep=not overwrite, what=SWEEP))
        directories = [out / run_name(point) for point in points]
        spec = spec or scenario.name
        # absolute: a point may run in another process, on another node, in another directory
        todo = [(spec, p, str(d.absolute())) for p, d in zip(points, directories) if status(d) not in DONE]
        try:
            if launcher == "ray":
                _check_nodes(out, cpus_per_point, gpus_per_point)
                _run_ray(todo, cpus_per_point, gpus_per_point)
            else:
                _run_local(todo, workers)
        finally:
            outcomes = [outcome(d) for d in directories]
            table = sweep_table(points, outcomes, [d.name for d in directories])
            path = out / SWEEP_TABLE
            write_atomic(path, lambda f: f.write(table))
        return path, [state for state, _ in outcomes]


def run_name(point: dict[str, str]) -> str:
    """A directory name for one grid point: `lr=0.1,dynamics=sim_gd` made filesystem-safe."""
    name = ",".join(f"{k}={v.replace(',', '_')}" for k, v in point.items()) or "default"
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


def status(directory: Path) -> str:
    """A point's outcome: finished, diverged, interrupted, failed, or `not run` (no summary) and
    `unreadable`."""
    return outcome(directory)[0]


def outcome(directory: Path) -> tuple[str, dict]:
    """A point's status and its summary ({} when there is none to read)."""
    try:
        summary = read_json(directory / SUMMARY)
    except FileNotFoundError:
        return "not run", {}
    except (OSError, ValueError):
        return "unreadable", {}
    if not isinstance(summary, dict):
        return "unreadable", {}
    return run_status(summary), summary


def sweep_table(points: list[dict[str, str]], outcomes: list[tuple[str, dict]], names: list[str]) -> str:
    """CSV text: one row per run, its status and overrides, then its scalar summary metrics."""
    rows = []
    for point, (state, summary), name in zip(points, outcomes, names):
        scalars = {
            k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool)) and k != "status"
        }
        rows.append({"run": name, "status": state, **point, **scalars})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def run_point(scenario_name: str, point: dict[str, str], directory: str) -> str:
    """One grid point, in whichever process the launcher chose; returns its status. A failed
    point is reported on stderr (with the traceback when it is a bug) and the sweep goes on."""
    command = ["playground", "sweep", scenario_name, *(f"{k}={v}" for k, v in point.items())]
    started = False
    try:
        scenario = get_scenario(scenario_name)
        config = build_config(scenario.config, point)
        started = True
        execute(scenario, config, Path(directory), argv=command, progress=False, overwrite=True)
    except KeyboardInterrupt:
        return INTERRUPTED
    except BadInput as error:
        print(f"playground: {directory}: {error}", file=sys.stderr)
    except (Exception, SystemExit) as error:  # a bug, or user code's SystemExit: recorded, the sweep goes on
        if not started:  # its config could not be built here: no run recorded it
            record_failure(Path(directory), scenario_name, point, error, command, overwrite=True)
        print(f"playground: {directory} failed:\n{traceback.format_exc()}", file=sys.stderr)
    return status(Path(directory))


def _run_local(jobs: list[tuple], workers: int) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="sweep", leave=False, disable=not progress_shown())
    if workers == 1:
        for job in jobs:
            if run_point(*job) == INTERRUPTED:
                raise KeyboardInterrupt
            bar.update()
        return
    context = get_context("spawn")
    tasks, results = context.Queue(), context.Queue()
    for job in jobs:
        tasks.put(job)
    processes = [
        context.Process(target=_worker, args=(tasks, results, os.getpid()), daemon=True)
        for _ in range(min(workers, len(jobs)))
    ]
    for process in processes:
        tasks.put(None)  # one stop sign per worker
        process.start()
    try:
        done = 0
        while done < len(jobs):
            try:
                outcome = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in processes):
                    break  # a worker died hard (out of memory, say); its point has no summary
                continue
            if outcome == INTERRUPTED:
                raise KeyboardInterrupt
            done += 1
            bar.update()
    except BaseException:  # Ctrl-C, SIGTERM or a failure here: stop the workers too
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGINT)
        raise
    finally:  # after the last result each worker reads its stop sign and leaves by itself
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()


def _worker(tasks, results, parent: int) -> None:
    """A local sweep worker: runs points until the stop sign. SIGINT or SIGTERM interrupts its
    current point and starts no other; so does its parent's death, noticed within a second. Once
    it stops taking points a signal finds it on its way out and lets it leave quietly."""
    stopping = threading.Event()

    def stop(signum, frame):
        if not stopping.is_set():  # a second signal must not cut the summary's write short
            stopping.set()
            raise Interrupted(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    def watch_parent():
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, daemon=True).start()
    try:
        while not stopping.is_set():
            job = tasks.get()
            if job is None or stopping.is_set():
                break
            results.put(run_point(*job))
    except KeyboardInterrupt:
        results.put(INTERRUPTED)
    finally:
        stopping.set()  # a signal during the interpreter's exit would raise inside its finalizers


def _check_ray(address: str | None) -> None:
    """Ray is installed, and something answers at `--address` HOST:PORT (one TCP connection): Ray
    itself retries an address where nothing listens for minutes, deaf to Ctrl-C meanwhile."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BadInput("--launcher ray needs Ray: pip install 'ray'") from None
    if address is None or address in ("auto", "local"):  # Ray finds or starts the cluster itself
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not (host and re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 2**16):
        raise BadInput(
            f"--address {address!r} is not HOST:PORT; valid: the address `ray start --head` prints"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_CONNECT_S).close()
    except OSError as error:
        raise BadInput(
            f"--address {address!r}: no Ray cluster answers there ({error.strerror or error}); "
            "valid: the HOST:PORT of a running cluster's head, or no --address for a local Ray"
        ) from None


@contextmanager
def _ray_session(address: str | None) -> Iterator[None]:
    """Ray joined (or, without `address`, started here) for the block; a Ray this sweep started
    is shut down with its workers after it."""
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        handler = signal.getsignal(signal.SIGTERM)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        except ConnectionError as error:  # it answers, yet Ray cannot join: a token, most often
            raise BadInput(
                f"--address {address!r}: Ray could not join the cluster there ({error}); a cluster that "
                "asks for a token (Ray 2.59 on turns it on for `ray start --head`) is joined with "
                "RAY_AUTH_MODE=token set here, and its token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
            ) from None
        finally:  # ray.init installs its own, which would end the sweep without recording it
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def _nodes(cpus: float, gpus: float) -> list[dict]:
    """The cluster's live nodes with at least `cpus` CPUs and `gpus` GPUs."""
    import ray

    return [
        node
        for node in ray.nodes()
        if node["Alive"]
        and node["Resources"].get("CPU", 0) >= cpus
        and node["Resources"].get("GPU", 0) >= gpus
    ]


def _check_resources(cpus: float, gpus: float) -> None:
    """Some node can run a point that asks for `cpus` CPUs and `gpus` GPUs."""
    import ray

    if _nodes(cpus, gpus):
        return
    have = "; ".join(
        f"{node['NodeManagerAddress']}: {node['Resources'].get('CPU', 0):g} CPUs, "
        f"{node['Resources'].get('GPU', 0):g} GPUs"
        for node in ray.nodes()
        if node["Alive"]
    )
    raise BadInput(
        f"--cpus-per-point {cpus:g} --gpus-per-point {gpus:g}: no node of the Ray cluster has as much; "
        f"its nodes: {have}"
    )


def differences(facts: dict[str, typing.Any], here: dict[str, typing.Any]) -> str | None:
    """What a node's `facts` say that differs from the sweep's own, in words; None when nothing."""
    if not facts["sees the sweep directory"]:
        return "does not see the sweep directory: give --out a directory every node shares (NFS, say)"
    changed = [
        f"{key} {facts[key]} there, {here[key]} here"
        for key in _SAME_ON_EVERY_NODE
        if facts[key] != here[key]
    ]
    return f"runs other code: {', '.join(changed)}" if changed else None


def _check_nodes(out: Path, cpus: float, gpus: float) -> None:
    """Every node a point could run on sees `out` and runs the code the sweep runs here."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = out.resolve() / f".node-probe-{os.getpid()}"
    probe.write_text("")
    try:
        here = node_facts(str(probe), _SAME_ON_EVERY_NODE)
        ask = ray.remote(num_cpus=0)(node_facts)
        nodes = _nodes(cpus, gpus)
        pinned = [NodeAffinitySchedulingStrategy(node["NodeID"], soft=False) for node in nodes]
        answers = ray.get(
            [
                ask.options(scheduling_strategy=where).remote(str(probe), _SAME_ON_EVERY_NODE)
                for where in pinned
            ]
        )
    finally:
        probe.unlink(missing_ok=True)
    for node, facts in zip(nodes, answers):
        wrong = differences(facts, here)
        if wrong:
            raise BadInput(f"Ray node {node['NodeManagerAddress']} ({facts['host']}) {wrong}")


def _run_ray(jobs: list[tuple], cpus: float, gpus: float) -> None:
    """The points as Ray tasks of `cpus` CPUs and `gpus` GPUs each, with the local sweep's
    progress bar. On Ctrl-C or SIGTERM every task is cancelled: a queued point never starts, a
    running one gets KeyboardInterrupt and records itself interrupted (given a few seconds)."""
    import ray
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="sweep", leave=False, disable=not progress_shown())
    pending = []
    try:
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(run_point)
        pending = [remote.remote(*job) for job in jobs]
        while pending:  # in short waits, so that a signal lands between them
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
            bar.update(len(done))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=_GRACE_S)
        raise
    finally:
        bar.close()
