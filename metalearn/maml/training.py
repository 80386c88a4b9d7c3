"""Meta-training: learners step side by side on the same meta-batches, drawn from one generator.

Each iteration draws `meta_batch` training tasks where `generator` lives (the CPU, so a seed
trains on the same tasks on every device), moves them to the learners' device, and takes one
meta-step of every learner. It logs `loss/<name>`, each learner's meta-loss averaged over the last
`log_every` iterations, every `log_every` iterations; every `eval_every` iterations but the last,
the metrics `evaluate()` returns (the caller's validation protocol); every `checkpoint_every`
iterations it calls `checkpoint(iteration, window)`, the window being the losses not yet logged.
`start` and `window` continue from such a checkpoint: with the learners' and the generator's
state restored, the run gives the numbers of an uninterrupted one.

A meta-loss that is not finite ends the run: `diverged_step` is that iteration.

In a torch.distributed process group of several ranks (`torchrun`), every rank calls this with the
same arguments: each takes its share of every meta-batch and the meta-gradients are all-reduced
before each step (`metalearn.distributed`; the learners' optimisers are wrapped for it), so
every rank holds the same parameters and logs the meta-batch's loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch

from metalearn.distributed import AllReducedOptimizer, reduced, share, world
from metalearn.fewshot.tasks import TaskFamily, Tasks
from metalearn.maml.learners import MetaLearner
from reporting import History, Log, Progress, no_log, no_progress

Window = list[dict[str, float]]  # the meta-loss of each learner, by name, at each iteration not yet logged


class MetaTrainResult(NamedTuple):
    diverged_step: int | None  # the first iteration whose meta-loss was not finite; None if none
    last_finite: dict[str, float]  # the last finite value of each metric logged
    history: History  # the rows this call logged, losses and evaluations (a resumed run's from `start` on)


def meta_train(
    learners: Mapping[str, MetaLearner],
    family: TaskFamily,
    *,
    iterations: int,
    meta_batch: int,
    generator: torch.Generator,
    log_every: int = 1,
    evaluate: Callable[[], Mapping[str, Any]] | None = None,
    eval_every: int = 0,
    checkpoint: Callable[[int, Window], None] | None = None,
    checkpoint_every: int = 0,
    start: int = 0,
    window: Window | None = None,
    log: Log = no_log,
    progress: Progress = no_progress,
) -> MetaTrainResult:
    """Iterations `start + 1 .. iterations` of every learner in `learners` (its losses logged as
    `loss/<name>`) on meta-batches of `family`'s training split."""
    window = list(window or [])
    last_finite: dict[str, float] = {}
    history = History(then=log)

    def report(step: int, metrics: Mapping[str, Any]) -> None:
        history(step, metrics)
        last_finite.update((key, value) for key, value in metrics.items() if _finite_number(value))

    device = next(next(iter(learners.values())).model.parameters()).device
    desc = "+".join(learner.algo for learner in learners.values())
    rank, size = world()
    if size > 1:
        for learner in learners.values():
            if not isinstance(learner.optimizer, AllReducedOptimizer):
                learner.optimizer = AllReducedOptimizer(learner.optimizer)
    for iteration in progress(range(start + 1, iterations + 1), total=iterations - start, desc=desc):
        tasks = family.sample("train", meta_batch, generator)
        if size > 1:
            tasks, weight = share(tasks, rank, size)
            for learner in learners.values():
                learner.optimizer.weight = weight
        tasks = Tasks(*(t.to(device) for t in tasks))
        losses = {name: learner.meta_step(tasks) for name, learner in learners.items()}
        if size > 1:
            losses = {name: reduced(loss, weight) for name, loss in losses.items()}
        if not all(math.isfinite(loss) for loss in losses.values()):
            return MetaTrainResult(iteration, last_finite, history)
        window.append(losses)
        if iteration % log_every == 0:
            report(
                iteration, {f"loss/{name}": sum(w[name] for w in window) / len(window) for name in learners}
            )
            window = []
        if evaluate is not None and eval_every and iteration % eval_every == 0 and iteration < iterations:
            report(iteration, evaluate())
        if checkpoint is not None and checkpoint_every and iteration % checkpoint_every == 0:
            checkpoint(iteration, window)
    return MetaTrainResult(None, last_finite, history)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
