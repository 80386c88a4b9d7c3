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

On a GPU (`device=cuda`, or `auto` where there is one) models and meta-batches live there: an
image family's images are moved there once and each task is gathered there by index, the indices
still drawn on the CPU from the seeded generator, so a seed trains on the same tasks on any device.
There the functional engine is the default for every task, and the meta-step of the
MAML family (maml, fomaml, anil, foanil, metasgd) is replayed from a CUDA graph
(`capture=cuda_graph`, the default there: 15x faster on sine, 5x on conv-4, on an H200;
`metalearn.maml.capture`); `capture=none` runs it eagerly, `compile` works on any device.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import torch

import metalearn
from metalearn.distributed import check_same
from metalearn.fewshot import (
    TASK_FAMILIES,
    ImageTasks,
    TaskFamily,
    Tasks,
    make_task_family,
)
from metalearn.maml import (
    CAPTURES,
    ENGINES,
    LEARN2LEARN_MISSING,
    AdaptationCurve,
    adapted_predictions,
    can_capture,
    learn2learn_installed,
    meta_train,
)
from playground.config import check_bounds, option_defaults, refuse_untaken
from playground.devices import resolve_device
from playground.errors import BadInput
from playground.ranks import world_size
from playground.resources import check_memory, saved_bytes
from playground.rundir import CHECKPOINT, METRICS, check_resume, diverged
from playground.scenario import Checkpoint, RunConfig, Scenario, keywords, option
from playground.scenarios._maml_plots import SineFits
from playground.scenarios._maml_plots import save_all as save_plots

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


