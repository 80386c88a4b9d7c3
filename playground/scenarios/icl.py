"""Scenario `icl`: train a transformer on in-context linear regression, probe it against GD.

    python -m playground run icl                                         # 1 layer ≈ 1 GD step
    python -m playground run icl layers=2 steps=3000 batch=1024 lr=3e-3  # nearest GD++
    python -m playground run icl model=lsa_gd layers=2                   # GD by construction
    python -m playground run icl model=gpt dim=3 x_dist=gaussian layers=3 heads=4 width=32 batch=256

Conventions: x ~ U(−x_range, x_range)^dim (the paper's, not the released code's U(−0.5, 0.5)); GD
descends (1/2N)Σ(wᵀx_i − y_i)² from 0; every loss is the plain MSE (no ½). The baselines are fit
on held-out tasks (η of K-step GD by line search, GD++'s (η, γ)) and scored with the model on the
same evaluation tasks; K = `layers` for the LSA models, 1 for gpt. Logged every `eval_every` steps:
`loss/train`, `eval/loss` and the alignment with K-step GD (`probe/preds_diff`, `probe/model_cos`,
`probe/model_diff`). The summary adds the same against GD++ (`gdpp/model_cos`, ...), SPD / ILWD
against every algorithm, linear-probe R² per layer, error vs context length (`context/...`) and
out-of-distribution scaling (`ood/...`). On a GPU (`device`) the model, its training and every
baseline run there; prompts are drawn on the CPU from the seed and moved, the same on any device.
A checkpoint is written every `checkpoint_every` training steps; `resume=RUN_DIR` continues from it
and gives the numbers of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from metalearn import icl
from metalearn.distributed import check_same
from playground.config import check_bounds, option_defaults, refuse_untaken
from playground.resources import check_memory
from playground.rundir import CHECKPOINT, check_resume, diverged
from playground.scenario import Checkpoint, RunConfig, Scenario, keywords, option
from playground.scenarios import _icl_plots as plots

_PROBE_PROMPTS = 2048  # prompts for ILWD and the linear probes
# Model options the run leaves at their factory's default: float32 weights, lsa_gd's plain GD (γ = 0).
_FACTORY_DEFAULTS = ("dtype", "gamma")
# Options of the model factories with a flat name: refused, when set, for a model that takes none.
_MODEL_FIELDS = ("layers", "heads", "width", "init_scale")


@dataclass(frozen=True)
class IclConfig(RunConfig):
    model: str = option("lsa", f"model: {', '.join(icl.MODELS)}, or module:factory")
    dim: int = option(10, "input dimension d", min=1)
    context: int = option(10, "in-context examples N per prompt", min=1)
    layers: int = option(1, "transformer layers (lsa_gd: GD steps)", min=1)
    heads: int = option(1, "attention heads per layer (lsa_gd: 1)", min=1)
    width: int = option(64, "gpt: residual stream width", min=1)
    init_scale: float = option(0.1, "lsa: weights start N(0, init_scale²)", min=0)
    x_dist: str = option("uniform", f"input distribution: {', '.join(icl.X_DISTS)}")
    x_range: float = option(
        1.0, "uniform inputs: x ~ U(−x_range, x_range), 1e-15 to 1e15 (float32 prompts hold x²)", above=0
    )
    noise: float = option(0.0, "target noise std", min=0)
    num_tasks: int = option(0, "finite pool of training tasks (0: fresh tasks every step)", min=0)
    steps: int = option(2000, "training steps (lsa_gd: none)", min=0)
    batch: int = option(2048, "prompts per training step", min=1)
    lr: float = option(
        1e-3, "Adam learning rate (its first step, 10·lr, a float32 number)", above=0, max=3.4e37
    )
    eval_tasks: int = option(4096, "held-out prompts for fitting baselines and for evaluation", min=1)
    eval_every: int = option(250, "steps between evaluations", min=1)
    ridge: float = option(
        0.1, "ridge baseline's λ, at least float32's resolution 2⁻²³·N·d·E x² of XᵀX", above=0
    )
    ood_scales: tuple[float, ...] = option((0.5, 1.0, 2.0, 4.0), "OOD factors α > 0 for x -> αx, w -> αw")
    threads: int = option(1, "torch threads (0: torch's default)", min=0)
    plots: bool = option(True, "save the PNG figures")
    checkpoint_every: int = option(500, "training steps between checkpoints (0: none)", min=0)
    resume: str | None = option(None, f"run directory whose {CHECKPOINT} to continue from")
    model_options: dict = keywords(icl.MODELS)

    def __post_init__(self):
        icl.MODELS.factory(self.model)  # an unknown name: one line naming the valid ones
        _fold_model_options(self)
        icl.TaskDistribution(self.dim, self.context, self.x_dist, self.x_range)  # x_dist's name, x_range
        if not self.ood_scales or min(self.ood_scales) <= 0:
            raise ValueError(f"ood_scales={self.ood_scales}; valid: one or more scales > 0")
        _check_ood_scales(self)
        floor = float(f"{icl.ridge_floor(self.dim, self.context, self.x_dist, self.x_range):.3g}")
        if self.ridge < floor:
            raise ValueError(
                f"ridge={self.ridge}: below float32's resolution of XᵀX, 2⁻²³·N·d·E x² = {floor:g}, λ is "
                f"lost in rounding and XᵀX + λI singular for prompts shorter than dim; valid: >= {floor:g}"
            )
        if self.model == "lsa_gd" and self.heads != 1:
            raise ValueError(f"heads={self.heads} with model=lsa_gd; valid: heads=1 (one GD step per layer)")
        features = (self.width if self.model == "gpt" else self.dim + 1) + 1  # a probe's, with its bias
        if self.eval_tasks < 2 * features:
            raise ValueError(
                f"eval_tasks={self.eval_tasks}; valid: >= {2 * features} for "
                f"model={self.model}: the linear probes fit {features} coefficients on half "
                f"the prompts, score the rest"
            )
        if self.model == "gpt" and self.width % self.heads:
            raise ValueError(f"width={self.width} with heads={self.heads}; valid: width a multiple of heads")
        check_resume(self.resume, "icl")
        refuse_untaken(self, icl.MODELS, _MODEL_FIELDS)
        icl.MODELS.check(self.model, model_options(self, generator=None, gd_lr=None))


def _check_ood_scales(config: IclConfig) -> None:
    """Each OOD factor α keeps the scaled inputs αx within the scales float32 prompts hold."""
    scale = icl.input_distribution(config.x_dist).scale(config.x_range)
    low, high = icl.INPUT_SCALES
    for alpha in config.ood_scales:
        if not low <= alpha * scale <= high:
            raise ValueError(
                f"ood_scales={','.join(f'{a:g}' for a in config.ood_scales)}: α={alpha:g} scales the "
                f"inputs to {alpha * scale:g}, beyond what float32 prompts hold ({low:g} to {high:g}); "
                f"valid: {low / scale:g} <= α <= {high / scale:g}"
            )


def check(config: IclConfig, device: torch.device) -> None:
    """The memory a run needs on its device (`memory`)."""
    check_memory(
        memory(config),
        device,
        f"batch={config.batch}, eval_tasks={config.eval_tasks} with context={config.context}, "
        f"dim={config.dim}, layers={config.layers}"
        + (f", width={config.width}" if config.model == "gpt" else ""),
        "batch, eval_tasks, context, dim, layers or width",
    )


def memory(config: IclConfig) -> int:
    """Bytes a run needs at its peak, roughly (float32): the prompts held (the training batch; two
    sets of `eval_tasks`, one per context length 1..N and one per OOD scale and kind); the model's
    weights with their gradient and Adam's moments; and the most of what autograd keeps per layer
    and prompt (`_per_layer`) at any one time: for a training batch, for the `eval_tasks` prompts
    whose sensitivities ∂ŷ/∂x_q are taken, or, one layer at a time, for the probe prompts asked at
    2·dim inputs each. A model of one's own is counted as an LSA of the same dim."""
    n, d = config.context, config.dim
    prompt = (n + 2) * (d + 1)  # floats of one prompt: xs, ys, xq, yq, w
    by_length = (n * (n + 1) // 2 + 2 * n) * (d + 1)  # one prompt of each context length 1..N
    data = config.batch * prompt + config.eval_tasks * ((2 + 2 * len(config.ood_scales)) * prompt + by_length)
    weights, per_layer = _per_layer(config)
    probes = min(config.eval_tasks, _PROBE_PROMPTS) * 2 * d * per_layer
    kept = max(config.batch, config.eval_tasks) * config.layers * per_layer
    return 4 * (data + 4 * weights + max(kept, probes) + config.num_tasks * d)


def _per_layer(config: IclConfig) -> tuple[int, int]:
    """The model's weights, and the floats autograd keeps per layer and prompt (measured, with
    margin, against `playground.resources.saved_bytes`): GPT, on its 2N + 1 tokens of width C with H
    heads, 24·(2N+1)·C + 3·H·(2N+1)²; LSA, on N + 1 tokens of D = dim + 1 features, 6·(N+1)·D + 4·D²."""
    n, layers, heads = config.context, config.layers, config.heads
    if config.model == "gpt":
        tokens, width = 2 * n + 1, config.width
        weights = layers * 12 * width * width + (config.dim + 1 + tokens + 2) * width
        return weights, 24 * tokens * width + 3 * heads * tokens * tokens
    features = config.dim + 1
    return 4 * layers * heads * features * features, 6 * (n + 1) * features + 4 * features * features


def run(config: IclConfig, run) -> dict:
    generator = torch.Generator().manual_seed(config.seed)
    pool = icl.task_pool(config.num_tasks, config.dim, generator) if config.num_tasks else None
    fresh = icl.TaskDistribution(config.dim, config.context, config.x_dist, config.x_range, config.noise)
    train_tasks = dataclasses.replace(fresh, pool=pool)
    # Prompts and weights are drawn on the CPU, then moved: the same numbers on every device.
    tune = fresh.sample(config.eval_tasks, generator).to(run.device)
    evals = fresh.sample(config.eval_tasks, generator).to(run.device)
    gd_steps = 1 if config.model == "gpt" else config.layers
    summary, algorithms = _fit_baselines(config, tune, evals, gd_steps)
    reference = algorithms["gd"]
    model = _build_model(config, generator, summary["gd/steps_lr"][-1]).to(run.device)

    def evaluate() -> dict:
        model.eval()
        with torch.no_grad():
            loss = icl.mse(model(*evals[:3]), evals.yq)
        metrics = {"eval/loss": loss, **_prefixed("probe/", icl.alignment(model, reference, evals))}
        model.train()
        return metrics

    history: list[dict] = []

    def log(step: int, metrics: dict) -> None:
        run.log(step, metrics)
        history.append({"step": step, **metrics})

    start, state = run.checkpoint.load() or (0, None)
    if state is not None:
        model.load_state_dict(state["model"])
        generator.set_state(state["generator"])
        history.extend(state["history"])

    def checkpoint(step: int, last_finite: dict, optimizer_state: dict) -> None:
        check_same(list(model.parameters()))  # under torchrun, every rank must hold rank 0's weights
        saved = {
            "model": model.state_dict(),
            "generator": generator.get_state(),
            "history": history,
            "last_finite": last_finite,
            "optimizer": optimizer_state,
        }
        run.checkpoint.save(step, saved)

    if config.model != "lsa_gd" and config.steps:
        result = icl.train(
            model,
            train_tasks,
            config.steps,
            config.batch,
            config.lr,
            generator,
            log=log,
            every=config.eval_every,
            evaluate=evaluate,
            progress=run.progress,
            checkpoint=checkpoint,
            checkpoint_every=config.checkpoint_every,
            start=start,
            last_finite=None if state is None else state["last_finite"],
            optimizer_state=None if state is None else state["optimizer"],
        )
        if result.diverged_step is not None:
            return {**summary, **diverged(result.diverged_step, result.last_finite)}
    else:
        log(0, evaluate())
    model.eval()
    summary.update(evaluate())
    summary.update(_compare(config, model, algorithms, fresh, evals, generator))
    if config.plots:
        model.cpu()  # figures are drawn on the CPU
        attention = (
            _attention_weights(config, model, summary["gd/steps_lr"][-1])
            if isinstance(model, icl.LinearSelfAttention)
            else None
        )
        plots.save_all(run, summary, history, attention)
    return summary


def _fit_baselines(config: IclConfig, tune: icl.Prompts, evals: icl.Prompts, gd_steps: int):
    """GD with 1..K steps and GD++ fit on `tune`, ridge and least squares; scored on `evals`.

    Returns the summary losses and the predictors compared with the model: K-step GD and GD++,
    ridge and least squares.
    """
    summary: dict = {
        key: [] for key in ("gd/steps_lr", "gd/steps_loss", "gdpp/lr", "gdpp/gamma", "gdpp/loss")
    }
    for k in range(1, gd_steps + 1):
        lr, _ = icl.fit_gd(tune, k)
        pp_lr, gamma, _ = icl.fit_gd_plus_plus(tune, k)
        algorithms = {"gd": icl.gd(lr, k), "gdpp": _gd_plus_plus(pp_lr, gamma, k)}
        for key, value in (
            ("gd/steps_lr", lr),
            ("gdpp/lr", pp_lr),
            ("gdpp/gamma", gamma),
            ("gd/steps_loss", icl.mse(algorithms["gd"](*evals[:3]), evals.yq)),
            ("gdpp/loss", icl.mse(algorithms["gdpp"](*evals[:3]), evals.yq)),
        ):
            summary[key].append(value)
    algorithms.update(ridge=icl.ridge(config.ridge), ols=icl.ols())
    summary.update(
        {
            "gd/lr": summary["gd/steps_lr"][0],
            "gd/loss": summary["gd/steps_loss"][0],
            "ridge/loss": icl.mse(algorithms["ridge"](*evals[:3]), evals.yq),
            "ols/loss": icl.mse(algorithms["ols"](*evals[:3]), evals.yq),
            "zero/loss": icl.mse(torch.zeros_like(evals.yq), evals.yq),
        }
    )
    return summary, algorithms


def _gd_plus_plus(lr: float, gamma: float, steps: int) -> icl.baselines.Predictor:
    return lambda xs, ys, xq: icl.gd_plus_plus(xs, ys, xq, lr, gamma, steps)


def _fold_model_options(config: IclConfig) -> None:
    """`model.<keyword>` for a keyword the config has an option of (dim, layers, width, ...) sets
    that option, which the data and the probes read too, within the option's bounds; given both
    ways, it is refused."""
    defaults, by_name = option_defaults(IclConfig), {f.name: f for f in dataclasses.fields(IclConfig)}
    for name in [k for k in config.model_options if k in defaults]:
        if getattr(config, name) != defaults[name]:
            raise ValueError(f"{name}= and model.{name}= both given; give model.{name} only")
        options = dict(config.model_options)
        check_bounds(by_name[name], options[name])  # as the flat option's: model.heads=0 divided by zero
        object.__setattr__(config, name, options.pop(name))
        object.__setattr__(config, "model_options", options)


def model_options(config: IclConfig, generator: torch.Generator | None, gd_lr: float | None) -> dict:
    """The keywords of `config.model`'s factory: each from the config's option of that name, but for
    the run's own (the seed's `generator`, a keyword only code passes, and lsa_gd's `lr`, GD's
    line-searched η, not Adam's `lr`), and the `model.<keyword>` ones given."""
    own = {"generator": generator, "lr": gd_lr}
    options = {
        name: own[name] if name in own else getattr(config, name)
        for name in icl.MODELS.keywords(config.model)
        if name not in _FACTORY_DEFAULTS and (name in own or hasattr(config, name))
    }
    return options | config.model_options


def _build_model(config: IclConfig, generator: torch.Generator, gd_lr: float) -> torch.nn.Module:
    """The model `config.model` of `icl.MODELS` with its options (`model_options`)."""
    return icl.make_model(config.model, **model_options(config, generator, gd_lr))


def _attention_weights(
    config: IclConfig, model: icl.LinearSelfAttention, gd_lr: float
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(title, W_KQ, W_PV) summed over heads, (D, D) each: the one-step GD construction with
    η = `gd_lr`, then each layer of the (CPU) `model`."""
    construction = icl.lsa_gd(config.dim, 1, gd_lr, config.context)
    layers = [("GD construction", construction.w_kq[0], construction.w_pv[0])]
    layers += [(f"layer {i + 1}", kq, pv) for i, (kq, pv) in enumerate(zip(model.w_kq, model.w_pv))]
    return [(title, kq.detach().sum(0).numpy(), pv.detach().sum(0).numpy()) for title, kq, pv in layers]


def _compare(
    config: IclConfig,
    model,
    algorithms: dict,
    fresh: icl.TaskDistribution,
    evals: icl.Prompts,
    generator: torch.Generator,
) -> dict:
    """Alignment with GD++, SPD / ILWD against each algorithm, probe R² per layer, error vs
    context length (GD's η line-searched per N), and OOD scaling."""
    out = _prefixed("gdpp/", icl.alignment(model, algorithms["gdpp"], evals))
    probe_prompts = icl.Prompts(*(t[:_PROBE_PROMPTS] for t in evals))
    device = evals.xs.device
    probe_inputs = fresh.sample_inputs(len(probe_prompts.xs), 2 * config.dim, generator)  # (B, 2d, d)
    probe_inputs = probe_inputs.to(device)
    implied = icl.implied_weights(model, probe_prompts, probe_inputs)
    for name, algorithm in algorithms.items():
        out[f"spd/{name}"] = icl.spd(model, algorithm, evals)
        out[f"ilwd/{name}"] = icl.ilwd(implied, icl.implied_weights(algorithm, probe_prompts, probe_inputs))
    with torch.no_grad():
        states = model.query_states(*probe_prompts[:3])
    xty = torch.einsum("bnd,bn->bd", probe_prompts.xs, probe_prompts.ys)
    out["probe/r2_xty"] = [icl.probe_r2(s, xty) for s in states]
    out["probe/r2_w"] = [icl.probe_r2(s, implied) for s in states]

    def loss_of(predict):
        return lambda prompts: icl.mse(predict(*prompts[:3]).detach(), prompts.yq)

    contexts = list(range(1, config.context + 1))
    batches = [fresh.sample(config.eval_tasks, generator, context=n).to(device) for n in contexts]
    curves = icl.sweep(
        {
            "model": loss_of(model),
            "gd": lambda prompts: icl.fit_gd(prompts)[1],
            "ridge": loss_of(algorithms["ridge"]),
            "ols": loss_of(algorithms["ols"]),
        },
        batches,
    )
    out["context/n"] = contexts
    out.update(_prefixed("context/", curves))
    reference = algorithms["gd"]
    metrics = {
        "model": loss_of(model),
        "gd": loss_of(reference),
        "ols": loss_of(algorithms["ols"]),
        "model_cos": lambda prompts: icl.alignment(model, reference, prompts)["model_cos"],
    }
    out["ood/scale"] = list(config.ood_scales)
    for kind in ("x", "w"):
        scaled = [evals.scaled(**{f"{kind}_scale": a}) for a in config.ood_scales]
        out.update(_prefixed(f"ood/{kind}/", icl.sweep(metrics, scaled)))
    return out


def _prefixed(prefix: str, metrics: dict) -> dict:
    return {prefix + key: value for key, value in metrics.items()}


SCENARIO = Scenario(
    name="icl",
    help="in-context linear regression: LSA / GPT vs gradient descent, ridge, least squares",
    config=IclConfig,
    run=run,
    headline=("eval/loss", "gd/loss", "ridge/loss", "ols/loss", "gd/lr"),
    check=check,
    sizes=("batch", "eval_tasks", "context", "dim", "layers", "width"),
    checkpoint=Checkpoint(budget="steps", also=("eval_every", "plots")),
    data_parallel=True,
    demo=(
        {
            "label": "lsa-1-vs-gd",
            "model": "lsa",
            "steps": 600,
            "batch": 1024,
            "eval_tasks": 2048,
            "eval_every": 100,
        },
    ),
)
