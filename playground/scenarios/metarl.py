"""Scenario `metarl`: MAML-RL (Finn et al. 2017) on one of our gymnasium task families.

    python -m playground run metarl env=Navigation2D iterations=100 meta_batch=20 episodes=20

Meta-trains a Gaussian MLP policy (one policy-gradient inner step, TRPO or PPO outer step), trains
a multi-task ("pretrained") policy with the same budget and no inner step, then evaluates on fresh
tasks the return before and after 1..eval_steps adaptation steps of MAML, the pretrained policy and
a randomly initialised one (the paper's figure 5), with 95% confidence intervals over tasks.
Every setting of MAML-RL (`metalearn.rl.MAMLRLSettings`) is an option of the same name and default.
Plots (`_metarl_plots`): `adaptation` (return vs steps), `training` (meta-training curves), and on
Navigation2D `trajectories` (the adapted policy's paths towards several goals).

Summary, as in `maml`: `eval/pre_adapt_return` before adaptation, `eval/post_adapt_return` after
one step (the paper's headline), `eval/post_eval_steps_return` after `eval_steps` steps, each with
its `_ci95`, all of the MAML policy; `eval/<policy>_returns` holds each policy's curve. The
measured recipe and its numbers are in the README (`metarl`); `tools/reproduce.py metarl` reruns it.
A checkpoint is written every `checkpoint_every` meta-training iterations; `resume=RUN_DIR`
continues from it (the multi-task training and the evaluation run again) and gives the numbers of
an uninterrupted run.
On a GPU (`device`) the policies, the advantages and the meta-gradient (TRPO or PPO) run there;
the environments stay on the CPU, which sees each step's actions (`metalearn.rl.rollouts`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

import metalearn.rl as rl
from metalearn.stats import mean_ci95
from playground.resources import check_memory
from playground.rundir import CHECKPOINT, check_resume, diverged
from playground.scenario import Checkpoint, RunConfig, Scenario, option
from playground.scenarios import _metarl_plots as plots

_SETTINGS = rl.MAMLRLSettings()  # MAML-RL's defaults (the paper's 2D navigation) live there, once


@dataclass(frozen=True)
class MetaRLConfig(RunConfig):
    env: str = option("Navigation2D", f"task family: {', '.join(rl.ENVIRONMENTS)}")
    iterations: int = option(100, "meta-training iterations (meta-batches)", min=0)
    meta_batch: int = option(20, "tasks per meta-batch (>= 1)")
    episodes: int = option(20, "episodes per task for each policy-gradient step and evaluation (>= 2)")
    inner_lr: float = option(_SETTINGS.inner_lr, "inner policy-gradient step size alpha (> 0)")
    inner_steps: int = option(_SETTINGS.inner_steps, "adaptation steps in meta-training", min=0)
    first_order: bool = option(_SETTINGS.first_order, "drop second-order terms of the meta-gradient")
    outer: str = option(_SETTINGS.outer, f"outer optimiser: {', '.join(rl.OUTER)}")
    gamma: float = option(_SETTINGS.gamma, "discount factor, in (0, 1]")
    gae_lambda: float = option(_SETTINGS.gae_lambda, "GAE lambda, in [0, 1]")
    max_kl: float = option(_SETTINGS.max_kl, "trpo: trust-region size delta (> 0)")
    cg_iters: int = option(_SETTINGS.cg_iters, "trpo: conjugate-gradient steps for F⁻¹g", min=1)
    cg_damping: float = option(_SETTINGS.cg_damping, "trpo: damping of the Fisher-vector products", min=0)
    fisher_subsample: float = option(
        _SETTINGS.fisher_subsample,
        "trpo: fraction of the outer episodes (at least one) in the Fisher-vector products",
        min=0,
        max=1,
    )
    ppo_epochs: int = option(_SETTINGS.ppo_epochs, "ppo: epochs per meta-batch", min=1)
    ppo_clip: float = option(_SETTINGS.ppo_clip, "ppo: ratio clip epsilon (> 0)")
    ppo_lr: float = option(_SETTINGS.ppo_lr, "ppo: Adam learning rate (> 0)")
    hidden: tuple[int, ...] = option((100, 100), "policy MLP hidden sizes")
    pretrain_iterations: int | None = option(
        None, "multi-task policy iterations (default: iterations; 0 skips)", min=0
    )
    eval_tasks: int = option(40, "fresh tasks for evaluation", min=2)
    eval_steps: int = option(3, "adaptation steps evaluated", min=1)
    threads: int = option(1, "torch CPU threads (1 is fastest on shared cores)", min=1)
    checkpoint_every: int = option(10, "meta-training iterations between checkpoints (0: none)", min=0)
    resume: str | None = option(None, f"run directory whose {CHECKPOINT} to continue from")

    def __post_init__(self):
        rl.env_spec(self.env)  # an unknown name: one line naming the valid ones
        rl.outer_factory(self.outer)
        for name, low in (("meta_batch", 1), ("episodes", 2)):
            if getattr(self, name) < low:
                raise ValueError(f"{name}={getattr(self, name)} must be >= {low}")
        for name in ("inner_lr", "max_kl", "ppo_clip", "ppo_lr"):  # strictly positive, which `min` cannot say
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(
                f"gamma={self.gamma}, gae_lambda={self.gae_lambda}: need 0 < gamma <= 1, 0 <= gae_lambda <= 1"
            )
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden={self.hidden} must be one or more sizes >= 1")
        check_resume(self.resume, "metarl")

    def settings(self, inner_steps: int) -> rl.MAMLRLSettings:
        """MAML-RL's settings, each from the option of its name, with `inner_steps` adaptation
        steps (0: the multi-task policy)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(rl.MAMLRLSettings)}
        return rl.MAMLRLSettings(**{**values, "inner_steps": inner_steps})


