"""Scenario `maml`: meta-train an algorithm of the MAML family on few-shot tasks, then evaluate it.

    python -m playground run maml algo=maml task=sine shots=10 iterations=70000       # Finn et al. 2017
    python -m playground run maml algo=protonet task=glyphs ways=5 shots=1
    python -m playground run maml task=omniglot data_dir=~/data download=true inner_steps=1 eval_steps=3
    python -m playground run maml resume=runs/maml/20260101-120000 iterations=140000  # continue

Logs `loss/meta_train` (mean over the last `log_every` iterations), and every `eval_every`
iterations the protocol of `metalearn.maml.evaluation` on `eval_tasks` validation tasks (`eval/...`).
The summary holds the same protocol on fresh test tasks, MSE (regression) or accuracy and loss
(classification) with 95% intervals: `eval/pre_adapt_*` before adaptation, `eval/post_adapt_*`
after one step (as in `metarl`), `eval/post_eval_steps_*` after `eval_steps` steps, and the curve
over 0..eval_steps steps (`eval/*_by_step`). Images are scored transductively: BatchNorm
normalises each query batch with its own statistics, as in MAML.
With `baseline=true` a pretrained network (`algo=pretrain`) trains beside it on the same tasks and
is evaluated the same way (`baseline/...`). A checkpoint is written every `checkpoint_every`
iterations; `resume=RUN_DIR` continues from it and gives the numbers of an uninterrupted run.

On a GPU (`device=cuda`, or `auto` where there is one) models and meta-batches live there; tasks
are still drawn on the CPU from the seeded generator, so a seed trains on the same tasks on any
device. There the functional engine is the default for every task, and the meta-step of
maml, fomaml, anil and metasgd is replayed from a CUDA graph (`capture=cuda_graph`, the default
there: 15x faster on sine, 5x on conv-4, on an H200; `metalearn.maml.capture`); `capture=none`
runs it eagerly, `compile` works on any device.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

import metalearn
from metalearn.fewshot import (
    TASK_FAMILIES,
    TaskFamily,
    Tasks,
    make_task_family,
    task_family_factory,
    task_family_options,
)
from metalearn.maml import (
    CAPTURES,
    ENGINES,
    AdaptationCurve,
    adapted_predictions,
    can_capture,
    learner_factory,
    meta_train,
)
from playground.devices import resolve_device
from playground.errors import BadInput
from playground.files import write_atomic
from playground.scenario import RunConfig, Scenario, option
from playground.scenarios._maml_plots import SineFits
from playground.scenarios._maml_plots import save_all as save_plots

CHECKPOINT = "checkpoint.pt"
# Per-task defaults of the options left at None (Finn et al. 2017: sinusoid, Omniglot). Engines:
# see benchmarks/maml.py; on CPU, vmap's grouped convolutions make the functional engine slower
# than learn2learn's per-task loop for the conv net, and much faster for the small MLP. On a GPU
# the functional engine is the default for every task (metalearn/maml/engines.py).
_DEFAULTS = {
    "sine": dict(
        shots=10,
        eval_queries=100,
        inner_lr=0.01,
        meta_batch=25,
        eval_tasks=500,
        threads=1,
        engine="functional",
    ),
    "glyphs": dict(
        ways=5,
        shots=1,
        eval_queries=15,
        inner_lr=0.4,
        meta_batch=32,
        eval_tasks=600,
        threads=0,
        engine="learn2learn",
    ),
}
_DEFAULTS["omniglot"] = _DEFAULTS["glyphs"]
# iMAML (Rajeswaran et al. 2019): its inner loop must near the proximal problem's minimiser, so it
# takes more steps than MAML's one. Images: the paper's Omniglot λ = 2 (it takes 16 steps; 5 here
# for CPU time). Sine: the best of λ ∈ {5, 10, 20} with 5-20 steps over 500 iterations.
_IMAML_DEFAULTS = {
    "sine": dict(inner_steps=10, prox_lambda=10.0),
    "glyphs": dict(inner_steps=5, prox_lambda=2.0),
}
_IMAML_DEFAULTS["omniglot"] = _IMAML_DEFAULTS["glyphs"]
# Offsets from `seed` of the generators of held-out tasks: the same tasks at every evaluation.
_EVAL_SEEDS = {"validation": 1, "test": 2}
# Each learner's prefix in the summary, and its training loss `loss/<name>` in the metrics.
_LOSS_NAMES = {"eval": "meta_train", "baseline": "pretrain"}
# Options a resumed run may change; every other one must match the checkpoint's run.
_RESUMABLE = (
    "iterations",
    "eval_every",
    "checkpoint_every",
    "resume",
    "threads",
    "tensorboard",
    "device",
    "capture",
)


@dataclass(frozen=True)
class MamlConfig(RunConfig):
    algo: str = option("maml", f"algorithm: {', '.join(metalearn.ALGORITHMS)}")
    task: str = option("sine", f"task family: {', '.join(TASK_FAMILIES)}")
    engine: str | None = option(
        None,
        f"maml/fomaml/anil/metasgd engine: {', '.join(ENGINES)}; "
        "default the faster: on CPU functional sine, learn2learn images; "
        "on GPU functional",
    )
    capture: str = option(
        "auto",
        f"functional engine's meta-step: auto, {', '.join(CAPTURES)}; auto: cuda_graph on a GPU "
        "(maml/fomaml/anil/metasgd, functional engine), else none",
    )
    shots: int | None = option(None, "support examples per class (sine: points), default 10 sine, 1 images")
    ways: int | None = option(None, "classes per task (images only), default 5", min=2)
    queries: int | None = option(
        None, "query examples per class in meta-training, default = shots (Finn et al.)", min=1
    )
    eval_queries: int | None = option(
        None, "query examples of a held-out task, default 100 points (sine), 15 per class (images)", min=1
    )
    inner_lr: float | None = option(None, "inner-loop SGD rate α, default 0.01 sine, 0.4 images")
    inner_steps: int | None = option(
        None, "inner steps in meta-training, default 1 (imaml: 10 sine, 5 images)", min=1
    )
    prox_lambda: float | None = option(
        None, "imaml: weight λ of the proximal inner problem L(φ) + (λ/2)‖φ − θ‖², default 10 sine, 2 images"
    )
    cg_iters: int = option(
        5, "imaml: conjugate-gradient iterations per task for the implicit meta-gradient", min=1
    )
    eval_steps: int = option(10, "adaptation steps at evaluation (curve 0..eval_steps)", min=1)
    meta_lr: float = option(1e-3, "Adam rate of the meta-update")
    meta_batch: int | None = option(None, "tasks per meta-update, default 25 sine, 32 images", min=1)
    iterations: int = option(2000, "meta-updates (the paper's sine recipe: 70000)", min=1)
    log_every: int = option(10, "iterations per logged training loss", min=1)
    eval_every: int = option(
        1000, "iterations between validation evaluations (0: only the final test)", min=0
    )
    eval_tasks: int | None = option(
        None, "held-out tasks per evaluation, default 500 sine, 600 images", min=1
    )
    baseline: bool = option(False, "also pretrain one network on the same tasks, fine-tuned at test")
    checkpoint_every: int = option(1000, "iterations between checkpoints (0: none)", min=0)
    resume: str | None = option(None, "run directory whose checkpoint to continue from")
    threads: int | None = option(None, "torch threads (0: torch's default), default 1 sine, 0 images", min=0)
    data_dir: str | None = option(
        None, "omniglot: folder holding omniglot-py/ (default ~/.cache/playground/omniglot)"
    )
    download: bool = option(False, "omniglot: fetch the data with torchvision into data_dir first")

    def __post_init__(self):
        learner_factory(self.algo)  # each raises a ValueError naming the valid names
        task_family_factory(self.task)
        # engine and capture: not `choices=`, whose message words it otherwise (the tests pin these)
        for name, valid in (("engine", ENGINES), ("capture", ("auto", *CAPTURES))):
            if getattr(self, name) not in (None, *valid):
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        device = resolve_device(self.device)
        if self.engine is None and device.type == "cuda":
            object.__setattr__(self, "engine", "functional")
        classifying = _families_taking("ways")  # the classification families
        if self.task not in classifying:
            if self.ways is not None:
                raise ValueError(
                    f"ways={self.ways} does not apply to task={self.task}; "
                    f"it applies to: {', '.join(classifying)}"
                )
            if self.algo == "protonet":
                raise ValueError(
                    f"algo=protonet needs a classification task; valid tasks: {', '.join(classifying)}"
                )
        reading = _families_taking("data_dir")
        if self.task not in reading and (self.data_dir is not None or self.download):
            raise ValueError(
                f"data_dir={self.data_dir!r}, download={self.download} apply only to task={'/'.join(reading)}"
            )
        defaults = _DEFAULTS[self.task] | _IMAML_DEFAULTS[self.task]
        if self.algo != "imaml":
            defaults["inner_steps"] = 1
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.queries is None:
            object.__setattr__(self, "queries", self.shots)
        if self.shots < 1:  # not `min=1`, whose message words it otherwise: the tests pin this one
            raise ValueError(f"shots={self.shots}; valid: an integer >= 1")
        if self.inner_lr <= 0 or self.meta_lr <= 0 or self.prox_lambda <= 0:
            raise ValueError(
                f"inner_lr={self.inner_lr}, meta_lr={self.meta_lr}, "
                f"prox_lambda={self.prox_lambda}; valid: all > 0"
            )
        recordable = can_capture(self.algo, self.engine)
        if self.capture == "auto":
            object.__setattr__(
                self, "capture", "cuda_graph" if recordable and device.type == "cuda" else "none"
            )
        if self.capture != "none" and not recordable:
            raise ValueError(
                f"capture={self.capture} with algo={self.algo}, engine={self.engine}; valid: "
                f"capture=none, or algo {'/'.join(metalearn.GRADIENT_ALGORITHMS)} with "
                "engine=functional"
            )
        if self.capture == "cuda_graph" and device.type != "cuda":
            raise ValueError(
                f"capture=cuda_graph with device={self.device} ({device}); valid: a CUDA "
                "device, or capture=none/compile"
            )
        if self.resume is not None and not (Path(self.resume) / CHECKPOINT).is_file():
            raise ValueError(
                f"resume={self.resume!r} holds no {CHECKPOINT}; valid: a maml run directory "
                "written with checkpoint_every > 0"
            )


def _families_taking(option: str) -> list[str]:
    return [name for name in TASK_FAMILIES if option in task_family_options(name)]


def task_families(config: MamlConfig) -> tuple[TaskFamily, TaskFamily]:
    """The family that meta-trains and the one that evaluates (with `eval_queries` query examples)."""
    # the options given, each only to the families that take it (`__post_init__` refuses the others)
    options = dict(
        ways=config.ways,
        shots=config.shots,
        queries=config.queries,
        data_dir=config.data_dir or None,
        download=config.download or None,
    )
    family = make_task_family(config.task, **{k: v for k, v in options.items() if v is not None})
    return family, family.with_queries(config.eval_queries)


def run(config: MamlConfig, run) -> dict:
    train_family, eval_family = task_families(config)
    generator = torch.Generator().manual_seed(config.seed)
    hyper = dict(
        inner_lr=config.inner_lr,
        inner_steps=config.inner_steps,
        meta_lr=config.meta_lr,
        prox_lambda=config.prox_lambda,
        cg_iters=config.cg_iters,
    )
    # Models are initialised on the CPU from `generator`, then moved: the same weights on every device.
    learners = {
        "eval": metalearn.make_learner(
            config.algo,
            train_family.make_model(generator).to(run.device),
            train_family.kind,
            engine=config.engine,
            capture=config.capture,
            **hyper,
        )
    }
    if config.baseline:
        learners["baseline"] = metalearn.make_learner(
            "pretrain", train_family.make_model(generator).to(run.device), train_family.kind, **hyper
        )
    start, window = 0, []
    if config.resume:
        start, window, rows = _load_checkpoint(Path(config.resume) / CHECKPOINT, config, learners, generator)
        if Path(config.resume).resolve() == run.dir.resolve() and rows is not None:
            run.truncate_metrics(rows)  # resumed in place: drop the rows logged after the checkpoint

    def evaluate(split: str) -> dict:
        metrics = {}
        for prefix, learner in learners.items():
            generator = torch.Generator().manual_seed(config.seed + _EVAL_SEEDS[split])
            curve = metalearn.evaluate(
                learner,
                eval_family,
                n_tasks=config.eval_tasks,
                steps=config.eval_steps,
                generator=generator,
                split=split,
            )
            metrics |= summary_metrics(curve, prefix)
        return metrics

    def checkpoint(iteration: int, window: list) -> None:
        _save_checkpoint(run.dir / CHECKPOINT, config, learners, generator, iteration, window, run.rows)

    result = meta_train(
        {_LOSS_NAMES[prefix]: learner for prefix, learner in learners.items()},
        train_family,
        iterations=config.iterations,
        meta_batch=config.meta_batch,
        generator=generator,
        log_every=config.log_every,
        evaluate=lambda: evaluate("validation"),
        eval_every=config.eval_every,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        start=start,
        window=window,
        log=run.log,
        progress=run.progress,
    )
    if result.diverged_step is not None:
        return {"diverged": True, "diverged_step": result.diverged_step, "last_finite": result.last_finite}
    summary = evaluate("test")
    run.log(config.iterations, {k: v for k, v in summary.items() if "by_step" not in k})
    on_cpu = {prefix: learner.to(torch.device("cpu")) for prefix, learner in learners.items()}  # to draw
    labels = {prefix: config.algo if prefix == "eval" else "pretrain" for prefix in learners}
    rows = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    save_plots(run, labels, rows, summary, eval_family.kind, *_examples(config, on_cpu, eval_family))
    return summary


def summary_metrics(curve: AdaptationCurve, prefix: str = "eval") -> dict[str, float | list[float]]:
    """Namespaced metrics: MSE (regression) or accuracy and loss (classification) at three points.

    `pre_adapt_*` is before adaptation, `post_adapt_*` after one step (the headline of Finn et al.
    2017 for sinusoids and MAML-RL, and the meaning `metarl` gives the same key), and
    `post_eval_steps_*` after the curve's last step; `*_by_step` holds the whole curve. A curve
    without adaptation steps has only the `pre_adapt_*` and `*_by_step` keys.
    """
    names = (
        [("mse", curve.loss, curve.loss_ci95)]
        if curve.accuracy is None
        else [
            ("acc", curve.accuracy, curve.accuracy_ci95),
            ("loss", curve.loss, curve.loss_ci95),
        ]
    )
    metrics: dict[str, float | list[float]] = {}
    for name, mean, ci in names:
        points = {"pre_adapt": 0}
        if len(mean) > 1:
            points |= {"post_adapt": 1, "post_eval_steps": len(mean) - 1}
        for point, step in points.items():
            metrics |= {f"{prefix}/{point}_{name}": mean[step], f"{prefix}/{point}_{name}_ci95": ci[step]}
        metrics |= {f"{prefix}/{name}_by_step": mean, f"{prefix}/{name}_ci95_by_step": ci}
    return metrics


def _examples(config: MamlConfig, learners: dict, family: TaskFamily) -> tuple[SineFits | None, Tasks | None]:
    """What the last figure shows: on sine, adapted fits on tasks unseen by the evaluations (Finn
    et al. 2017, fig. 2); on images, the support sets of a few training tasks."""
    if not hasattr(family, "sample_on_grid"):  # a family without whole curves to draw: images
        return None, family.sample("train", 4, torch.Generator().manual_seed(config.seed))
    tasks = family.sample_on_grid(3, torch.Generator().manual_seed(config.seed + 3))
    steps = sorted({0, 1, config.eval_steps})
    predictions = {prefix: adapted_predictions(learner, tasks, steps) for prefix, learner in learners.items()}
    return SineFits(tasks, steps, predictions), None


def _save_checkpoint(path: Path, config, learners, generator, iteration, window, rows) -> None:
    state = {
        "iteration": iteration,
        "window": window,
        "metrics_rows": rows,
        "generator": generator.get_state(),
        "options": _fixed_options(config),
        "learners": {name: learner.state_dict() for name, learner in learners.items()},
    }
    write_atomic(path, lambda f: torch.save(state, f), mode="wb")


def _load_checkpoint(path: Path, config, learners, generator) -> tuple[int, list, int | None]:
    """The iteration, loss window and metrics rows of the checkpoint; its weights and generator
    state loaded into `learners` and `generator`."""
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")  # loaded into the learners' device
        saved, ours = state["options"], _fixed_options(config)
    except Exception as error:  # truncated, corrupt, or not ours
        raise BadInput(
            f"resume={config.resume!r}: cannot read {path}: {type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}; valid: a maml run's checkpoint"
        ) from None
    changed = [f"{k}={saved.get(k)!r} there, {v!r} here" for k, v in ours.items() if saved.get(k) != v]
    if changed:
        raise BadInput(
            f"resume={config.resume!r} was run with other options ({'; '.join(changed)}); "
            f"only {', '.join(_RESUMABLE)} may change"
        )
    if state["iteration"] > config.iterations:
        raise BadInput(
            f"iterations={config.iterations} is below the checkpoint's {state['iteration']}; "
            f"valid: >= {state['iteration']}"
        )
    for name, learner in learners.items():
        learner.load_state_dict(state["learners"][name])
    generator.set_state(state["generator"])
    # a window written before the loop moved into metalearn is keyed by prefix ("eval", "baseline")
    window = [
        {_LOSS_NAMES.get(name, name): loss for name, loss in losses.items()} for losses in state["window"]
    ]
    return state["iteration"], window, state.get("metrics_rows")  # None: written before rows were kept


def _fixed_options(config: MamlConfig) -> dict:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in _RESUMABLE}


SCENARIO = Scenario(
    name="maml",
    help="meta-train MAML, FOMAML, ANIL, Meta-SGD, iMAML, Reptile, ProtoNets or a pretrained baseline; "
    "evaluate",
    config=MamlConfig,
    run=run,
    demo=(
        {
            "label": "sine_maml_vs_pretrain",
            "algo": "maml",
            "baseline": True,
            "iterations": 1500,
            "eval_every": 500,
            "eval_tasks": 200,
            "checkpoint_every": 0,
        },
    ),
)
