"""`make gpu-check`: the checks only a CUDA GPU can run, in one command, written beside the benchmarks.

    python tools/gpu_check.py                                # needs a CUDA GPU: benchmarks/gpu_check.md
    python tools/gpu_check.py --device cpu --quick --out X   # the same checks on the CPU (its test)

Without a CUDA GPU, `--device cuda` (the default) exits with status 2 and one line. Each check
prints PASS or FAIL with its numbers; the exit status is 1 if any failed. The checks:

1. plumbing: every scenario (game, maml with every algorithm and both engines, icl's lsa, lsa_gd
   and gpt, metarl) runs on the device on a tiny budget and finishes with finite numbers; on a
   GPU, the CUDA allocator must have been used. Each run's numbers are set beside the same run on
   the CPU (largest relative difference, for information: rounding differs between devices), and
   a maml checkpoint written on the device is resumed on the CPU, and one from the CPU on the device.
2. engines: the functional engine's meta-gradient equals learn2learn's (a per-task
   `autograd.grad(create_graph=True)` loop) on conv-4 in float64 on the device, for maml, fomaml,
   anil and metasgd: relative error, by norm over all parameters, at most 1e-5.
3. capture: 100 steps of sine MAML (K = 10, meta-batch 25) captured (`compile`; `cuda_graph` on a
   GPU), whole and in chunks of 10 tasks (`meta_batch_chunk`), and eager: losses and final weights
   agree within 1e-5.
4. training: sine MAML through the scenario, eager and (on a GPU) from a CUDA graph; wall time,
   time per iteration, the 70,000-iteration recipe's projected time, and the test MSE.

The header names the device, torch, CUDA and cuDNN, and the numeric policy (float32, no mixed
precision; TF32 as torch defaults it); on a GPU each group reports its peak allocated memory. A
check that raises is a FAIL with the error, and the others still run; the report is rewritten
after each group, so a run cut short keeps what it found.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.__main__ import machine  # noqa: E402
from metalearn.convnet import conv4  # noqa: E402
from metalearn.fewshot import ImageTasks, Sine, Tasks  # noqa: E402
from metalearn.maml import ALGORITHMS, gradient_algorithms, make_learner  # noqa: E402
from playground.config import build_config  # noqa: E402
from playground.devices import resolve_device  # noqa: E402
from playground.rundir import COST_KEYS  # noqa: E402
from playground.runner import execute  # noqa: E402
from playground.scenarios import SCENARIOS  # noqa: E402

TOLERANCE = 1e-5
TINY_MAML = dict(
    iterations=4, eval_every=2, eval_tasks=8, eval_steps=2, log_every=2, checkpoint_every=2, meta_batch=5
)


def plumbing_runs(quick: bool) -> dict[str, tuple[str, dict]]:
    """label -> (scenario, options) of the tiny runs of check 1."""
    runs = {
        "game bilinear sos batch 64": (
            "game",
            dict(game="bilinear", dim=3, dynamics="sos", batch=64, steps=20, plots=False),
        ),
        "maml maml functional": ("maml", dict(algo="maml", engine="functional", **TINY_MAML)),
        "icl lsa": ("icl", dict(model="lsa", steps=20, batch=64, eval_tasks=256, eval_every=10, plots=False)),
        "metarl trpo": (
            "metarl",
            dict(iterations=2, meta_batch=3, episodes=3, eval_tasks=3, eval_steps=1, pretrain_iterations=1),
        ),
    }
    if quick:
        return runs
    runs["game gan extragradient batch 16"] = (
        "game",
        dict(game="gaussian_mixture_gan", batch=16, steps=5, dynamics="extragradient", plots=False),
    )
    for algo in ALGORITHMS:
        if algo == "protonet":
            continue
        for engine in ("functional", "learn2learn") if algo in gradient_algorithms() else ("functional",):
            runs.setdefault(f"maml {algo} {engine}", ("maml", dict(algo=algo, engine=engine, **TINY_MAML)))
    glyphs = dict(
        task="glyphs",
        meta_batch=4,
        iterations=2,
        eval_every=0,
        eval_tasks=10,
        eval_steps=2,
        log_every=1,
        checkpoint_every=0,
    )
    for algo in ("maml", "metasgd", "protonet"):
        runs[f"maml glyphs {algo}"] = ("maml", dict(algo=algo, **glyphs))
    runs["icl lsa_gd"] = ("icl", dict(model="lsa_gd", layers=2, eval_tasks=256, plots=False))
    runs["icl gpt"] = (
        "icl",
        dict(model="gpt", steps=20, batch=32, eval_tasks=128, width=16, heads=2, layers=1, plots=False),
    )
    runs["metarl ppo"] = (
        "metarl",
        dict(
            iterations=2,
            meta_batch=3,
            episodes=3,
            eval_tasks=3,
            eval_steps=1,
            pretrain_iterations=1,
            outer="ppo",
        ),
    )
    return runs


def run_scenario(name: str, options: dict, directory: Path) -> dict:
    config = build_config(SCENARIOS[name].config, {k: _text(v) for k, v in options.items()})
    return execute(SCENARIOS[name], config, directory, progress=False)


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def numbers(summary: dict) -> list[float]:
    """Every number of a summary (lists flattened), in key order, wall time and status left out."""
    found = []
    for key, value in summary.items():
        if key in (*COST_KEYS, "steps_run") or isinstance(value, (str, bool)) or value is None:
            continue
        for x in value if isinstance(value, list) else [value]:
            found += [float(v) for v in (x if isinstance(x, list) else [x]) if isinstance(v, (int, float))]
    return found


def largest_relative_difference(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return math.inf
    return max((abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b)), default=0.0)


Check = tuple[str, bool, str]  # name, passed, numbers


def attempt(name: str, measure: Callable[[], tuple[bool, str]]) -> Check:
    """`measure()`'s verdict and note, or a FAIL naming the error it raised."""
    try:
        ok, note = measure()
    except Exception as error:  # a check that breaks is a finding, not the end of the report
        ok, note = False, f"raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return name, ok, note