_ENV_BYTES = 4_000  # Python's objects of one copy of an environment in a vector env (measured: 3.3 kB)


def check(config: MetaRLConfig, device: torch.device) -> None:
    """The memory a run needs on its device (`memory`)."""
    check_memory(
        memory(config),
        device,
        f"meta_batch={config.meta_batch}, episodes={config.episodes}, eval_tasks={config.eval_tasks}, "
        f"hidden={','.join(map(str, config.hidden))}",
        "meta_batch, episodes, eval_tasks or hidden",
    )


def memory(config: MetaRLConfig) -> int:
    """Bytes a run needs at its peak, roughly (float32): the episodes of T tasks × `episodes` of
    H steps (observation, action, reward, mask, advantage and value at each) with what the
    policy's forward pass keeps at each step (three floats per hidden unit, two per action
    dimension), once per inner step and for the query episodes (T = `meta_batch`, the meta-gradient
    through them), or once per evaluated step (T = `eval_tasks`); each task's adapted policy, and
    the copies of the environment a vector env of T·episodes holds."""
    env = rl.make_env(config.env)
    obs, act = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    horizon = rl.env_spec(config.env).max_episode_steps
    per_step = obs + 2 * act + 4 + 3 * sum(config.hidden)
    layers = [obs, *config.hidden, act]
    weights = sum((n_in + 1) * n_out for n_in, n_out in zip(layers, layers[1:])) + act

    def phase(tasks: int, policies: int) -> int:
        episodes = tasks * config.episodes
        return policies * tasks * (config.episodes * horizon * per_step + weights) * 4 + episodes * _ENV_BYTES

    training = phase(config.meta_batch, config.inner_steps + 1)
    evaluation = phase(config.eval_tasks, config.eval_steps + 1)
    return max(training, evaluation) + 3 * 4 * 4 * weights  # three policies, with gradient and moments


