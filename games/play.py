"""Playing a game: iterate a dynamics from one initial point, or from a batch of them at once.

Both loops hand each step's observations (losses, ‖ξ‖, distance to the equilibrium, parameters of
small games) to an optional `log(step, metrics)` callable, step 0 being the initial point. A run
whose parameters or observations stop being finite has diverged: that is a result, recorded as
the step at which it happened, with the trajectory up to the last finite point.
"""
from __future__ import annotations

from typing import Callable, Iterable, NamedTuple

import torch
from torch import Tensor
from torch.func import vmap
from torch.utils._pytree import tree_map

from games.dynamics import Dynamics
from games.game import Game

MAX_LOGGED_PARAMS = 16  # `params` is logged for games with at most this many parameters

Log = Callable[[int, dict], None]
Progress = Callable[[Iterable], Iterable]


class Trajectory(NamedTuple):
    params: Tensor  # (T + 1, d), up to the last finite point
    diverged_step: int | None  # the first step with a non-finite value, None if none


class BatchTrajectory(NamedTuple):
    params: Tensor  # (T + 1, B, d); a diverged run stays at its last finite point
    diverged_step: Tensor  # (B,) the first non-finite step, −1 for runs that stayed finite


def observe(game: Game, z: Tensor) -> dict[str, Tensor]:
    """Observations at z (d,): `loss/<player>`, `grad_norm`, `dist`, `params` (0-d or (d,))."""
    losses = game.losses(z)  # (n,)
    metrics = {f"loss/{name}": losses[i] for i, name in enumerate(game.players)}
    metrics["grad_norm"] = torch.linalg.vector_norm(game.field(z))
    if game.equilibrium is not None:
        metrics["dist"] = game.distance(z)
    if game.dim <= MAX_LOGGED_PARAMS:
        metrics["params"] = z
    return metrics


def _finite(metrics: dict[str, Tensor]) -> Tensor:
    return torch.stack([torch.isfinite(v).all() for v in metrics.values()]).all()


def play(game: Game, dynamics: Dynamics, z0: Tensor, steps: int, log: Log | None = None,
         progress: Progress = iter) -> Trajectory:
    """Run `steps` updates of `dynamics` from z0 (d,); log floats (and `params` as a list)."""
    z, state = z0, dynamics.init(game, z0)
    path = [z0]
    for step in progress(range(steps + 1)):
        if step > 0:
            z, state = dynamics.update(game, z, state)
        metrics = observe(game, z)
        if not (torch.isfinite(z).all() and _finite(metrics)):
            return Trajectory(torch.stack(path), step)
        if step > 0:
            path.append(z)
        if log is not None:
            log(step, {k: v.tolist() for k, v in metrics.items()})
    return Trajectory(torch.stack(path), None)


def play_batch(game: Game, dynamics: Dynamics, z0: Tensor, steps: int, log: Log | None = None,
               progress: Progress = iter) -> BatchTrajectory:
    """Run B initial points z0 (B, d) at once with `vmap`; log each metric as a (B, …) tensor.

    The same numbers as B calls of `play`, up to floating-point summation order."""
    update = vmap(lambda z, state: dynamics.update(game, z, state))
    observe_all = vmap(lambda z: observe(game, z))
    z, state = z0, vmap(lambda z: dynamics.init(game, z))(z0)
    metrics = observe_all(z0)
    diverged = torch.full((z0.shape[0],), -1, dtype=torch.long)
    path = []
    for step in progress(range(steps + 1)):
        if step > 0:
            new_z, new_state = update(z, state)
            new_metrics = observe_all(new_z)
            ok = torch.isfinite(new_z).all(dim=1) & vmap(_finite)(new_metrics)
            diverged = torch.where((diverged < 0) & ~ok, step, diverged)
            keep = diverged < 0
            z = _select(keep, new_z, z)
            state = tree_map(lambda new, old: _select(keep, new, old), new_state, state)
            metrics = {k: _select(keep, v, metrics[k]) for k, v in new_metrics.items()}
        path.append(z)
        if log is not None:
            log(step, metrics)
    return BatchTrajectory(torch.stack(path), diverged)


def _select(keep: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Rows of `new` where keep (B,) holds, else rows of `old`."""
    return torch.where(keep.reshape(-1, *[1] * (new.dim() - 1)), new, old)
