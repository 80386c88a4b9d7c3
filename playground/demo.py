"""`make demo`: every scenario's curated runs on small defaults, then one report of them all."""

from __future__ import annotations

import sys
from pathlib import Path

from playground.config import build_config, format_value
from playground.page import write_report
from playground.runner import execute
from playground.scenarios import SCENARIOS, get_scenario


def run_demo(out: Path, names: list[str] | None = None) -> Path:
    """Run each scenario's `demo` override sets into `out/<scenario>/<label>`; return the report."""
    chosen = [get_scenario(n) for n in names] if names else list(SCENARIOS.values())
    jobs = [(s, dict(d)) for s in chosen for d in s.demo]
    for index, (scenario, overrides) in enumerate(jobs, 1):
        label = overrides.pop("label")
        directory = Path(out) / scenario.name / label
        print(f"[{index}/{len(jobs)}] {scenario.name} {label}", file=sys.stderr, flush=True)
        texts = {k: format_value(v) for k, v in overrides.items()}
        config = build_config(scenario.config, texts)
        execute(
            scenario,
            config,
            directory,
            overwrite=True,  # the demo replaces its own previous runs
            argv=["playground", "demo", scenario.name, *(f"{k}={v}" for k, v in texts.items())],
        )
    return write_report([Path(out)], Path(out) / "report.html")