@dataclass(frozen=True)
class MamlConfig(RunConfig):
    algo: str = option("maml", f"algorithm: {', '.join(metalearn.ALGORITHMS)}, or module:factory")
    task: str = option("sine", f"task family: {', '.join(TASK_FAMILIES)}, or module:factory")
    engine: str | None = option(
        None,
        f"MAML family engine: {', '.join(ENGINES)}; "
        "default the faster: on CPU functional sine, learn2learn images; "
        "on GPU functional",
    )
    capture: str = option(
        "auto",
        f"functional engine's meta-step: auto, {', '.join(CAPTURES)}; auto: cuda_graph on a GPU "
        "(the MAML family, functional engine), else none",
    )
    meta_batch_chunk: int | None = option(
        None,
        "the MAML family: tasks of the meta-batch per chunk of the meta-step, whose gradients add up to "
        "the whole meta-batch's (less memory, the same meta-gradient to rounding); default the whole",
        min=1,
    )
    shots: int | None = option(None, "support examples per class (sine: points), default 10 sine, 1 images")
    ways: int | None = option(None, "classes per task (images only), default 5", min=2)
    queries: int | None = option(
        None, "query examples per class in meta-training, default = shots (Finn et al.)", min=1
    )
    eval_queries: int | None = option(
        None, "query examples of a held-out task, default 100 points (sine), 15 per class (images)", min=1
    )
    inner_lr: float | None = option(None, "inner-loop SGD rate α, default 0.01 sine, 0.4 images", above=0)
    inner_steps: int | None = option(
        None, "inner steps in meta-training, default 1 (imaml: 10 sine, 5 images)", min=1
    )
    prox_lambda: float | None = option(
        None,
        "imaml: weight λ of the proximal inner problem L(φ) + (λ/2)‖φ − θ‖², default 10 sine, 2 images",
        above=0,
    )
    cg_iters: int = option(
        5, "imaml: conjugate-gradient iterations per task for the implicit meta-gradient", min=1
    )
    eval_steps: int = option(10, "adaptation steps at evaluation (curve 0..eval_steps)", min=1)
    meta_lr: float = option(
        1e-3,
        "Adam rate of the meta-update (its first step, 10·meta_lr, a float32 number)",
        above=0,
        max=3.4e37,
    )
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
    resume: str | None = option(None, f"run directory whose {CHECKPOINT} to continue from")
    threads: int | None = option(None, "torch threads (0: torch's default), default 1 sine, 0 images", min=0)
    data_dir: str | None = option(
        None, "omniglot: folder holding omniglot-py/ (default ~/.cache/playground/omniglot)"
    )
    download: bool = option(False, "omniglot: fetch the data with torchvision into data_dir first")
    algo_options: dict = keywords(metalearn.ALGORITHMS)
    task_options: dict = keywords(TASK_FAMILIES)

    def __post_init__(self):
        metalearn.ALGORITHMS.factory(self.algo)  # each raises a ValueError naming the valid names
        TASK_FAMILIES.factory(self.task)
        _check_flat_options(self)
        _fold_learner_options(self)
        # engine and capture: not `choices=`, whose message words it otherwise (the tests pin these)
        for name, valid in (("engine", ENGINES), ("capture", ("auto", *CAPTURES))):
            if getattr(self, name) not in (None, *valid):
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if self.engine == "learn2learn" and not learn2learn_installed():
            raise ValueError(LEARN2LEARN_MISSING)
        device = resolve_device(self.device)
        if self.engine is None and (device.type == "cuda" or not learn2learn_installed()):
            object.__setattr__(self, "engine", "functional")
        classifying = _families_taking("ways")  # the classification families
        if "ways" not in TASK_FAMILIES.options(self.task):
            if self.ways is not None:
                raise ValueError(
                    f"ways={self.ways} does not apply to task={self.task}; "
                    f"it applies to: {', '.join(classifying)}"
                )
            if "regression" not in getattr(metalearn.learner_class(self.algo), "kinds", ("regression",)):
                raise ValueError(
                    f"algo={self.algo} needs a classification task; valid tasks: {', '.join(classifying)}"
                )
        reading = _families_taking("data_dir")
        if "data_dir" not in TASK_FAMILIES.options(self.task) and (
            self.data_dir is not None or self.download
        ):
            raise ValueError(
                f"data_dir={self.data_dir!r}, download={self.download} apply only to task={'/'.join(reading)}"
            )
        recipe = self.task if self.task in _DEFAULTS else _recipe_of(self)
        defaults = _DEFAULTS[recipe] | _IMAML_DEFAULTS[recipe]
        if "prox_lambda" not in metalearn.ALGORITHMS.options(self.algo):  # not a proximal inner loop
            defaults["inner_steps"] = 1
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.queries is None:
            object.__setattr__(self, "queries", self.shots)
        if self.shots < 1:  # not `min=1`, whose message words it otherwise: the tests pin this one
            raise ValueError(f"shots={self.shots}; valid: an integer >= 1")
        recordable = can_capture(self.algo, self.engine)
        several = world_size() > 1  # a replayed graph cannot hold the ranks' all-reduce
        if self.capture == "auto":
            graph = recordable and device.type == "cuda" and not several
            object.__setattr__(self, "capture", "cuda_graph" if graph else "none")
        if self.capture == "cuda_graph" and several:
            raise ValueError(
                f"capture=cuda_graph under torchrun (WORLD_SIZE={world_size()}); "
                "valid: capture=none or compile"
            )
        if self.capture != "none" and not recordable:
            raise ValueError(
                f"capture={self.capture} with algo={self.algo}, engine={self.engine}; valid: "
                f"capture=none, or algo {'/'.join(metalearn.gradient_algorithms())} with "
                "engine=functional"
            )
        if self.capture == "cuda_graph" and device.type != "cuda":
            raise ValueError(
                f"capture=cuda_graph with device={self.device} ({device}); valid: a CUDA "
                "device, or capture=none/compile"
            )
        check_resume(self.resume, "maml")
        metalearn.ALGORITHMS.check(self.algo, learner_options(self, self.algo))
        if self.algo not in metalearn.ALGORITHMS:  # a user's factory: built once, so that it is refused here
            family = task_families(self)[0]
            make_learner(self, self.algo, family.make_model(torch.Generator()), family.kind)


