"""MAML meta-training speed: the batched torch.func engine against learn2learn's per-task loop.

One meta-training step (meta-loss, backward, Adam) on the same tasks and weights, engines
interleaved repeat by repeat so both see the same machine load. Cases: second-order MAML on sine
(1-40-40-1 MLP, K = 10, meta-batch 25; 1 and 5 inner steps; also the functional step compiled,
`capture=compile`) and FOMAML on glyphs (conv-4, 5-way
1-shot, meta-batch 32, 1 inner step; 1 query per class as in the scenario's meta-training, and 15).
One torch thread unless the case says two: on small models more threads only add synchronisation.

On a GPU (`--device cuda`): second-order MAML on sine at meta-batch 25 and 1000; FOMAML, ANIL and
second-order MAML on glyphs conv-4 (5-way 1-shot, 1 query per class) at meta-batch 32 and 128;
and the step eager, compiled and replayed from a CUDA graph (`metalearn.maml.capture`) for sine
(meta-batch 25), eager and from a graph for second-order MAML on conv-4 (meta-batch 32). Tasks are
on the GPU before timing; peak memory is the CUDA allocator's.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

import metalearn.maml._l2l  # noqa: F401  (imported up front, so its import is not counted as the engine's memory)
from benchmarks.timing import CPU, markdown_table, peak_memory, summarize, time_interleaved
from metalearn.fewshot import Sine, Tasks, glyphs
from metalearn.maml import CAPTURES, ENGINES, make_learner

REPEATS = 7


def main(device: torch.device = CPU) -> str:
    if device.type == "cuda":
        return _gpu_section(device)
    sine = Sine(10, 10)
    cases = [
        ("maml, sine K=10, batch 25, 1 step", "maml", sine, 25, 1, 0.01, 1, CPU, True),
        ("maml, sine K=10, batch 25, 5 steps", "maml", sine, 25, 5, 0.01, 1, CPU, True),
    ]
    for queries, threads in ((1, 1), (1, 2), (15, 1)):
        cases.append(
            (
                f"fomaml, glyphs 5-way 1-shot, {queries} quer{'y' if queries == 1 else 'ies'}/class, "
                f"batch 32, {threads} thread{'s' * (threads > 1)}",
                "fomaml",
                glyphs(ways=5, shots=1, queries=queries),
                32,
                1,
                0.4,
                threads,
            )
        )
    rows = [row for case in cases for row in _compare(*case)]
    header = ["case", "engine", "step (s)", "± (s)", "tasks / s", "speed-up", "peak memory growth (MiB)"]
    intro = __doc__.split("\n\n")[1].replace("\n", " ")
    return (
        f"## MAML meta-training: functional vs learn2learn\n\n{intro}\n\n{markdown_table(header, rows)}\n\n"
        f"### Drawing the tasks\n\n{_drawing(device)}\n\n"
        f"### Memory bounded by chunks of the meta-batch\n\n{_chunked(device)}"
    )


def _gpu_section(device: torch.device) -> str:
    sine, images = Sine(10, 10), glyphs(ways=5, shots=1, queries=1)
    cases = [
        (f"maml, sine K=10, batch {batch}, 1 step", "maml", sine, batch, 1, 0.01) for batch in (25, 1000)
    ]
    cases += [
        (f"{algo}, glyphs 5-way 1-shot, 1 query/class, batch {batch}", algo, images, batch, 1, 0.4)
        for algo in ("fomaml", "anil", "maml")
        for batch in (32, 128)
    ]
    threads = torch.get_num_threads()
    rows = [row for case in cases for row in _compare(*case, threads, device)]
    header = ["case", "engine", "step (s)", "± (s)", "tasks / s", "speed-up", "peak memory growth (MiB)"]
    captured = _captured(device)
    intro = __doc__.split("\n\n")[2].replace("\n", " ")
    return (
        f"## MAML meta-training on {torch.cuda.get_device_name(device)}: functional vs learn2learn\n\n"
        f"{intro}\n\n{markdown_table(header, rows)}\n\n"
        "### The meta-step captured\n\n"
        f"{captured}\n\n"
        f"### Drawing the tasks\n\n{_drawing(device)}\n\n"
        f"### Memory bounded by chunks of the meta-batch\n\n{_chunked(device)}"
    )


def _captured(device: torch.device, captures=CAPTURES) -> str:
    """The functional engine's meta-step eager and captured, on the same tasks: the sine MLP (all
    captures) and second-order MAML on conv-4 (eager and CUDA graph only: compile is not timed there)."""
    cases = [
        ("maml, sine K=10, batch 25", Sine(10, 10), 25, 0.01, captures),
        (
            "maml, glyphs 5-way 1-shot, 1 query/class, batch 32",
            glyphs(ways=5, shots=1, queries=1),
            32,
            0.4,
            [c for c in captures if c != "compile"],
        ),
    ]
    rows = []
    for name, family, meta_batch, inner_lr, options in cases:
        model, tasks = _model_and_tasks(family, meta_batch, device)
        steps_of = {}
        for capture in options:
            learner = make_learner(
                "maml", copy.deepcopy(model), family.kind, inner_lr=inner_lr, capture=capture
            )
            for _ in range(5):  # compiling, and the graph's eager warm-up and recording
                learner.meta_step(tasks)
            steps_of[capture] = lambda learner=learner: learner.meta_step(tasks)
        times = time_interleaved(steps_of, repeats=3 * REPEATS)
        eager = summarize(times["none"])[0]
        for capture in options:
            median, spread = summarize(times[capture])
            rows.append([name, capture, 1e3 * median, 1e3 * spread, eager / median])
    return markdown_table(["case", "capture", "step (ms)", "± (ms)", "speed-up"], rows)


def _drawing(device: torch.device, meta_batch: int = 32) -> str:
    """Meta-batches of glyphs 5-way 1-shot (1 query per class) per second: drawn with the images
    on the host and copied to `device`, and, on a GPU, gathered there from images kept there
    (`ImageTasks.to`); beside them, the FOMAML meta-step (functional engine) on such a meta-batch."""
    family = glyphs(ways=5, shots=1, queries=1)
    generator = torch.Generator().manual_seed(0)
    wait = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def drawn(images_on) -> Callable[[], None]:
        placed = family.to(images_on)

        def draw() -> None:
            Tasks(*(t.to(device) for t in placed.sample("train", meta_batch, generator)))
            wait()

        return draw

    model, tasks = _model_and_tasks(family, meta_batch, device)
    learner = make_learner("fomaml", model, family.kind, inner_lr=0.4)
    fns = {"drawn on the host": drawn(CPU)}
    if device.type != "cpu":
        fns[f"gathered on {device.type}"] = drawn(device)
    fns["fomaml meta-step"] = lambda: learner.meta_step(tasks)
    previous = torch.get_num_threads()
    torch.set_num_threads(1 if device.type == "cpu" else previous)
    try:
        times = time_interleaved(fns, repeats=REPEATS)
    finally:
        torch.set_num_threads(previous)
    rows = []
    for what, spent in times.items():
        median, spread = summarize(spent)
        rows.append(
            [
                f"glyphs 5-way 1-shot, batch {meta_batch}",
                what,
                1e3 * median,
                1e3 * spread,
                meta_batch / median,
            ]
        )
    return markdown_table(["case", "what", "time (ms)", "± (ms)", "tasks / s"], rows)


def _chunked(
    device: torch.device, meta_batch: int = 128, chunks=(64, 32, 16, 8), algos=("fomaml", "maml")
) -> str:
    """Peak memory and time of a warm meta-step on glyphs 5-way 1-shot (conv-4, 1 query per
    class): learn2learn's per-task loop, the functional engine on the whole meta-batch, and the
    functional engine `meta_batch_chunk` tasks at a time (the same meta-gradient up to summation
    order). Under each algorithm, the largest chunk whose peak is at most learn2learn's."""
    family = glyphs(ways=5, shots=1, queries=1)
    model, tasks = _model_and_tasks(family, meta_batch, device)
    previous = torch.get_num_threads()
    torch.set_num_threads(2 if device.type == "cpu" else previous)
    rows, verdicts = [], []
    try:
        for algo in algos:
            variants = {"learn2learn": {"engine": "learn2learn"}, "functional": {"engine": "functional"}}
            variants |= {f"functional, chunk {c}": {"meta_batch_chunk": c} for c in chunks}
            steps_of = {}
            for label, options in variants.items():
                learner = make_learner(algo, copy.deepcopy(model), family.kind, inner_lr=0.4, **options)
                steps_of[label] = lambda learner=learner: learner.meta_step(tasks)
            memory = {}
            for label, step in steps_of.items():
                step()  # warm: Adam's moments exist, as in every later step
                memory[label] = peak_memory(step, device) / 2**20
            times = time_interleaved(steps_of, repeats=3, warmup=0)
            baseline = summarize(times["learn2learn"])[0]
            speed = {}
            for label in variants:
                median, spread = summarize(times[label])
                speed[label] = baseline / median
                rows.append(
                    [f"{algo}, batch {meta_batch}", label, median, spread, speed[label], memory[label]]
                )
            verdicts.append(_within(algo, memory, speed, chunks))
    finally:
        torch.set_num_threads(previous)
    header = ["case", "engine", "step (s)", "± (s)", "speed-up", "peak memory growth (MiB)"]
    intro = " ".join(_chunked.__doc__.split())
    return f"{intro}\n\n{markdown_table(header, rows)}\n\n" + "\n".join(verdicts)


