"""`make bench`: run every benchmark module and write benchmarks/results.md.

Each module in this folder with a `main() -> str` times a candidate against its baseline side by
side in one process and returns a markdown section. `python -m benchmarks NAME ...` runs only those.
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
    sections = []
    for name in modules:
        print(f"benchmark: {name}", file=sys.stderr, flush=True)
        sections.append(importlib.import_module(f"benchmarks.{name}").main())
    text = (f"# Benchmarks\n\nMachine: {machine()}. Written by `make bench` on "
            f"{time.strftime('%Y-%m-%d')}. Times are medians over repeats after warm-up, ± half "
            f"the interquartile range; baseline and candidate run side by side in one process.\n\n"
            + "\n\n".join(sections) + "\n")
    out = HERE / "results.md"
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