def check_plumbing(device: torch.device, quick: bool, scratch: Path) -> list[Check]:
    def tiny_run(name: str, options: dict, where: Path) -> tuple[bool, str]:
        on_device = run_scenario(name, {**options, "device": str(device)}, where / "device")
        used = device.type != "cuda" or on_device.get("peak_gpu_memory_mib", 0) > 0
        values = numbers(on_device)
        finite = all(math.isfinite(v) for v in values)
        note = f"status {on_device['status']}, {len(values)} numbers, all finite: {finite}"
        if device.type == "cuda":
            on_cpu = run_scenario(name, {**options, "device": "cpu"}, where / "cpu")
            gap = largest_relative_difference(values, numbers(on_cpu))
            peak = on_device.get("peak_gpu_memory_mib")
            note += f", peak CUDA memory {peak} MiB; largest relative difference from the CPU run {gap:.2g}"
        return on_device["status"] == "finished" and used and finite, note

    def resume(saved_on: str, resumed_on: str, where: Path) -> tuple[bool, str]:
        """A maml checkpoint written on one device, continued on the other (Adam is capturable on a
        GPU only; past the first steps the GPU's meta-step replays from a CUDA graph)."""
        options = {**TINY_MAML, "iterations": 4, "checkpoint_every": 2, "device": saved_on}
        run_scenario("maml", options, where / "saved")
        then = {**options, "iterations": 8, "device": resumed_on, "resume": where / "saved"}
        resumed = run_scenario("maml", then, where / "resumed")
        return resumed["status"] == "finished", f"status {resumed['status']}"

    results = [
        attempt(
            f"plumbing: {label}",
            lambda name=name, options=options, label=label: tiny_run(
                name, options, scratch / label.replace(" ", "_")
            ),
        )
        for label, (name, options) in plumbing_runs(quick).items()
    ]
    return results + [
        attempt(
            "plumbing: maml checkpoint from the device resumed on the CPU",
            lambda: resume(str(device), "cpu", scratch / "resume_from_device"),
        ),
        attempt(
            "plumbing: maml checkpoint from the CPU resumed on the device",
            lambda: resume("cpu", str(device), scratch / "resume_on_device"),
        ),
    ]


