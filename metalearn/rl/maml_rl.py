"""MAML for reinforcement learning (Finn et al. 2017, section 5.3 and appendix).

Inner loop, per task i: theta'_i = theta - alpha grad L_i(theta), with the REINFORCE surrogate
L_i(theta) = -(1/|D_i|) sum_(s,a) log pi_theta(a|s) A(s,a) on episodes D_i of pi_theta, A from GAE
against a fitted linear baseline. Outer loop: maximise
J(theta) = mean_i E_(pi_theta'_i(theta))[A] on fresh episodes of each adapted policy, through the
inner step, by one of the outer optimisers in `OUTER`: TRPO (as in the paper) or a PPO-style
clipped objective (Schulman et al. 2017).
With `inner_steps = 0` the same loop trains a multi-task ("pretrained") policy.

One deliberate shortcut: TRPO's Fisher-vector products use the KL with the inner gradient held
fixed, on a fifth of the outer episodes (`fisher_subsample`); the meta-gradient itself and the
line search's KL check go through the inner step exactly. The exact product differentiates three
times through the inner step and was most of an iteration's time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import grad, vmap

from metalearn.rl.advantages import advantages
from metalearn.rl.policy import (
    GaussianMLPPolicy,
    Params,
    gaussian_log_prob,
    log_prob,
    params_of,
    stack,
    task_action_distribution,
    task_log_prob,
)
from metalearn.rl.rollouts import Episodes, Sampler
from metalearn.rl.trpo import trpo_step
from reporting import History, Log, Progress, no_log, no_progress


@dataclass(frozen=True)
class MAMLRLSettings:
    """Hyperparameters of MAML-RL; defaults are the paper's 2D navigation settings."""

    inner_lr: float = 0.1  # alpha, the policy-gradient step size of adaptation
    inner_steps: int = 1  # adaptation steps in training (0: multi-task pretraining)
    first_order: bool = False  # drop the second-order terms of the outer gradient
    gamma: float = 0.99  # discount
    gae_lambda: float = 1.0  # GAE lambda (1: reward to go minus baseline)
    outer: str = "trpo"  # the outer optimiser, a name in OUTER
    max_kl: float = 0.01  # TRPO trust region delta
    cg_iters: int = 10
    cg_damping: float = 1e-5
    fisher_subsample: float = 0.2  # fraction of outer episodes in TRPO's Fisher-vector products
    ppo_epochs: int = 5
    ppo_clip: float = 0.2
    ppo_lr: float = 3e-4


def reinforce_loss(
    policy: GaussianMLPPolicy, params: Params, obs: Tensor, actions: Tensor, adv: Tensor, mask: Tensor
) -> Tensor:
    """L(theta) = -sum m log pi_theta(a|s) A / sum m over one task's steps (Williams 1992)."""
    return -(log_prob(policy, params, obs, actions) * adv * mask).sum() / mask.sum()


def adapt(
    policy: GaussianMLPPolicy,
    params: Params,
    episodes: Episodes,
    adv: Tensor,
    inner_lr: float,
    first_order: bool = False,
) -> Params:
    """One policy-gradient step per task, all tasks at once: params with a leading task axis.

    The result stays differentiable with respect to `params` (second order) unless `first_order`.
    """
    task_grad = vmap(grad(partial(reinforce_loss, policy)))
    grads = task_grad(params, episodes.observations, episodes.actions, adv, episodes.mask)
    if first_order:
        grads = {name: g.detach() for name, g in grads.items()}
    return {name: p - inner_lr * grads[name] for name, p in params.items()}


def _masked_task_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over each task's steps, then over tasks: (T, E, H) -> ()."""
    return ((x * mask).sum((1, 2)) / mask.sum((1, 2))).mean()


def _gaussian_kl(mean_p: Tensor, std_p: Tensor, mean_q: Tensor, std_q: Tensor) -> Tensor:
    """KL(N(mean_p, std_p^2) || N(mean_q, std_q^2)) summed over the last (action) axis."""
    kl = torch.log(std_q / std_p) + (std_p**2 + (mean_p - mean_q) ** 2) / (2 * std_q**2) - 0.5
    return kl.sum(-1)