# Options of the learner factories with a flat name (and defaults per task above): each is refused
# when given to an algorithm whose factory does not take it, as `algo.<keyword>` is.
_LEARNER_OPTIONS = (
    "engine",
    "capture",
    "meta_batch_chunk",
    "inner_lr",
    "inner_steps",
    "meta_lr",
    "prox_lambda",
    "cg_iters",
)
_TASK_OPTIONS = ("ways", "shots", "queries", "data_dir", "download")


def _check_flat_options(config: MamlConfig) -> None:
    """Refuse a flat learner option the chosen algorithm does not take, and one given both flat and
    as `algo.<keyword>` (or `task.<keyword>`)."""
    refuse_untaken(config, metalearn.ALGORITHMS, _LEARNER_OPTIONS)
    defaults = option_defaults(MamlConfig)
    for namespace, names, given in (
        ("algo", _LEARNER_OPTIONS, config.algo_options),
        ("task", _TASK_OPTIONS, config.task_options),
    ):
        for name in given:
            if name in names and getattr(config, name) != defaults[name]:
                raise ValueError(f"{name}= and {namespace}.{name}= both given; give {namespace}.{name} only")


def _fold_learner_options(config: MamlConfig) -> None:
    """`algo.<keyword>` for a learner option the config has a name for sets that option: one option
    under two names, bounded, defaulted, resolved (`capture=auto`) and checked alike."""
    given, by_name = config.algo_options, {f.name: f for f in fields(config)}
    for name in _LEARNER_OPTIONS:
        if name in given:
            check_bounds(by_name[name], given[name])  # now, as a flat option's: before this method reads it
            object.__setattr__(config, name, given[name])
    object.__setattr__(config, "algo_options", {k: v for k, v in given.items() if k not in _LEARNER_OPTIONS})


def _recipe_of(config: MamlConfig) -> str:
    """A user's task family takes the defaults of the built-in family of its kind: sine's for
    regression, glyphs' for classification."""
    family = make_task_family(config.task, **config.task_options)
    return "sine" if family.kind == "regression" else "glyphs"


def _families_taking(option: str) -> list[str]:
    return [name for name in TASK_FAMILIES if option in TASK_FAMILIES.options(name)]


def task_families(config: MamlConfig) -> tuple[TaskFamily, TaskFamily]:
    """The family that meta-trains and the one that evaluates (with `eval_queries` query examples)."""
    family = make_task_family(config.task, **family_options(config))
    return family, family.with_queries(config.eval_queries)


def family_options(config: MamlConfig) -> dict:
    """The options of `config.task`'s factory: the config's, each only to a family that takes it
    (`__post_init__` refuses the others), then the `task.<keyword>` ones."""
    options = dict(
        ways=config.ways,
        shots=config.shots,
        queries=config.queries,
        data_dir=config.data_dir or None,
        download=config.download or None,
    )
    taken = TASK_FAMILIES.options(config.task)
    return {k: v for k, v in options.items() if v is not None and k in taken} | config.task_options


def check(config: MamlConfig, device: torch.device) -> None:
    """Before anything runs: the task families as the run builds them (the data on disk, as many
    classes as `ways` draws, as many examples per class as `shots` and the queries take; with
    `download=true` the data is fetched here), and the memory the run needs (`memory`, and an
    image family's images, which a run on a GPU keeps there)."""
    family, _ = task_families(config)
    images = (
        sum(x.numel() * x.element_size() for x in family.images.values())
        if isinstance(family, ImageTasks)
        else 0
    )
    check_memory(
        memory(config) + images,
        device,
        f"meta_batch={config.meta_batch} with eval_tasks={config.eval_tasks}",
        "meta_batch or eval_tasks (or shots, queries, eval_queries, ways)",
    )


_EVAL_CHUNK = 100  # held-out tasks `metalearn.evaluate` adapts at once (its `chunk`)