def conv_tasks(device: torch.device, hidden: int) -> tuple[torch.nn.Module, Tasks]:
    """Float64 conv-4 and 4 tasks of 5-way 1-shot, 2 queries per class, on random images."""
    g = torch.Generator().manual_seed(0)
    images = {split: torch.rand(10, 3, 1, 28, 28, generator=g) for split in ("train", "validation", "test")}
    tasks = ImageTasks(images, ways=5, shots=1, queries=2, rotations=False).sample("train", 4, g)
    tasks = Tasks(tasks[0].double(), tasks[1], tasks[2].double(), tasks[3])
    return conv4(5, g, hidden=hidden).double().to(device), Tasks(*(t.to(device) for t in tasks))


def check_engines(device: torch.device, quick: bool) -> list[Check]:
    hidden = 4 if quick else 64

    def compare(algo: str) -> tuple[bool, str]:
        model, tasks = conv_tasks(device, hidden)
        grads = {}
        for engine in ("functional", "learn2learn"):
            learner = make_learner(
                algo, copy.deepcopy(model), "classification", engine=engine, inner_lr=0.4, inner_steps=2
            )
            learner.meta_loss(tasks).backward()
            grads[engine] = torch.cat([p.grad.flatten() for p in learner.meta_parameters()])
        error = float((grads["functional"] - grads["learn2learn"]).norm() / grads["learn2learn"].norm())
        return error <= TOLERANCE, f"relative error {error:.2g} (norm over all parameters)"

    def same_tasks() -> tuple[bool, str]:
        g = torch.Generator().manual_seed(1)
        images = {
            split: torch.rand(12, 6, 1, 28, 28, generator=g) for split in ("train", "validation", "test")
        }
        family = ImageTasks(images, ways=5, shots=1, queries=3, rotations=True)
        on_cpu = family.sample("train", 8, torch.Generator().manual_seed(0))
        gathered = family.to(device).sample("train", 8, torch.Generator().manual_seed(0))
        where = {t.device.type for t in gathered}
        equal = all(torch.equal(a, b.cpu()) for a, b in zip(on_cpu, gathered))
        return equal and where == {
            device.type
        }, f"tasks on {', '.join(sorted(where))}, equal to the CPU's: {equal}"

    return [
        attempt(
            f"engines: {algo} conv-4 ({hidden} filters) float64, functional vs learn2learn",
            lambda algo=algo: compare(algo),
        )
        for algo in gradient_algorithms()
    ] + [attempt("tasks: glyph-like tasks gathered on the device equal those drawn on the CPU", same_tasks)]


