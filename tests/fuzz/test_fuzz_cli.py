"""Property-based fuzz of `playground run`: for every scenario and every option, hostile values
(at and beyond each bound, wrong types, non-finite, huge, empty, unicode, repeated and unknown
keys, odd dots), one to three options on a tiny base run, each case in process under a time
limit. Every case must exit 0 or 2, never show a traceback, print one line on exit 2, write only
strict JSON with a summary status, and touch nothing outside --out (`fuzz_case.violations`).

A test runs all its cases and then fails with the distinct failures found (by cause, each with an
argv to reproduce it in an empty directory), rather than stopping at the first. A case that kills
the process (a segmentation fault in native code) ends the session: FUZZ_LOG's last `started`
record without a result names it.

Profiles (both derandomized: the same cases every run):
    make test                 FAST_EXAMPLES cases per base, 142 in all, about 40 s on two cores
    pytest -m slow tests/fuzz FUZZ_EXAMPLES cases per base (default 600: 5,400 in all)

Settings from the environment: FUZZ_EXAMPLES (cases per base, slow profile), FUZZ_SEED (another
fixed seed instead of derandomizing), FUZZ_CASE_SECONDS (a case's time limit, default 90),
FUZZ_MEMORY_GIB (address space a case may add, default 6), FUZZ_FINDINGS (a file to append each
failing case to, one JSON object a line), FUZZ_LOG (a file to append every case to: its argv when it
starts, then its exit status, seconds and last line of stderr). For example:

    FUZZ_EXAMPLES=1000 FUZZ_FINDINGS=/tmp/findings.jsonl \\
        .venv/bin/python -m pytest -q -p no:cacheprovider -m slow tests/fuzz

Ctrl-C or SIGTERM during a case is the case's own (the CLI records it and exits 130 or 143, a
finding); stop a long run with SIGKILL.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from fuzz_case import OUT, lines_of, run_case, violations
from fuzz_options import WRITTEN, light, odd_tokens, scenario_options, values
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from playground.scenarios import SCENARIOS

# A base per scenario (two for deq: its closed-form task and a training one): tiny budgets, no
# plots where a scenario can skip them, each run a second or two at most.
BASES = {
    "game": ("game", "steps=5 plots=false"),
    "maml": (
        "maml",
        "iterations=2 eval_every=0 eval_tasks=2 eval_steps=1 log_every=1 checkpoint_every=0 meta_batch=2 "
        "queries=1 eval_queries=1",
    ),
    "metarl": (
        "metarl",
        "iterations=1 pretrain_iterations=1 meta_batch=2 episodes=2 hidden=8,8 eval_tasks=2 eval_steps=1 "
        "checkpoint_every=0",
    ),
    "icl": (
        "icl",
        "dim=3 context=5 steps=4 batch=16 eval_tasks=32 eval_every=2 ood_scales=0.5,2 plots=false "
        "checkpoint_every=0",
    ),
    "bilevel": ("bilevel", "outer_steps=2 inner_steps=5 compare=false plots=false"),
    "deq": ("deq", "dim=4 compare=false plots=false"),
    "deq-train": (
        "deq",
        "task=synthetic1d steps=2 train=64 val=32 dim=4 width=4 diagnose_every=1 compare=false plots=false",
    ),
    "stn": ("stn", "hidden=4 steps=6 warmup=2 inner_steps=1 trials=1 log_every=2 batch=16 plots=false"),
    "darts": (
        "darts",
        "epochs=1 nodes=1 top_k=1 width=2 batch_size=100 repeats=1 retrain_epochs=1 samples=1 power_iters=1 "
        "ift_iters=2 plots=false",
    ),
}
# cases per base in `make test`: more where a case is cheap (most are refused in milliseconds)
FAST_EXAMPLES = {"game": 30, "maml": 8, "metarl": 6, "icl": 20, "bilevel": 25, "deq": 20, "deq-train": 12}
FAST_EXAMPLES |= {"stn": 15, "darts": 6}

REPO = Path(__file__).parents[2]
LIMIT_S = float(os.environ.get("FUZZ_CASE_SECONDS", 90))
MEMORY_GIB = float(os.environ.get("FUZZ_MEMORY_GIB", 6))


def test_every_scenario_has_a_base():
    assert {scenario for scenario, _ in BASES.values()} == set(SCENARIOS)


@pytest.mark.parametrize("base", BASES)
def test_hostile_options(base, tmp_path):
    fuzz(base, FAST_EXAMPLES[base], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("base", BASES)
def test_hostile_options_at_length(base, tmp_path):
    fuzz(base, int(os.environ.get("FUZZ_EXAMPLES", 600)), tmp_path)


@st.composite
def cases(draw, base: str) -> list[str]:
    """`run SCENARIO` with the base's options, one to three of them (or others) fuzzed, and now and
    then a token that is no well-formed option."""
    scenario, tokens = BASES[base][0], BASES[base][1].split()
    options = scenario_options(SCENARIOS[scenario])
    fuzzed: dict[str, str] = {}
    count = draw(st.sampled_from((1, 1, 1, 2, 2, 3)))
    picked = draw(
        st.lists(st.sampled_from(options), min_size=count, max_size=count, unique_by=lambda o: o.key)
    )
    for option in picked:
        for need in option.needs if draw(st.integers(0, 3)) else ():  # mostly where the keyword applies
            key, _, value = need.partition("=")
            fuzzed.setdefault(key, value)
        fuzzed[option.key] = draw(values(option))
    given = {t.partition("=")[0] for t in tokens} | fuzzed.keys()
    for kind, name in list(fuzzed.items()):
        for key, value in light(options, kind, name.strip()).items():
            if key.rpartition(".")[2] not in given:  # maml's `queries=` and `task.queries=` are one
                fuzzed.setdefault(key, value)
    kept = [t for t in tokens if t.partition("=")[0] not in fuzzed]
    odd = []
    if draw(st.integers(0, 7)) == 0:
        odd = draw(odd_tokens(options, getattr(SCENARIOS[scenario].config, "renamed", {})))
    return ["run", scenario, *kept, *(f"{k}={v}" for k, v in fuzzed.items()), *odd, "--out", OUT]


def fuzz(base: str, examples: int, tmp_path: Path) -> None:
    found: list[dict] = []
    counter = itertools.count()

    @settings(
        max_examples=examples,
        derandomize="FUZZ_SEED" not in os.environ,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),  # a failure is collected, not raised: nothing to shrink
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(cases(base))
    def check(argv):
        directory = tmp_path / f"case{next(counter)}"
        _log({"base": base, "argv": argv, "started": True})  # a case that kills the process is named
        start = time.perf_counter()
        outcome = run_case(argv, directory, LIMIT_S, MEMORY_GIB, _named_paths(argv))
        broken = violations(outcome)
        seconds, last = time.perf_counter() - start, lines_of(outcome.stderr)[-1:]
        _log({"base": base, "argv": argv, "code": outcome.code, "s": seconds, "stderr": last})
        if broken:
            found.append(_finding(outcome, broken))
        shutil.rmtree(directory, ignore_errors=True)

    scenario, tokens = BASES[base]
    warm = run_case(["run", scenario, *tokens.split(), "--out", OUT], tmp_path / "base", LIMIT_S, MEMORY_GIB)
    assert not violations(warm), warm.stderr  # the base itself runs, and first-use costs are paid
    if "FUZZ_SEED" in os.environ:
        check = seed(int(os.environ["FUZZ_SEED"]))(check)
    check()
    if "FUZZ_FINDINGS" in os.environ:
        with open(os.environ["FUZZ_FINDINGS"], "a") as f:
            f.writelines(json.dumps({"base": base, **finding}) + "\n" for finding in found)
    assert not found, _report(found)


def _log(record: dict) -> None:
    if "FUZZ_LOG" in os.environ:
        with open(os.environ["FUZZ_LOG"], "a") as f:
            f.write(json.dumps(record) + "\n")


def _named_paths(argv: list[str]) -> list[str]:
    """The relative paths a case names where a run may write (data_dir=, task.cache_dir=)."""
    named = []
    for token in argv[2:]:
        key, _, value = token.partition("=")
        first = Path(value.strip()).parts[:1]
        if key.strip().rpartition(".")[2] in WRITTEN and first and not Path(value.strip()).is_absolute():
            named.append(first[0])
    return named


def _finding(outcome, broken: list[str]) -> dict:
    lines = lines_of(outcome.stderr) or [""]
    return {
        "argv": outcome.argv,
        "broken": broken,
        "code": outcome.code,
        "cause": _cause(outcome, broken),
        "stderr_first": lines[0][:300],
        "stderr_last": lines[-1][:300],
        "error": outcome.error,
        "outside": outcome.outside[:5],
        "invalid_json": outcome.invalid_json[:3],
    }


def _cause(outcome, broken: list[str]) -> str:
    """What groups failures of one cause: the exception and the last line of our code it passed,
    else what was broken and the error's wording without its values."""
    if outcome.crash:
        frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', outcome.crash)
        ours = [
            f for f in frames if f[0].startswith(str(REPO)) and not re.search("site-packages|tests/", f[0])
        ]
        where = ours[-1] if ours else (frames[-1] if frames else ("?", "?", "?"))
        kind = outcome.error.partition(":")[0]
        return f"{kind} at {Path(where[0]).name}:{where[1]} ({where[2]})"
    words = re.sub(r"'[^']*'|\"[^\"]*\"|[-+]?\d[\w.+-]*", "_", (lines_of(outcome.stderr) or [""])[0])
    return f"{'; '.join(broken)}: {outcome.argv[1]}: {words[:90]}"


def _report(found: list[dict]) -> str:
    causes: dict[str, list[dict]] = {}
    for finding in found:
        causes.setdefault(finding["cause"], []).append(finding)
    lines = [f"{len(found)} failing cases, {len(causes)} causes:"]
    for cause, group in causes.items():
        first = min(group, key=lambda f: len(" ".join(f["argv"])))
        lines += [
            f"- {cause} [{', '.join(first['broken'])}] x{len(group)}",
            f"    python -m playground {shlex.join(first['argv'])}",
            f"    {first['error']!r}" if first["error"] else f"    stderr: {first['stderr_first'][:160]!r}",
        ]
    return "\n".join(lines)