def memory(config: MamlConfig) -> int:
    """Bytes a run needs at its peak, roughly: each learner's meta-batch of tasks, with what
    autograd saves of a forward pass over a task's examples once per inner step and once for the
    query loss (the second-order meta-gradient's graph: an upper bound for the others), and the
    `eval_tasks` held-out tasks of an evaluation, drawn at once, `_EVAL_CHUNK` of them adapted at
    a time.

    Measured on one task of the family drawn with one shot and one query (per class), scaled to
    the run's shots, queries and eval_queries: a task's examples, and what autograd saves of them,
    grow linearly with each, and a task as large as a run asks for need not fit itself. A family
    that takes no `shots` or `queries` is measured on a task of each of the run's families.
    """
    options, taken = family_options(config), TASK_FAMILIES.options(config.task)
    if "shots" in taken and "queries" in taken:
        one = make_task_family(config.task, **(options | {"shots": 1, "queries": 1}))
        shots, queries = (options.get(name, taken[name].default) for name in ("shots", "queries"))
        measured = {"train": (one, shots, queries), "eval": (one, shots, config.eval_queries)}
    else:
        families = task_families(config)
        measured = {"train": (families[0], 1, 1), "eval": (families[1], 1, 1)}
    generator = torch.Generator().manual_seed(0)
    model = measured["train"][0].make_model(generator)

    def per_task(family: TaskFamily, shots: int, queries: int) -> tuple[int, int]:
        """Data and saved bytes of a task of `family` with `shots` times its support examples and
        `queries` times its query examples. Saved bytes grow by what one more example adds (the
        query's over the support's alone); the rest (weights saved once) does not grow."""
        task = family.sample("train", 1, generator)
        support, query = task.support_x[0], task.query_x[0]
        data = sum(t.numel() * t.element_size() for t in task) // (len(support) + len(query))  # an example's
        saved = saved_bytes(lambda: model(torch.cat([support, query])))
        grows = (saved - saved_bytes(lambda: model(support))) // len(query)  # an example's
        more = len(support) * (shots - 1) + len(query) * (queries - 1)  # examples beyond those measured
        return data * (len(support) + len(query) + more), saved + grows * more

    (train_data, train_saved), (eval_data, eval_saved) = (per_task(*measured[s]) for s in ("train", "eval"))
    learners = 2 if config.baseline else 1
    training = learners * config.meta_batch * (train_data + (config.inner_steps + 1) * train_saved)
    return training + config.eval_tasks * eval_data + min(config.eval_tasks, _EVAL_CHUNK) * eval_saved


def learner_options(config: MamlConfig, algo: str) -> dict:
    """The options of the config that `algo`'s factory takes (`__post_init__` refused those given
    that it does not take), and the `algo.<keyword>` ones for the chosen algorithm."""
    taken = metalearn.ALGORITHMS.options(algo)
    options = {name: getattr(config, name) for name in _LEARNER_OPTIONS if name in taken}
    return options | config.algo_options if algo == config.algo else options


def make_learner(config: MamlConfig, algo: str, model: torch.nn.Module, kind: str) -> metalearn.MetaLearner:
    """The learner; a factory's refusal of its options (a `ValueError`, or the wrong type) is the
    user's input, as it is for every factory called while the config is built."""
    try:
        return metalearn.make_learner(algo, model, kind, **learner_options(config, algo))
    except ValueError as error:
        raise BadInput(str(error)) from None