def training_curve(
    capture: str, device: torch.device, steps: int, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    family = Sine(10, 10)
    g = torch.Generator().manual_seed(0)
    model = family.make_model(g).to(device)
    learner = make_learner("maml", model, "regression", capture=capture, meta_batch_chunk=chunk)
    losses = [
        learner.meta_step(Tasks(*(t.to(device) for t in family.sample("train", 25, g)))) for _ in range(steps)
    ]
    return torch.tensor(losses), torch.cat([p.detach().flatten().cpu() for p in learner.model.parameters()])


def check_capture(device: torch.device, quick: bool) -> list[Check]:
    captures = (["compile"] if not quick else []) + (["cuda_graph"] if device.type == "cuda" else [])
    if not captures:
        return [
            (
                "capture: nothing to compare on the CPU with --quick",
                True,
                "compile is checked without --quick",
            )
        ]
    eager_losses, eager_weights = training_curve("none", device, 100)

    def compare(capture: str, chunk: int | None) -> tuple[bool, str]:
        losses, weights = training_curve(capture, device, 100, chunk)
        loss_gap = float((losses - eager_losses).abs().max())
        weight_gap = float((weights - eager_weights).abs().max())
        return (
            loss_gap <= TOLERANCE and weight_gap <= TOLERANCE,
            f"largest loss difference {loss_gap:.2g}, weight difference {weight_gap:.2g}",
        )

    return [
        attempt(
            f"capture: {capture}{f', chunks of {chunk},' if chunk else ''} vs eager, 100 sine MAML steps",
            lambda capture=capture, chunk=chunk: compare(capture, chunk),
        )
        for capture in captures
        for chunk in (None, 10)  # meta_batch_chunk: three meta-losses (10, 10, 5 tasks) in one step
    ]


def check_training(device: torch.device, quick: bool, scratch: Path) -> list[Check]:
    iterations = 50 if quick else 2000

    def train(capture: str) -> tuple[bool, str]:
        options = dict(
            iterations=iterations,
            eval_every=0,
            checkpoint_every=0,
            eval_tasks=20 if quick else 500,
            device=str(device),
            capture=capture,
        )
        summary = run_scenario("maml", options, scratch / f"train_{capture}")
        per_iteration = summary["wall_s"] / iterations
        mse = summary.get("eval/post_eval_steps_mse", summary.get("eval/post_adapt_mse"))
        return (
            summary["status"] == "finished" and math.isfinite(mse),
            f"{summary['wall_s']:.1f} s with evaluation, {1e3 * per_iteration:.2f} ms per iteration, "
            f"70,000 iterations ≈ {70000 * per_iteration / 60:.1f} min; test MSE after "
            f"{len(summary['eval/mse_by_step']) - 1} steps {mse:.3f}",
        )

    captures = ["none"] + (["cuda_graph"] if device.type == "cuda" else [])
    return [
        attempt(
            f"training: sine MAML, {iterations} iterations, capture={capture}",
            lambda capture=capture: train(capture),
        )
        for capture in captures
    ]


def timed(check: Callable[[], list[Check]], device: torch.device) -> list[Check]:
    """The group's results, its first note followed by its wall time (and peak GPU memory)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    results = check()
    cost = f"{time.perf_counter() - start:.1f} s"
    if device.type == "cuda":
        cost += f", peak {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated"
    (name, ok, note), *rest = results
    return [(name, ok, f"{note} [this group: {cost}]"), *rest]


def report(device: torch.device, results: list[Check], quick: bool, complete: bool) -> str:
    rows = "\n".join(f"| {name} | {'PASS' if ok else 'FAIL'} | {note} |" for name, ok, note in results)
    passed = sum(ok for _, ok, _ in results)
    title = f"{passed} of {len(results)} passed" + ("" if complete else " so far (still running)")
    return (
        f"# GPU check{' (quick)' if quick else ''}: {title}\n\n"
        f"Written by `make gpu-check` (tools/gpu_check.py) on {time.strftime('%Y-%m-%d %H:%M')}, device "
        f"{device}: {machine(device)}. Float32 throughout (no mixed precision) except the float64 engine "
        f"check.\n\n| check | result | numbers |\n|---|---|---|\n{rows}\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tools/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to try the checks")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "gpu_check.md"), help="the report (.md)")
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller budgets, no torch.compile")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f"gpu-check: needs a CUDA GPU: {error}", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(1)  # the checks' models are small: more threads only wait on each other
    groups = [
        lambda scratch: check_plumbing(device, args.quick, scratch),
        lambda scratch: check_engines(device, args.quick),
        lambda scratch: check_capture(device, args.quick),
        lambda scratch: check_training(device, args.quick, scratch),
    ]
    results: list[Check] = []
    with tempfile.TemporaryDirectory() as scratch:
        for k, group in enumerate(groups):
            results += timed(lambda group=group: group(Path(scratch)), device)
            Path(args.out).write_text(report(device, results, args.quick, complete=k == len(groups) - 1))
            print(f"gpu-check: group {k + 1} of {len(groups)} done", file=sys.stderr, flush=True)
    print(Path(args.out).read_text())
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
