"""What a run asks of its machine is checked before it runs, and never refuses the settings the
README and the demo give: each scenario's memory estimate against a laptop's memory (16 GiB) for a
CPU command, an H100's (78 GiB) for a `device=cuda` one. (Oversize settings refused: test_bad_input.)"""

import re
from pathlib import Path

import pytest
import torch

from metalearn.fewshot import SPLITS, ImageTasks
from playground import resources, runner
from playground.config import build_config, format_value
from playground.scenarios import SCENARIOS, maml

REPO = Path(__file__).parents[2]
GIB = 2**30
LAPTOP, H100 = 16 * GIB, 78 * GIB
# the data a command needs that the tests do not have, and a run to resume: not checked here
NEEDS = ("task=omniglot", "task=mnist", "download=true", "resume=", "data_dir=")


def documented() -> list[tuple[str, list[str]]]:
    """Every `playground run SCENARIO key=value ...` of the README and the scenarios' docstrings,
    as (scenario, overrides)."""
    texts = [(REPO / "README.md").read_text()]
    texts += [path.read_text() for path in (REPO / "playground" / "scenarios").glob("[a-z]*.py")]
    commands = []
    for text in texts:
        for line in re.findall(r"playground run ([^`\n#|]+)", text):
            words = line.split()
            if not words or words[0] not in SCENARIOS or any(n in line for n in NEEDS):
                continue
            overrides = [w for w in words[1:] if "=" in w and not w.startswith("-")]
            commands.append((words[0], overrides))
    return list(dict.fromkeys((name, tuple(o)) for name, o in commands))


def demo_sets() -> list[tuple[str, tuple[str, ...]]]:
    return [
        (s.name, tuple(f"{k}={format_value(v)}" for k, v in d.items() if k != "label"))
        for s in SCENARIOS.values()
        for d in s.demo
    ]


def small_images(config):
    """Images of the family's shape in place of glyphs' (a memory estimate reads shapes only)."""
    images = {split: torch.zeros(30, 20, 1, 28, 28) for split in SPLITS}
    family = ImageTasks(images, config.ways, config.shots, config.queries, rotations=False)
    return family, family.with_queries(config.eval_queries)


def test_the_documented_commands_are_found():
    names = {name for name, _ in documented()}
    assert {"game", "maml", "icl", "metarl", "bilevel", "deq", "stn", "darts"} <= names
    assert ("maml", ("task=sine", "shots=10", "iterations=70000", "device=cuda")) in documented()


@pytest.mark.parametrize("name, overrides", documented() + demo_sets(), ids=lambda x: str(x))
def test_documented_and_demo_settings_pass_the_checks(name, overrides, monkeypatch):
    overrides = list(overrides)
    on_gpu = "device=cuda" in overrides
    overrides = [o for o in overrides if o != "device=cuda"]  # estimated here, on the CPU
    monkeypatch.setattr(resources, "available_memory", lambda device: H100 if on_gpu else LAPTOP)
    monkeypatch.setattr(runner, "check_threads", lambda threads: None)  # cores: not this test's
    if name == "maml" and "task=glyphs" in overrides:
        monkeypatch.setattr(maml, "task_families", small_images)
    scenario = SCENARIOS[name]
    config = build_config(scenario.config, dict(o.split("=", 1) for o in overrides))
    assert runner.check(scenario, config) == torch.device("cpu")


def test_check_memory_refuses_what_is_not_there(monkeypatch):
    monkeypatch.setattr(resources, "available_memory", lambda device: 2 * GIB)
    resources.check_memory(2 * GIB, torch.device("cpu"), "batch=1", "batch")
    with pytest.raises(
        resources.BadInput,
        match=r"^batch=9 needs about 3 GiB of cpu memory and 2 GiB is available; valid: lower batch$",
    ):
        resources.check_memory(3 * GIB, torch.device("cpu"), "batch=9", "batch")


def test_saved_bytes_counts_what_a_backward_pass_keeps():
    w = torch.ones(3, 5, requires_grad=True)
    x = torch.ones(7, 3)
    # x @ w saves x (7×3) for w's gradient; relu saves its output (7×5); float32: 4 bytes each
    assert resources.saved_bytes(lambda: (x @ w).relu()) == 4 * (7 * 3 + 7 * 5)
    with torch.no_grad():
        assert resources.saved_bytes(lambda: (x @ w).relu()) == 0


def test_an_address_space_limit_bounds_the_memory_available():
    import resource

    cpu = torch.device("cpu")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = resources._proc_kib("/proc/self/status", "VmSize:")
    try:
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, hard))  # `ulimit -v`: 1 GiB more than now
        limited = resources.available_memory(cpu)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert 0.9 * 2**30 < limited <= 2**30


def test_a_need_past_a_floats_range_is_refused_in_one_line():
    with pytest.raises(resources.BadInput, match=r"hidden=9{400} needs about 1e\d+ GiB of cpu memory"):
        resources.check_memory(10**420, torch.device("cpu"), "hidden=" + "9" * 400, "hidden")