class MetaBatch:
    """One iteration's data: tasks, inner episodes per adaptation step, and outer episodes."""

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        sampler: Sampler,
        tasks: list[dict],
        settings: MAMLRLSettings,
        generator: torch.Generator,
    ):
        self.policy, self.settings = policy, settings
        self.inner: list[tuple[Episodes, Tensor]] = []
        params = stack({n: p.detach() for n, p in params_of(policy).items()}, len(tasks))
        for _ in range(settings.inner_steps):
            episodes = sampler.sample(policy, params, tasks, generator)
            adv = advantages(episodes, settings.gamma, settings.gae_lambda)
            self.inner.append((episodes, adv))
            params = adapt(policy, params, episodes, adv, settings.inner_lr, first_order=True)
        self.outer = sampler.sample(policy, params, tasks, generator)
        self.outer_adv = advantages(self.outer, settings.gamma, settings.gae_lambda)
        with torch.no_grad():
            self.old_mean, self.old_std = task_action_distribution(policy, params, self.outer.observations)
            self.old_log_prob = task_log_prob(policy, params, self.outer.observations, self.outer.actions)

    def adapted(self, first_order: bool | None = None) -> Params:
        """theta'_i(theta) for the policy's current theta, differentiable through adaptation."""
        s = self.settings
        first_order = s.first_order if first_order is None else first_order
        params = stack(params_of(self.policy), len(self.outer.mask))
        for episodes, adv in self.inner:
            params = adapt(self.policy, params, episodes, adv, s.inner_lr, first_order)
        return params

    def objective(self, clipped: bool = False) -> tuple[Tensor, Tensor]:
        """(surrogate, KL) at the current theta, both through the adaptation.

        surrogate = mean_i E[r A], r = pi_theta'_i(a|s) / pi_old'_i(a|s) (TRPO), or with
        `clipped` mean_i E[min(r A, clip(r, 1 - eps, 1 + eps) A)] (PPO, Schulman et al. 2017);
        KL = mean_i E_s KL(pi_old'_i(.|s) || pi_theta'_i(.|s)) over the outer episodes' states.
        """
        obs, actions, mask = self.outer.observations, self.outer.actions, self.outer.mask
        mean, std = task_action_distribution(self.policy, self.adapted(), obs)
        ratio = torch.exp(gaussian_log_prob(mean, std, actions) - self.old_log_prob)
        gain = ratio * self.outer_adv
        if clipped:
            eps = self.settings.ppo_clip
            gain = torch.minimum(gain, ratio.clamp(1 - eps, 1 + eps) * self.outer_adv)
        kl = _gaussian_kl(self.old_mean, self.old_std, mean, std)
        return _masked_task_mean(gain, mask), _masked_task_mean(kl, mask)

    def fisher_kl(self) -> Tensor:
        """The KL with the inner step's gradient held fixed, on a subsample of the outer states:
        its Hessian is TRPO's metric at a fraction of the cost (cf. rllab's subsampled CG)."""
        keep = max(1, round(self.outer.mask.shape[1] * self.settings.fisher_subsample))
        obs, mask = self.outer.observations[:, :keep], self.outer.mask[:, :keep]
        mean, std = task_action_distribution(self.policy, self.adapted(first_order=True), obs)
        kl = _gaussian_kl(self.old_mean[:, :keep], self.old_std[:, :keep], mean, std)
        return _masked_task_mean(kl, mask)


class OuterStep(NamedTuple):
    """An outer optimiser bound to a policy: called on a meta-batch, it updates the policy's
    parameters in place and returns the update's diagnostics. `optimizer`: the torch optimiser
    whose state carries from one meta-batch to the next (PPO's Adam), for checkpoints; None where
    no state does (TRPO)."""

    update: Callable[[MetaBatch], dict[str, float]]
    optimizer: torch.optim.Optimizer | None = None

    def __call__(self, batch: MetaBatch) -> dict[str, float]:
        return self.update(batch)


def trpo_outer(policy: GaussianMLPPolicy, settings: MAMLRLSettings) -> OuterStep:
    """The paper's outer optimiser: one TRPO step (Schulman et al. 2015) on the meta-objective
    per meta-batch, trust region `max_kl`, the metric inverted by `cg_iters` steps of CG."""
    params = list(policy.parameters())

    def step(batch: MetaBatch) -> dict[str, float]:
        stats = trpo_step(
            params, batch.objective, batch.fisher_kl, settings.max_kl, settings.cg_iters, settings.cg_damping
        )
        return {
            "loss/surrogate": stats.surrogate_after,
            "loss/kl": stats.kl,
            "loss/line_search_steps": stats.line_search_steps,
        }

    return OuterStep(step)


