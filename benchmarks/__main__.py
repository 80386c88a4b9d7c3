"""`make bench`: run every benchmark module and write benchmarks/results.md.

Each module in this folder with a `main(device) -> str` times a candidate against its baseline side
by side in one process and returns a markdown section, kept in `results/<module>.md`.
`python -m benchmarks NAME ...` reruns only those; results.md gathers every kept section.

`python -m benchmarks NAME ... --device cuda` runs the GPU cases instead and keeps them in
`results/<module>-gpu.md`, stamped with the GPU, torch, CUDA and cuDNN versions; without a CUDA
GPU it exits with status 2 and one line. Float32 throughout (no mixed precision), TF32 as torch
defaults it (matrix products off, cuDNN convolutions on), stated in each GPU stamp.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks.timing import CPU
from playground.devices import resolve_device

HERE = Path(__file__).parent
SKIP = {"__init__", "__main__", "timing"}


def machine(device: torch.device = CPU) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor(),
    )
    host = (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )
    if device.type != "cuda":
        return host
    memory = torch.cuda.get_device_properties(device).total_memory / 2**30
    return (
        f"{torch.cuda.get_device_name(device)} ({memory:.0f} GiB), CUDA {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version()}, float32, TF32 matmul "
        f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'} / cuDNN "
        f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'}; host {host}"
    )


def main(names: list[str], device: torch.device = CPU) -> None:
    modules = names or sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)
    kept = HERE / "results"
    kept.mkdir(exist_ok=True)
    suffix = "-gpu" if device.type == "cuda" else ""
    for name in modules:
        print(f"benchmark: {name} on {device}", file=sys.stderr, flush=True)
        section = importlib.import_module(f"benchmarks.{name}").main(device)
        stamp = f"_Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine(device)}._"
        (kept / f"{name}{suffix}.md").write_text(f"{section}\n\n{stamp}\n")
    gather(kept)


def gather(kept: Path = HERE / "results") -> None:
    """results.md: every section kept in `kept`, under one introduction."""
    sections = [p.read_text() for p in sorted(kept.glob("*.md"))]
    text = (
        "# Benchmarks\n\nWritten by `make bench` (`python -m benchmarks NAME` reruns one "
        "section). Times are medians over repeats after warm-up, ± half the interquartile "
        "range; baseline and candidate run side by side in one process, so the ratios hold "
        "even on a loaded machine where the absolute times do not. Sections measured on a GPU "
        "(`python -m benchmarks NAME --device cuda`) name it in their title and stamp; "
        "`make gpu-check` writes its checks beside this file, in gpu_check.md.\n\n" + "\n\n".join(sections)
    )
    out = HERE / "results.md"
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)


def _arguments(argv: list[str]) -> tuple[list[str], torch.device]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="time candidates vs baselines")
    parser.add_argument("names", nargs="*", help="benchmark modules (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: the GPU cases")
    args = parser.parse_args(argv)
    known = sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)
    unknown = [name for name in args.names if name not in known]
    try:
        if unknown:
            raise ValueError(f"unknown benchmark {unknown[0]!r}; valid: {', '.join(known)}")
        return args.names, resolve_device(args.device)
    except ValueError as error:
        print(f"benchmarks: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main(*_arguments(sys.argv[1:]))
