"""Timing helpers: baseline and candidate run side by side in one process, after warm-up."""

from __future__ import annotations

import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

CPU = torch.device("cpu")


def time_it(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of `fn()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds of each function over `repeats` rounds, each round timing every function once, so
    that all of them see the same machine load; each is first called `warmup` times untimed."""
    for fn in fns.values():
        time_it(fn, repeats=0, warmup=warmup)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name] += time_it(fn, repeats=1, warmup=0)
    return times


def peak_memory(fn: Callable[[], object], device: torch.device = CPU) -> int:
    """Peak growth in bytes of the memory torch's allocator hands out during `fn()`: the CUDA
    caching allocator's peak on a GPU; on the CPU, the highest running total of the allocations
    and frees torch's profiler records (`profile_memory`), counted from the first one it sees. Not
    the process's resident memory, which memory freed earlier and kept by the C library hides."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return max(torch.cuda.max_memory_allocated(device) - before, 0)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    totals = [e["args"] for e in events if e.get("name") == "[memory]" and e["args"]["Device Type"] == 0]
    if not totals:
        return 0
    before = totals[0]["Total Allocated"] - totals[0]["Bytes"]
    return max(max(t["Total Allocated"] for t in totals) - before, 0)


def summarize(times: list[float]) -> tuple[float, float]:
    """Median and half the interquartile range, in seconds."""
    q1, median, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else (times[0],) * 3
    return median, (q3 - q1) / 2


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
