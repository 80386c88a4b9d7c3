"""Scenario `metarl`: MAML-RL (Finn et al. 2017) on one of our gymnasium task families.

    python -m playground run metarl env=Navigation2D iterations=100 meta_batch=20 episodes=20

Meta-trains a Gaussian MLP policy (one policy-gradient inner step, TRPO or PPO outer step), trains
a multi-task ("pretrained") policy with the same budget and no inner step, then evaluates on fresh
tasks the return before and after 1..eval_steps adaptation steps of MAML, the pretrained policy and
a randomly initialised one (the paper's figure 5), with 95% confidence intervals over tasks.
Plots: `adaptation` (return vs steps), `training` (meta-training curves), and on Navigation2D
`trajectories` (the adapted policy's paths towards several goals).

Measured recipe (2 shared CPU cores under load ~8, 2026-11-24; 980 s wall for seed 0, 1159 s
for seed 1):

    python -m playground run metarl env=Navigation2D iterations=80 seed=0

Return on 40 fresh tasks, 20 episodes each, horizon 100, mean +- 95% CI over tasks, seed 0 / 1.
After one step MAML reaches -18.4 +- 1.8 / -16.9 +- 1.4 (ANIL paper, Table 2: MAML -20.3 +- 3.2),
from -42.7 +- 4.8 / -40.3 +- 4.1 before adaptation; the multi-task policy -29.9 +- 4.3 / -27.0 +- 3.7
(before: -40.9 / -38.2); a random initialisation -91.3 +- 3.7 / -84.5 +- 2.7. After two or three
steps the multi-task policy catches up with MAML (-13.3 / -12.0 at three steps, MAML -17.8 / -17.6).
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import torch
from matplotlib.figure import Figure

import metalearn.rl as rl
from playground.scenario import RunConfig, Scenario, option


@dataclass(frozen=True)
class MetaRLConfig(RunConfig):
    env: str = option("Navigation2D", f"task family: {', '.join(rl.ENVIRONMENTS)}")
    iterations: int = option(100, "meta-training iterations (meta-batches)")
    meta_batch: int = option(20, "tasks per meta-batch")
    episodes: int = option(20, "episodes per task for each policy-gradient step and evaluation")
    inner_lr: float = option(0.1, "inner policy-gradient step size alpha")
    inner_steps: int = option(1, "adaptation steps in meta-training")
    first_order: bool = option(False, "drop second-order terms of the meta-gradient")
    outer: str = option("trpo", f"outer optimiser: {', '.join(rl.OUTER)}")
    gamma: float = option(0.99, "discount factor, in (0, 1]")
    gae_lambda: float = option(1.0, "GAE lambda, in [0, 1]")
    max_kl: float = option(0.01, "trpo: trust-region size delta")
    ppo_epochs: int = option(5, "ppo: epochs per meta-batch")
    ppo_clip: float = option(0.2, "ppo: ratio clip epsilon")
    ppo_lr: float = option(3e-4, "ppo: Adam learning rate")
    hidden: tuple[int, ...] = option((100, 100), "policy MLP hidden sizes")
    pretrain_iterations: int | None = option(None, "multi-task policy iterations (default: iterations; 0 skips)")
    eval_tasks: int = option(40, "fresh tasks for evaluation")
    eval_steps: int = option(3, "adaptation steps evaluated")
    threads: int = option(1, "torch CPU threads (1 is fastest on shared cores)")

    def __post_init__(self):
        rl.env_id(self.env)
        if self.outer not in rl.OUTER:
            raise ValueError(f"outer={self.outer!r} unknown; valid: {', '.join(rl.OUTER)}")
        for name, low in (("iterations", 0), ("meta_batch", 1), ("episodes", 2), ("inner_steps", 0),
                          ("ppo_epochs", 1), ("eval_tasks", 2), ("eval_steps", 1), ("threads", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"{name}={getattr(self, name)} must be >= {low}")
        for name in ("inner_lr", "max_kl", "ppo_clip", "ppo_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError(f"gamma={self.gamma}, gae_lambda={self.gae_lambda}: "
                             "need 0 < gamma <= 1, 0 <= gae_lambda <= 1")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden={self.hidden} must be one or more sizes >= 1")
        if self.pretrain_iterations is not None and self.pretrain_iterations < 0:
            raise ValueError(f"pretrain_iterations={self.pretrain_iterations} must be >= 0")


def _settings(config: MetaRLConfig, inner_steps: int) -> rl.MAMLRLSettings:
    return rl.MAMLRLSettings(
        inner_lr=config.inner_lr, inner_steps=inner_steps, first_order=config.first_order,
        gamma=config.gamma, gae_lambda=config.gae_lambda, outer=config.outer, max_kl=config.max_kl,
        ppo_epochs=config.ppo_epochs, ppo_clip=config.ppo_clip, ppo_lr=config.ppo_lr)


def run(config: MetaRLConfig, run) -> dict:
    env_id = rl.env_id(config.env)
    task_source = gymnasium.make(env_id).unwrapped
    task_source.reset(seed=config.seed)
    sampler = rl.Sampler(env_id, config.meta_batch, config.episodes)
    make_policy = lambda: rl.GaussianMLPPolicy(sampler.obs_dim, sampler.act_dim, config.hidden)
    generator = torch.Generator().manual_seed(config.seed)
    random_policy, maml_policy, pretrained = make_policy(), make_policy(), make_policy()
    pretrained.load_state_dict(maml_policy.state_dict())  # same start for both trainings
    progress = lambda it, total, desc: run.progress(it, total=total, desc=desc)
    history: list[tuple[int, dict]] = []

    def log(step: int, metrics: dict) -> None:
        history.append((step, metrics))
        run.log(step, metrics)

    result = rl.meta_train(maml_policy, sampler, task_source.sample_tasks, config.iterations,
                           _settings(config, config.inner_steps), generator, log, progress)
    if result["diverged"]:
        return result
    pre_iterations = config.iterations if config.pretrain_iterations is None else config.pretrain_iterations
    pre_result = rl.meta_train(pretrained, sampler, task_source.sample_tasks, pre_iterations, _settings(config, 0),
                               generator, lambda step, m: log(config.iterations + step, {
                                   "pretrain/return": m["train/post_adapt_return"], "pretrain/kl": m["loss/kl"]}),
                               progress)
    torch.save(maml_policy.state_dict(), run.dir / "policy.pt")

    tasks = task_source.sample_tasks(config.eval_tasks)
    policies = {"maml": maml_policy, "pretrained": pretrained, "random": random_policy}
    curves, adapted_episodes = _evaluate(config, env_id, policies, tasks, generator)
    _plot_adaptation(run, curves, config)
    _plot_training(run, history, config)
    if env_id == rl.env_id("Navigation2D"):
        _plot_trajectories(run, adapted_episodes, tasks)
    summary = {**{k: v for k, v in result.items() if k != "diverged"},
               "pretrain/diverged": pre_result["diverged"],
               "eval/pre_adapt_return": curves["maml"][0][0], "eval/pre_adapt_return_ci95": curves["maml"][0][1],
               "eval/post_adapt_return": curves["maml"][1][0], "eval/post_adapt_return_ci95": curves["maml"][1][1]}
    for name, curve in curves.items():
        summary[f"eval/{name}_returns"] = [m for m, _ in curve]
        summary[f"eval/{name}_returns_ci95"] = [c for _, c in curve]
    return summary


def _evaluate(config: MetaRLConfig, env_id: str, policies: dict, tasks: list[dict],
              generator: torch.Generator) -> tuple[dict, rl.Episodes]:
    """Each policy's (mean, ci95) return after 0..eval_steps steps on `tasks`, and the episodes of
    the first policy after one step."""
    sampler = rl.Sampler(env_id, config.eval_tasks, config.episodes)
    curves, adapted_episodes = {}, None
    for name, policy in policies.items():
        returns, episodes = rl.adaptation_curve(policy, sampler, tasks, config.eval_steps, config.inner_lr,
                                                config.gamma, config.gae_lambda, generator)
        curves[name] = [rl.mean_ci95(r) for r in returns]
        if adapted_episodes is None:
            adapted_episodes = episodes[1]
    return curves, adapted_episodes


def _plot_adaptation(run, curves: dict, config: MetaRLConfig) -> None:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        means, cis = zip(*curve)
        ax.errorbar(range(len(means)), means, yerr=cis, marker="o", capsize=3, label=name)
    ax.set(xlabel="adaptation steps", ylabel="average return", title=f"{config.env}: fresh tasks, 95% CI",
           xticks=range(config.eval_steps + 1))
    ax.legend()
    run.save_figure(fig, "adaptation")


def _plot_training(run, history: list[tuple[int, dict]], config: MetaRLConfig) -> None:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for key, label, offset in (("train/pre_adapt_return", "MAML before adaptation", 0),
                               ("train/post_adapt_return", "MAML after adaptation", 0),
                               ("pretrain/return", "multi-task policy", config.iterations)):
        points = [(step - offset, metrics[key]) for step, metrics in history if key in metrics]
        if points:
            ax.plot(*zip(*points), label=label)
    ax.set(xlabel="iteration", ylabel="average return", title=f"{config.env}: meta-training")
    ax.legend()
    run.save_figure(fig, "training")


def _plot_trajectories(run, episodes: rl.Episodes, tasks: list[dict], shown: int = 6) -> None:
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    for task in range(min(shown, len(tasks))):
        length = int(episodes.mask[task, 0].sum())
        path = episodes.observations[task, 0, :length]  # positions before each step
        line, = ax.plot(path[:, 0], path[:, 1], lw=1)
        ax.plot(*tasks[task]["goal"], marker="*", ms=12, color=line.get_color())
    ax.plot(0, 0, "ko", ms=4)
    ax.set(xlim=(-0.6, 0.6), ylim=(-0.6, 0.6), aspect="equal",
           title="after one adaptation step (stars: goals)")
    run.save_figure(fig, "trajectories")


SCENARIO = Scenario(
    name="metarl",
    help="MAML-RL on gymnasium task families: adapt a policy in one policy-gradient step",
    config=MetaRLConfig,
    run=run,
    demo=({"label": "nav2d", "env": "Navigation2D", "iterations": 10, "meta_batch": 10, "episodes": 10,
           "eval_tasks": 10},),
)
