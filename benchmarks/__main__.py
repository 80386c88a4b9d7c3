"""`make bench`: run every benchmark module and write benchmarks/results.md.

Each module in this folder with a `main() -> str` times a candidate against its baseline side by
side in one process and returns a markdown section, kept in `results/<module>.md`.
`python -m benchmarks NAME ...` reruns only those; results.md gathers every kept section.
"""
from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
SKIP = {"__init__", "__main__", "timing"}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def main(names: list[str]) -> None:
    modules = names or sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)
    kept = HERE / "results"
    kept.mkdir(exist_ok=True)
    for name in modules:
        print(f"benchmark: {name}", file=sys.stderr, flush=True)
        section = importlib.import_module(f"benchmarks.{name}").main()
        stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}._"
        (kept / f"{name}.md").write_text(f"{section}\n\n{stamp}\n")
    sections = [p.read_text() for p in sorted(kept.glob("*.md"))]
    text = ("# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks NAME` reruns one "
            "section). Times are medians over repeats after warm-up, ± half the interquartile "
            "range; baseline and candidate run side by side in one process, so the ratios hold "
            "even on a loaded machine where the absolute times do not.\n\n"
            + "\n\n".join(sections))
    out = HERE / "results.md"
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
