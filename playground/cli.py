"""The command line: `playground list | run | sweep | report | demo`.

Bad input (unknown scenario or option, a malformed override, a value of the wrong type or range, an
unwritable --out) exits with status 2 and one line on stderr; Ctrl-C exits with 130 after the run
directory has its summary.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from playground.config import build_config, format_options, split_override
from playground.runner import execute
from playground.scenarios import SCENARIOS, get_scenario

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise ValueError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="playground", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("list", help="every scenario with its options, defaults and help")

    run = commands.add_parser("run", help="one run: playground run SCENARIO key=value ...")
    run.add_argument("scenario")
    run.add_argument("overrides", nargs="*", metavar="key=value")
    run.add_argument("--out", type=Path, help="run directory (default runs/SCENARIO/<timestamp>)")

    sweep = commands.add_parser("sweep", help="a grid: playground sweep SCENARIO key=a,b,c ...")
    sweep.add_argument("scenario")
    sweep.add_argument("overrides", nargs="*", metavar="key=a,b,c")
    sweep.add_argument("--out", type=Path, help="sweep directory (default runs/SCENARIO-sweep/<timestamp>)")
    sweep.add_argument("--workers", type=int, default=1, help="runs at once (local launcher)")
    sweep.add_argument("--launcher", choices=("local", "ray"), default="local")
    sweep.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")

    report = commands.add_parser("report", help="an HTML page comparing runs")
    report.add_argument("dirs", nargs="+", type=Path, help="run directories, or folders of them")
    report.add_argument("--out", type=Path, default=None, help="HTML file (default: report.html in the first DIR)")

    demo = commands.add_parser("demo", help="the curated suite of every scenario, and its report")
    demo.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="only these (default: all)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = _parser().parse_args(argv)
        return _COMMANDS[args.command](args, argv)
    except ValueError as error:
        print(f"playground: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("playground: interrupted; what was logged is kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def _list(args, argv) -> int:
    for scenario in SCENARIOS.values():
        print(f"{scenario.name}: {scenario.help}")
        for line in format_options(scenario.config):
            print(f"    {line}")
    return 0


def _run(args, argv) -> int:
    scenario = get_scenario(args.scenario)
    config = build_config(scenario.config, dict(split_override(o) for o in args.overrides))
    out = args.out or _timestamped(Path("runs") / scenario.name)
    _check_writable(out)
    summary = execute(scenario, config, out, argv=["playground", *argv])
    print(f"{out}: {_headline(summary)}")
    return 0


def _sweep(args, argv) -> int:
    from playground.sweep import grid, run_sweep

    scenario = get_scenario(args.scenario)
    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    points = grid(scenario, [split_override(o) for o in args.overrides])
    out = args.out or _timestamped(Path("runs") / f"{scenario.name}-sweep")
    _check_writable(out)
    table = run_sweep(scenario, points, out, workers=args.workers, launcher=args.launcher,
                      address=args.address)
    print(f"sweep: {len(points)} runs, table {table}")
    return 0


def _report(args, argv) -> int:
    from playground.report import write_report

    out = args.out or (args.dirs[0] / "report.html")
    path = write_report(args.dirs, out)
    print(f"report: {path}")
    return 0


def _demo(args, argv) -> int:
    from playground.demo import run_demo

    _check_writable(args.out)
    path = run_demo(args.out, args.scenarios)
    print(f"demo report: {path}")
    return 0


_COMMANDS = {"list": _list, "run": _run, "sweep": _sweep, "report": _report, "demo": _demo}


def _timestamped(parent: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = parent / stamp, 1
    while path.exists():
        path, n = parent / f"{stamp}-{n}", n + 1
    return path


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to --out {str(path)!r}: {error.strerror or error}") from None


def _headline(summary: dict) -> str:
    if summary.get("diverged"):
        return f"diverged at step {summary.get('diverged_step')}"
    numbers = [f"{k}={v:.4g}" for k, v in summary.items()
               if isinstance(v, float) and k != "wall_s"][:4]
    return ", ".join(numbers + [f"{summary['wall_s']:.1f}s"])