def run(config: MetaRLConfig, run) -> dict:
    env_id = rl.env_id(config.env)
    task_source = rl.make_env(config.env).unwrapped
    task_source.reset(seed=config.seed)
    sampler = rl.Sampler(env_id, config.meta_batch, config.episodes)
    # Policies are initialised on the CPU, then moved; the environments always run on the CPU.
    make_policy = lambda: rl.GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, config.hidden).to(run.device)
    generator = torch.Generator().manual_seed(config.seed)
    random_policy, maml_policy, pretrained = make_policy(), make_policy(), make_policy()
    pretrained.load_state_dict(maml_policy.state_dict())  # same start for both trainings
    maml_rows: list[dict] = []
    pretrain_rows: list[dict] = []  # with the multi-task training's own iteration as "step"

    def log(step: int, metrics: dict) -> None:
        maml_rows.append({"step": step, **metrics})
        run.log(step, metrics)

    def log_pretrain(step: int, metrics: dict) -> None:
        row = {"pretrain/return": metrics["train/post_adapt_return"], "pretrain/kl": metrics["loss/kl"]}
        pretrain_rows.append({"step": step, **row})
        run.log(config.iterations + step, row)  # logged after meta-training's iterations

    start, state = run.checkpoint.load() or (0, None)
    if state is not None:
        maml_policy.load_state_dict(state["policy"])
        generator.set_state(state["generator"])
        task_source.np_random.bit_generator.state = state["tasks"]
        maml_rows.extend(state["rows"])

    def checkpoint(iteration: int, last_finite: dict, optimizer_state: dict | None) -> None:
        saved = {
            "policy": maml_policy.state_dict(),
            "generator": generator.get_state(),
            "tasks": task_source.np_random.bit_generator.state,
            "rows": maml_rows,
            "last_finite": last_finite,
            "optimizer": optimizer_state,
        }
        run.checkpoint.save(iteration, saved)

    result = rl.meta_train(
        maml_policy,
        sampler,
        task_source.sample_tasks,
        config.iterations,
        config.settings(config.inner_steps),
        generator,
        log,
        run.progress,
        checkpoint=checkpoint,
        checkpoint_every=config.checkpoint_every,
        start=start,
        last_finite=None if state is None else state["last_finite"],
        optimizer_state=None if state is None else state["optimizer"],
    )
    if result.diverged_step is not None:
        return diverged(result.diverged_step, result.last_finite)
    pre_iterations = config.iterations if config.pretrain_iterations is None else config.pretrain_iterations
    pre_result = rl.meta_train(
        pretrained,
        sampler,
        task_source.sample_tasks,
        pre_iterations,
        config.settings(0),
        generator,
        log_pretrain,
        run.progress,
    )
    torch.save({k: v.cpu() for k, v in maml_policy.state_dict().items()}, run.dir / "policy.pt")

    tasks = task_source.sample_tasks(config.eval_tasks)
    policies = {"maml": maml_policy, "pretrained": pretrained, "random": random_policy}
    curves, adapted_episodes = _evaluate(config, env_id, policies, tasks, generator)
    paths = _paths(adapted_episodes) if env_id == rl.env_id("Navigation2D") else None
    goals = None if paths is None else [tasks[i]["goal"] for i in range(len(paths))]
    plots.save_all(run, config.env, curves, maml_rows, pretrain_rows, paths, goals)
    means, cis = curves["maml"]
    summary = {
        **result.last_finite,
        "pretrain/diverged": pre_result.diverged_step is not None,
        "eval/pre_adapt_return": means[0],
        "eval/pre_adapt_return_ci95": cis[0],
        "eval/post_adapt_return": means[1],
        "eval/post_adapt_return_ci95": cis[1],
        "eval/post_eval_steps_return": means[-1],
        "eval/post_eval_steps_return_ci95": cis[-1],
    }
    for name, (means, cis) in curves.items():
        summary[f"eval/{name}_returns"] = means
        summary[f"eval/{name}_returns_ci95"] = cis
    return summary


def _evaluate(
    config: MetaRLConfig, env_id: str, policies: dict, tasks: list[dict], generator: torch.Generator
) -> tuple[dict[str, plots.Curve], rl.Episodes]:
    """Each policy's mean return over `tasks` and its 95% CI after 0..eval_steps steps, and the
    episodes of the first policy after one step."""
    sampler = rl.Sampler(env_id, config.eval_tasks, config.episodes)
    curves, adapted_episodes = {}, None
    for name, policy in policies.items():
        returns, episodes = rl.adaptation_curve(
            policy,
            sampler,
            tasks,
            config.eval_steps,
            config.inner_lr,
            config.gamma,
            config.gae_lambda,
            generator,
        )
        mean, ci = mean_ci95(returns, dim=1)  # over the tasks of (steps + 1, tasks)
        curves[name] = (mean.tolist(), ci.tolist())
        if adapted_episodes is None:
            adapted_episodes = rl.Episodes(*(t.cpu() for t in episodes[1]))  # for the figure
    return curves, adapted_episodes


def _paths(episodes: rl.Episodes, shown: int = 6) -> list[np.ndarray]:
    """The first episode of each of the first `shown` tasks: positions before each step, (length, 2)."""
    lengths = episodes.mask[:shown, 0].sum(-1).int().tolist()
    return [episodes.observations[task, 0, :length].numpy() for task, length in enumerate(lengths)]


SCENARIO = Scenario(
    name="metarl",
    help="MAML-RL on gymnasium task families: adapt a policy in one policy-gradient step",
    config=MetaRLConfig,
    run=run,
    headline=("eval/pre_adapt_return", "eval/post_adapt_return", "eval/post_eval_steps_return"),
    check=check,
    sizes=("meta_batch", "episodes", "eval_tasks", "hidden"),
    checkpoint=Checkpoint(budget="iterations"),
    demo=(
        {
            "label": "nav2d",
            "env": "Navigation2D",
            "iterations": 10,
            "meta_batch": 10,
            "episodes": 10,
            "eval_tasks": 10,
        },
    ),
)
