"""The command line: `playground list | run | sweep | report | demo`.

Exit status: 0 done; 2 bad input (an unknown scenario or option, a malformed or out-of-range
value, a device, thread count or amount of memory this machine does not have, data not on disk,
a resume its checkpoint does not allow, an --out that is unwritable or holds another run), with
one line on stderr, found before the run directory is touched, so nothing runs and no file
changes; 1 a bug (ours, or in a user's game, factory or scenario: any exception, or a SystemExit
of any code, while the config is built, checked or run), with its traceback, after the run
directory got its summary with status failed, or a run out of memory, with one line naming the
settings to lower, or a sweep with a point that failed or that nothing ran to its end; 128 + the
signal's number after Ctrl-C (130) or SIGTERM (143), what was logged kept. Heavy modules are
imported inside `main`, so Ctrl-C during start-up stops cleanly too. `run --nproc N` hands the run
to torchrun, whose own exit status (1 when a rank failed) it then returns.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import NoReturn

from playground.errors import BadInput, Interrupted, OutOfMemory, UserExit
from playground.rundir import COST_KEYS, DIVERGED, FINISHED, run_status

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BadInput(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="playground", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser(
        "list",
        help="every scenario with its options, and every registry (games, dynamics, ...) with its entries",
    )

    run = commands.add_parser("run", help="one run: playground run SCENARIO key=value ...")
    run.add_argument("scenario")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--out", type=Path, help="run directory (default runs/SCENARIO/<timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    run.add_argument(
        "--nproc",
        type=int,
        default=None,
        help="processes, data-parallel (maml, icl): torchrun's --nproc_per_node",
    )

    sweep = commands.add_parser("sweep", help="a grid: playground sweep SCENARIO key=a,b,c ...")
    sweep.add_argument("scenario")
    sweep.add_argument("overrides", nargs="*", metavar="key=a,b,c")
    sweep.add_argument("--out", type=Path, help="sweep directory (default runs/SCENARIO-sweep/<timestamp>)")
    sweep.add_argument("--workers", type=int, default=1, help="runs at once (local launcher)")
    sweep.add_argument("--launcher", choices=("local", "ray"), default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    sweep.add_argument("--cpus-per-point", type=float, default=None, help="Ray: CPUs each point asks for (1)")
    sweep.add_argument("--gpus-per-point", type=float, default=None, help="Ray: GPUs each point asks for (0)")
    sweep.add_argument("--overwrite", action="store_true", help="replace what --out holds")

    report = commands.add_parser("report", help="an HTML page comparing runs")
    report.add_argument("dirs", nargs="+", type=Path, help="run directories, or folders of them")
    report.add_argument(
        "--out", type=Path, default=None, help="HTML file (default: report.html in the first DIR)"
    )

    demo = commands.add_parser("demo", help="the curated suite of every scenario, and its report")
    demo.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="only these (default: all)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        args = _parser().parse_args(argv)
        try:
            return _COMMANDS[args.command](args, argv)
        except SystemExit as stop:  # argparse's own exits are above: this one is user code's
            raise UserExit(stop.code) from stop
    except BadInput as error:
        print(f"playground: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OutOfMemory as error:
        print(f"playground: failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as stop:
        print("playground: interrupted; what was logged is kept", file=sys.stderr)
        return 128 + getattr(stop, "signum", signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise Interrupted(signum)


def _list(args, argv) -> int:
    from playground.config import format_options, format_registry, registries
    from playground.scenarios import SCENARIOS

    for scenario in SCENARIOS.values():
        print(f"{scenario.name}: {scenario.help}")
        for line in format_options(scenario.config):
            print(f"    {line}")
    print("\nWhat the scenarios pick by name (a scenario option of the same name):")
    for registry in registries(scenario.config for scenario in SCENARIOS.values()):
        print("\n".join(format_registry(registry)))
    return 0


def _run(args, argv) -> int:
    from playground.api import run_overrides
    from playground.config import parse_overrides
    from playground.ranks import rank
    from playground.scenarios import get_scenario

    scenario = get_scenario(args.scenario)
    overrides = parse_overrides(args.overrides)
    if args.nproc is not None and args.nproc != 1:
        return _launch(args, scenario, overrides)
    result = run_overrides(scenario, overrides, args.out, args.overwrite, command=["playground", *argv])
    if rank() == 0:  # under torchrun, rank 0 wrote the run
        print(f"{result.dir}: {_headline(result.summary)}")
    return 0


def _launch(args, scenario, overrides) -> NoReturn:
    """`playground run --nproc N ...` becomes `torchrun --standalone --nproc_per_node N -m
    playground run ...` (this process replaced by it), once the scenario, the options and what
    they need are checked here, so that bad input is one line rather than one per rank."""
    import os

    from playground.config import build_config
    from playground.ranks import world_size
    from playground.runner import check, splitting_scenarios

    if args.nproc < 1:
        raise BadInput(
            f"--nproc {args.nproc}; valid: a whole number >= 1 (processes, one per GPU or CPU slot)"
        )
    if world_size() > 1:
        raise BadInput("--nproc under torchrun; valid: one or the other")
    if not scenario.data_parallel:
        raise BadInput(
            f"--nproc {args.nproc} with scenario {scenario.name!r}, which runs in one process; "
            f"valid: a scenario that splits its work across processes ({splitting_scenarios()})"
        )
    check(scenario, build_config(scenario.config, overrides))
    command = ["run", args.scenario, *args.overrides]
    command += (["--out", str(args.out)] if args.out is not None else []) + (
        ["--overwrite"] if args.overwrite else []
    )
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.nproc)]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *launcher, "-m", "playground", *command])


def _sweep(args, argv) -> int:
    from playground.api import sweep_overrides
    from playground.config import split_override

    axes = [split_override(o) for o in args.overrides]
    done = sweep_overrides(
        args.scenario,
        axes,
        args.out,
        args.workers,
        args.launcher,
        args.address,
        args.overwrite,
        args.cpus_per_point,
        args.gpus_per_point,
    )
    statuses = done.statuses
    counts = {s: statuses.count(s) for s in dict.fromkeys(statuses)}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items())
    print(f"sweep: {len(statuses)} runs ({shown}), table {done.table}")
    # a point that failed, or that no process ran to its end (a worker killed, say), fails the sweep
    return 0 if all(status in (FINISHED, DIVERGED) for status in statuses) else EXIT_FAILED


def _report(args, argv) -> int:
    from playground.page import write_report

    out = args.out or (args.dirs[0] / "report.html")
    path = write_report(args.dirs, out)
    print(f"report: {path}")
    return 0


def _demo(args, argv) -> int:
    from playground.demo import run_demo

    path = run_demo(args.out, args.scenarios)
    print(f"demo report: {path}")
    return 0


_COMMANDS = {"list": _list, "run": _run, "sweep": _sweep, "report": _report, "demo": _demo}


def _headline(summary: dict) -> str:
    if run_status(summary) == DIVERGED:
        return f"diverged at step {summary.get('diverged_step')}"
    numbers = [f"{k}={v:.4g}" for k, v in summary.items() if isinstance(v, float) and k not in COST_KEYS][:4]
    return ", ".join(numbers + [f"{summary['wall_s']:.1f}s"])