def _within(algo: str, memory: dict[str, float], speed: dict[str, float], chunks) -> str:
    """The line naming the largest chunk whose peak is at most learn2learn's, with its speed."""
    theirs = memory["learn2learn"]
    within = [c for c in chunks if memory[f"functional, chunk {c}"] <= theirs]
    if not within:
        return f"- {algo}: no chunk tried peaks at or under learn2learn's {theirs:.4g} MiB."
    best = f"functional, chunk {max(within)}"
    return (
        f"- {algo}: chunks of {max(within)} tasks peak at {memory[best]:.4g} MiB against learn2learn's "
        f"{theirs:.4g} MiB, at {speed[best]:.3g}× its speed."
    )


def _model_and_tasks(family, meta_batch: int, device: torch.device) -> tuple[torch.nn.Module, Tasks]:
    """The family's model and one training meta-batch, from seed 0, on `device`."""
    generator = torch.Generator().manual_seed(0)
    model = family.make_model(generator).to(device)
    return model, Tasks(*(t.to(device) for t in family.sample("train", meta_batch, generator)))


def _compare(
    name, algo, family, meta_batch, steps, inner_lr, threads, device=CPU, compiled=False
) -> list[list[object]]:
    """Both engines on the same tasks and weights; with `compiled`, also the functional engine's
    step compiled (`capture=compile`), its compilation done in the untimed warm-up."""
    model, tasks = _model_and_tasks(family, meta_batch, device)
    variants = {engine: {"engine": engine} for engine in ENGINES}
    if compiled:
        variants["functional, compiled"] = {"engine": "functional", "capture": "compile"}
    learners = {
        label: make_learner(
            algo, copy.deepcopy(model), family.kind, inner_lr=inner_lr, inner_steps=steps, **options
        )
        for label, options in variants.items()
    }
    steps_of = {
        label: (lambda learner=learner: learner.meta_step(tasks)) for label, learner in learners.items()
    }
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if compiled:
            steps_of["functional, compiled"]()  # compiled first: the column is the step's, not Inductor's
        # first, cold step
        memory = {label: peak_memory(step, device) / 2**20 for label, step in steps_of.items()}
        times = time_interleaved(steps_of, repeats=REPEATS, warmup=3 if compiled else 2)
    finally:
        torch.set_num_threads(previous)
    baseline = summarize(times["learn2learn"])[0]
    rows = []
    for label in learners:
        median, spread = summarize(times[label])
        rows.append([name, label, median, spread, meta_batch / median, baseline / median, memory[label]])
    return rows


if __name__ == "__main__":
    print(main())