def run(config: MamlConfig, run) -> dict:
    cpu_family, eval_on_cpu = task_families(config)
    # an image family's images move to the run's device once; its tasks are gathered there
    train_family, eval_family = (_on(family, run.device) for family in (cpu_family, eval_on_cpu))
    generator = torch.Generator().manual_seed(config.seed)
    # Models are initialised on the CPU from `generator`, then moved: the same weights on every device.
    learners = {
        "eval": make_learner(
            config, config.algo, train_family.make_model(generator).to(run.device), train_family.kind
        )
    }
    if config.baseline:
        learners["baseline"] = make_learner(
            config, "pretrain", train_family.make_model(generator).to(run.device), train_family.kind
        )
    start, window = _resume(run.checkpoint.load(), learners, generator)

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
        for learner in learners.values():  # under torchrun, every rank must hold rank 0's weights
            check_same(learner.meta_parameters())
        learner_states = {name: learner.state_dict() for name, learner in learners.items()}
        state = {"window": window, "generator": generator.get_state(), "learners": learner_states}
        run.checkpoint.save(iteration, state)

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
        return diverged(result.diverged_step, result.last_finite)
    summary = evaluate("test")
    run.log(config.iterations, {k: v for k, v in summary.items() if "by_step" not in k})
    on_cpu = {prefix: learner.to(torch.device("cpu")) for prefix, learner in learners.items()}  # to draw
    labels = {prefix: config.algo if prefix == "eval" else "pretrain" for prefix in learners}
    rows = [json.loads(line) for line in (run.dir / METRICS).read_text().splitlines()]
    save_plots(run, labels, rows, summary, eval_family.kind, *_examples(config, on_cpu, eval_on_cpu))
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


def _on(family: TaskFamily, device: torch.device) -> TaskFamily:
    """An image family with its images on `device` (the same tasks from the same seed); any other
    family as it is (its tasks are drawn on the CPU and moved)."""
    return family.to(device) if isinstance(family, ImageTasks) else family


def _examples(config: MamlConfig, learners: dict, family: TaskFamily) -> tuple[SineFits | None, Tasks | None]:
    """What the last figure shows: on a regression family that draws whole curves
    (`sample_on_grid`, as sine), adapted fits on tasks unseen by the evaluations (Finn et al. 2017,
    fig. 2); on images, the support sets of a few training tasks; otherwise nothing."""
    if family.kind == "classification":
        return None, family.sample("train", 4, torch.Generator().manual_seed(config.seed))
    if not hasattr(family, "sample_on_grid"):
        return None, None
    tasks = family.sample_on_grid(3, torch.Generator().manual_seed(config.seed + 3))
    steps = sorted({0, 1, config.eval_steps})
    predictions = {prefix: adapted_predictions(learner, tasks, steps) for prefix, learner in learners.items()}
    return SineFits(tasks, steps, predictions), None


def _resume(checkpoint: tuple[int, dict] | None, learners: dict, generator: torch.Generator):
    """The iteration and loss window to continue from (0 and none for a fresh run); the
    checkpoint's weights and generator state loaded into `learners` and `generator`."""
    if checkpoint is None:
        return 0, []
    iteration, state = checkpoint
    for name, learner in learners.items():
        learner.load_state_dict(state["learners"][name])
    generator.set_state(state["generator"])
    # a window written before the loop moved into metalearn is keyed by prefix ("eval", "baseline")
    window = [
        {_LOSS_NAMES.get(name, name): loss for name, loss in losses.items()} for losses in state["window"]
    ]
    return iteration, window


SCENARIO = Scenario(
    name="maml",
    help="meta-train MAML, FOMAML, ANIL, Meta-SGD, iMAML, Reptile, ProtoNets or a pretrained baseline; "
    "evaluate",
    config=MamlConfig,
    run=run,
    headline=(
        "eval/pre_adapt_mse",
        "eval/post_adapt_mse",
        "eval/post_eval_steps_mse",
        "eval/pre_adapt_acc",
        "eval/post_adapt_acc",
        "eval/post_eval_steps_acc",
    ),
    checkpoint=Checkpoint(budget="iterations", also=("eval_every", "capture", "meta_batch_chunk")),
    data_parallel=True,
    check=check,
    sizes=("meta_batch", "meta_batch_chunk", "eval_tasks", "shots", "queries", "eval_queries", "ways"),
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
