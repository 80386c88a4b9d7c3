"""Scenario `maml`: meta-train an algorithm of the MAML family on few-shot tasks, then evaluate it.

    python -m playground run maml algo=maml task=sine shots=10 iterations=70000       # Finn et al. 2017
    python -m playground run maml algo=protonet task=glyphs ways=5 shots=1
    python -m playground run maml task=omniglot data_dir=~/data download=true inner_steps=1 eval_steps=3
    python -m playground run maml resume=runs/maml/20260101-120000 iterations=140000  # continue

Logs `loss/meta_train` (mean over the last `log_every` iterations), and every `eval_every`
iterations the protocol of `metalearn.evaluation` on `eval_tasks` validation tasks (`eval/...`).
The summary holds the same protocol on fresh test tasks: pre- and post-adaptation MSE (regression)
or accuracy (classification) with 95% intervals, and the values after each of 0..eval_steps steps.
With `baseline=true` a pretrained network (`algo=pretrain`) trains beside it on the same tasks and
is evaluated the same way (`baseline/...`). A checkpoint is written every `checkpoint_every`
iterations; `resume=RUN_DIR` continues from it and gives the numbers of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import torch

import metalearn
from metalearn.fewshot import Sine, glyphs, omniglot
from playground.files import write_atomic
from playground.scenario import RunConfig, Scenario, option
from playground.scenarios._maml_plots import save_all as save_plots

TASKS = ("sine", "glyphs", "omniglot")
CHECKPOINT = "checkpoint.pt"
# Per-task defaults of the options left at None (Finn et al. 2017: sinusoid, Omniglot). Engines:
# see benchmarks/maml.py; on CPU, vmap's grouped convolutions make the functional engine slower
# than learn2learn's per-task loop for the conv net, and much faster for the small MLP.
_DEFAULTS = {
    "sine": dict(shots=10, eval_queries=100, inner_lr=0.01, meta_batch=25, eval_tasks=500, threads=1,
                 engine="functional"),
    "glyphs": dict(ways=5, shots=1, eval_queries=15, inner_lr=0.4, meta_batch=32, eval_tasks=600, threads=0,
                   engine="learn2learn"),
}
_DEFAULTS["omniglot"] = _DEFAULTS["glyphs"]
# Offsets from `seed` of the generators of held-out tasks: the same tasks at every evaluation.
_EVAL_SEEDS = {"validation": 1, "test": 2}
# Options a resumed run may change; every other one must match the checkpoint's run.
_RESUMABLE = ("iterations", "eval_every", "checkpoint_every", "resume", "threads", "tensorboard")


@dataclass(frozen=True)
class MamlConfig(RunConfig):
    algo: str = option("maml", f"algorithm: {', '.join(metalearn.ALGORITHMS)}")
    task: str = option("sine", f"task family: {', '.join(TASKS)}")
    engine: str | None = option(None, f"maml/fomaml/anil/metasgd engine: {', '.join(metalearn.ENGINES)}; "
                                "default the faster here: functional sine, learn2learn images")
    shots: int | None = option(None, "support examples per class (sine: points), default 10 sine, 1 images")
    ways: int | None = option(None, "classes per task (images only), default 5")
    queries: int | None = option(None, "query examples per class in meta-training, default = shots (Finn et al.)")
    eval_queries: int | None = option(None, "query examples of a held-out task, default 100 points (sine), "
                                      "15 per class (images)")
    inner_lr: float | None = option(None, "inner-loop SGD rate α, default 0.01 sine, 0.4 images")
    inner_steps: int = option(1, "inner steps in meta-training")
    eval_steps: int = option(10, "adaptation steps at evaluation (curve 0..eval_steps)")
    meta_lr: float = option(1e-3, "Adam rate of the meta-update")
    meta_batch: int | None = option(None, "tasks per meta-update, default 25 sine, 32 images")
    iterations: int = option(2000, "meta-updates (the paper's sine recipe: 70000)")
    log_every: int = option(10, "iterations per logged training loss")
    eval_every: int = option(1000, "iterations between validation evaluations (0: only the final test)")
    eval_tasks: int | None = option(None, "held-out tasks per evaluation, default 500 sine, 600 images")
    baseline: bool = option(False, "also pretrain one network on the same tasks, fine-tuned at test")
    checkpoint_every: int = option(1000, "iterations between checkpoints (0: none)")
    resume: str | None = option(None, "run directory whose checkpoint to continue from")
    threads: int | None = option(None, "torch threads (0: torch's default), default 1 sine, 0 images")
    data_dir: str | None = option(None, "omniglot: folder holding omniglot-py/ (default ~/.cache/playground/omniglot)")
    download: bool = option(False, "omniglot: fetch the data with torchvision into data_dir first")

    def __post_init__(self):
        _check_choice("algo", self.algo, metalearn.ALGORITHMS)
        _check_choice("task", self.task, TASKS)
        if self.engine is not None:
            _check_choice("engine", self.engine, metalearn.ENGINES)
        if self.task == "sine":
            if self.ways is not None:
                raise ValueError(f"ways={self.ways} does not apply to task=sine; "
                                 f"it applies to: {', '.join(t for t in TASKS if t != 'sine')}")
            if self.algo == "protonet":
                raise ValueError("algo=protonet needs a classification task; valid tasks: "
                                 f"{', '.join(t for t in TASKS if t != 'sine')}")
        if self.task != "omniglot" and (self.data_dir is not None or self.download):
            raise ValueError(f"data_dir={self.data_dir!r}, download={self.download} apply only to task=omniglot")
        for name, value in _DEFAULTS[self.task].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.queries is None:
            object.__setattr__(self, "queries", self.shots)
        for name in ("shots", "queries", "eval_queries", "inner_steps", "eval_steps", "meta_batch",
                     "iterations", "log_every", "eval_tasks") + (("ways",) if self.ways is not None else ()):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; valid: an integer >= 1")
        for name in ("eval_every", "checkpoint_every", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}; valid: an integer >= 0")
        if self.inner_lr <= 0 or self.meta_lr <= 0:
            raise ValueError(f"inner_lr={self.inner_lr}, meta_lr={self.meta_lr}; valid: both > 0")
        if self.resume is not None and not (Path(self.resume) / CHECKPOINT).is_file():
            raise ValueError(f"resume={self.resume!r} holds no {CHECKPOINT}; valid: a maml run directory "
                             "written with checkpoint_every > 0")


def _check_choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def task_families(config: MamlConfig):
    """The family that meta-trains and the one that evaluates (sine: more query points)."""
    if config.task == "sine":
        return Sine(config.shots, config.queries), Sine(config.shots, config.eval_queries)
    sizes = dict(ways=config.ways, shots=config.shots, queries=config.queries)
    if config.task == "glyphs":
        family = glyphs(**sizes)  # renders the fonts once, then reads its cache
    else:
        where = {"data_dir": config.data_dir} if config.data_dir else {}
        family = omniglot(**where, download=config.download, **sizes)
    return family, family.with_queries(config.eval_queries)


def run(config: MamlConfig, run) -> dict:
    train_family, eval_family = task_families(config)
    generator = torch.Generator().manual_seed(config.seed)
    hyper = dict(inner_lr=config.inner_lr, inner_steps=config.inner_steps, meta_lr=config.meta_lr)
    learners = {"eval": metalearn.make_learner(config.algo, train_family.make_model(generator),
                                               train_family.kind, engine=config.engine, **hyper)}
    if config.baseline:
        learners["baseline"] = metalearn.make_learner("pretrain", train_family.make_model(generator),
                                                      train_family.kind, **hyper)
    start, window = 0, []
    if config.resume:
        start, window = _load_checkpoint(Path(config.resume) / CHECKPOINT, config, learners, generator)

    def evaluate(split: str) -> dict:
        metrics = {}
        for prefix, learner in learners.items():
            generator = torch.Generator().manual_seed(config.seed + _EVAL_SEEDS[split])
            curve = metalearn.evaluate(learner, eval_family, n_tasks=config.eval_tasks, steps=config.eval_steps,
                                       generator=generator, split=split)
            metrics |= metalearn.summary_metrics(curve, prefix)
        return metrics

    for iteration in run.progress(range(start + 1, config.iterations + 1), total=config.iterations - start,
                                  desc=config.algo):
        tasks = train_family.sample("train", config.meta_batch, generator)
        losses = {name: learner.meta_step(tasks) for name, learner in learners.items()}
        if not all(math.isfinite(v) for v in losses.values()):
            return {"diverged": True, "diverged_step": iteration, "last_finite": run.last_finite}
        window.append(losses)
        if iteration % config.log_every == 0:
            run.log(iteration, {f"loss/{'pretrain' if name == 'baseline' else 'meta_train'}":
                                sum(w[name] for w in window) / len(window) for name in learners})
            window = []
        if config.eval_every and iteration % config.eval_every == 0 and iteration < config.iterations:
            run.log(iteration, evaluate("validation"))
        if config.checkpoint_every and iteration % config.checkpoint_every == 0:
            _save_checkpoint(run.dir / CHECKPOINT, config, learners, generator, iteration, window)
    summary = evaluate("test")
    run.log(config.iterations, {k: v for k, v in summary.items() if "by_step" not in k})
    save_plots(run, config, learners, eval_family, summary)
    return summary


def _save_checkpoint(path: Path, config, learners, generator, iteration, window) -> None:
    state = {
        "iteration": iteration,
        "window": window,
        "generator": generator.get_state(),
        "options": _fixed_options(config),
        "learners": {name: learner.state_dict() for name, learner in learners.items()},
    }
    write_atomic(path, lambda f: torch.save(state, f), mode="wb")


def _load_checkpoint(path: Path, config, learners, generator) -> tuple[int, list]:
    state = torch.load(path, weights_only=True)
    saved, ours = state["options"], _fixed_options(config)
    changed = [f"{k}={saved.get(k)!r} there, {v!r} here" for k, v in ours.items() if saved.get(k) != v]
    if changed:
        raise ValueError(f"resume={config.resume!r} was run with other options ({'; '.join(changed)}); "
                         f"only {', '.join(_RESUMABLE)} may change")
    if state["iteration"] > config.iterations:
        raise ValueError(f"iterations={config.iterations} is below the checkpoint's {state['iteration']}; "
                         f"valid: >= {state['iteration']}")
    for name, learner in learners.items():
        learner.load_state_dict(state["learners"][name])
    generator.set_state(state["generator"])
    return state["iteration"], state["window"]


def _fixed_options(config: MamlConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _RESUMABLE}


SCENARIO = Scenario(
    name="maml",
    help="meta-train MAML, FOMAML, ANIL, Meta-SGD, Reptile, ProtoNets or a pretrained baseline; evaluate",
    config=MamlConfig,
    run=run,
    demo=({"label": "sine_maml_vs_pretrain", "algo": "maml", "baseline": True, "iterations": 1500,
           "eval_every": 500, "eval_tasks": 200, "checkpoint_every": 0},),
)