def ppo_outer(policy: GaussianMLPPolicy, settings: MAMLRLSettings) -> OuterStep:
    """`ppo_epochs` steps of Adam(`ppo_lr`) per meta-batch on the clipped meta-objective
    (Schulman et al. 2017); Adam's moments carry over from one meta-batch to the next."""
    optimizer = torch.optim.Adam(policy.parameters(), lr=settings.ppo_lr)

    def step(batch: MetaBatch) -> dict[str, float]:
        for _ in range(settings.ppo_epochs):
            optimizer.zero_grad()
            (-batch.objective(clipped=True)[0]).backward()
            optimizer.step()
        with torch.no_grad():
            surrogate, kl = batch.objective()
        return {"loss/surrogate": float(surrogate), "loss/kl": float(kl)}

    return OuterStep(step, optimizer)


#: The outer optimisers by name (`MAMLRLSettings.outer`).
OUTER: dict[str, Callable[[GaussianMLPPolicy, MAMLRLSettings], OuterStep]] = {
    "trpo": trpo_outer,
    "ppo": ppo_outer,
}


def outer_factory(name: str) -> Callable[[GaussianMLPPolicy, MAMLRLSettings], OuterStep]:
    """The outer optimiser `name`, one of `OUTER`."""
    if name not in OUTER:
        raise ValueError(f"outer={name!r} unknown; valid: {', '.join(OUTER)}")
    return OUTER[name]


def make_outer(policy: GaussianMLPPolicy, settings: MAMLRLSettings) -> OuterStep:
    """The outer optimiser `settings.outer`, bound to `policy`."""
    return outer_factory(settings.outer)(policy, settings)


class MetaTrainResult(NamedTuple):
    iterations: int  # iterations completed
    diverged_step: int | None  # the iteration whose metrics or parameters were not finite; None if none
    last_finite: dict[str, float]  # the metrics of the last completed iteration (all finite)
    history: History  # the rows this call logged (a resumed run's from `start` on)


def meta_train(
    policy: GaussianMLPPolicy,
    sampler: Sampler,
    sample_tasks: Callable[[int], list[dict]],
    iterations: int,
    settings: MAMLRLSettings,
    generator: torch.Generator,
    log: Log = no_log,
    progress: Progress = no_progress,
    checkpoint: Callable[[int, dict[str, float], dict | None], None] | None = None,
    checkpoint_every: int = 0,
    start: int = 0,
    last_finite: dict[str, float] | None = None,
    optimizer_state: dict | None = None,
) -> MetaTrainResult:
    """Meta-train `policy` in place for `iterations` meta-batches of `sampler.n_tasks` tasks.

    Logs per iteration the outer step's diagnostics and the mean return before and after
    adaptation. Stops, without logging it, at the first iteration whose metrics or parameters are
    not finite. Every `checkpoint_every` iterations calls `checkpoint(iterations done, last
    finite metrics, outer optimiser's state_dict or None)`; `start`, `last_finite` and
    `optimizer_state` continue from such a checkpoint: with the policy's weights and the
    generators' states restored, the run gives the numbers of an uninterrupted one.
    """
    outer_step = make_outer(policy, settings)
    if optimizer_state is not None:
        outer_step.optimizer.load_state_dict(optimizer_state)
    last = dict(last_finite or {})
    history = History(then=log)
    for step in progress(range(start, iterations), total=iterations - start, desc="meta-train"):
        batch = MetaBatch(policy, sampler, sample_tasks(sampler.n_tasks), settings, generator)
        metrics = outer_step(batch)
        pre = batch.inner[0][0] if batch.inner else batch.outer
        metrics["train/pre_adapt_return"] = float(pre.returns().mean())
        metrics["train/post_adapt_return"] = float(batch.outer.returns().mean())
        finite = all(math.isfinite(v) for v in metrics.values())
        if not finite or not all(torch.isfinite(p).all() for p in policy.parameters()):
            return MetaTrainResult(step, step, last, history)
        history(step, metrics)
        last = metrics
        if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            optimizer = outer_step.optimizer
            checkpoint(step + 1, last, None if optimizer is None else optimizer.state_dict())
    return MetaTrainResult(iterations, None, last, history)
