"""Playing a game: iterate a dynamics from one initial point, or from a batch of them at once.

Both loops hand each step's observations (losses, ‖ξ‖, distance to the equilibrium, parameters of
small games) to `log(step, metrics)`, step 0 being the initial point, and wrap their steps in
`progress` (see `reporting`). A run whose parameters or observations stop being finite has
diverged: that is a result, recorded as the step at which it happened (`diverged_step`, None for
a run that stayed finite), with the trajectory up to the last finite point.

A batch can run on another device (a GPU): games hold their constants (the matrix A of a bilinear
game, a GAN's data) wherever their factory made them, in closures we cannot reach, so while the
batch runs, tensors are created on the device and every tensor an operation reads from elsewhere
is first copied there (`_OnDevice`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.func import vmap
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from games.dynamics import Dynamics
from games.game import Game
from reporting import History, Log, Progress, no_log, no_progress

MAX_LOGGED_PARAMS = 16  # `params` is logged for games with at most this many parameters


class Trajectory(NamedTuple):
    params: Tensor  # (T + 1, d), up to the last finite point
    diverged_step: int | None  # the first step with a non-finite value, None if none
    last_finite: dict  # the observations at the last finite point, as numbers and lists
    history: History  # every step's observations as logged: `history["dist"]` is (steps, values)


class BatchTrajectory(NamedTuple):
    params: Tensor  # (T + 1, B, d); a diverged run stays at its last finite point
    divergence: Tensor  # (B,) on the run's device: the first non-finite step, −1 if none

    @property
    def diverged_step(self) -> list[int | None]:
        """Per run: the first step with a non-finite value, None if none."""
        return [None if step < 0 else step for step in self.divergence.tolist()]


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


def start(game: Game, z0: Tensor, batch: bool = False) -> Tensor:
    """The initial point z0, (d,) or with `batch` (B, d), in the game's dtype: the game's
    constants set the precision, so a float32 (or integer) start is converted, as a float64 one
    is for a float32 game. Any other shape, or a complex start, is refused in one line."""
    z0 = torch.as_tensor(z0)
    shape = f"(B, {game.dim})" if batch else f"({game.dim},)"
    if z0.ndim != 1 + batch or z0.shape[-1] != game.dim:
        raise ValueError(
            f"the start z0 has shape {tuple(z0.shape)}; valid: {shape}, the {game.dim} parameters "
            f"of game {game.name!r} ({', '.join(game.players)}) in one vector" + (" per run" if batch else "")
        )
    if z0.is_complex():
        raise ValueError(f"the start z0 is {z0.dtype}; valid: real numbers (the game is {game.dtype})")
    return z0.to(game.dtype)


def _finite(metrics: dict[str, Tensor]) -> Tensor:
    return torch.stack([torch.isfinite(v).all() for v in metrics.values()]).all()


def play(
    game: Game,
    dynamics: Dynamics,
    z0: Tensor,
    steps: int,
    log: Log = no_log,
    progress: Progress = no_progress,
) -> Trajectory:
    """Run `steps` updates of `dynamics` from z0 (d,); log floats (and `params` as a list). The
    start is taken in the game's dtype (`start`); one where the dynamics is not defined (its
    `check`) is refused (ValueError)."""
    z0 = start(game, z0)
    if dynamics.check is not None:
        dynamics.check(game, z0)
    history = History(then=log)
    z, state = z0, dynamics.init(game, z0)
    path, last = [z0], {}
    for step in progress(range(steps + 1), total=steps + 1, desc="play"):
        if step > 0:
            z, state = dynamics.update(game, z, state)
        metrics = observe(game, z)
        if not (torch.isfinite(z).all() and _finite(metrics)):
            return Trajectory(torch.stack(path), step, last, history)
        if step > 0:
            path.append(z)
        last = {k: v.tolist() for k, v in metrics.items()}
        history(step, last)
    return Trajectory(torch.stack(path), None, last, history)


def play_batch(
    game: Game,
    dynamics: Dynamics,
    z0: Tensor,
    steps: int,
    log: Log = no_log,
    progress: Progress = no_progress,
    device: torch.device | None = None,
) -> BatchTrajectory:
    """Run B initial points z0 (B, d) at once with `vmap`; log each metric as a (B, …) tensor.

    The same numbers as B calls of `play`, up to floating-point summation order. With a `device`
    other than the CPU the runs happen there, and the trajectory and metrics are tensors there.
    A start where the dynamics is not defined (its `check`) is refused (ValueError).
    """
    if device is None or torch.device(device).type == "cpu":
        return _play_batch(game, dynamics, z0, steps, log, progress)
    with _OnDevice(device):  # the game's constants copied there when used; new tensors made beside z
        return _play_batch(game, dynamics, z0.to(device), steps, log, progress)


def _play_batch(
    game: Game, dynamics: Dynamics, z0: Tensor, steps: int, log: Log, progress: Progress
) -> BatchTrajectory:
    z0 = start(game, z0, batch=True)
    if dynamics.check is not None:
        dynamics.check(game, z0)
    update = vmap(lambda z, state: dynamics.update(game, z, state))
    observe_all = vmap(lambda z: observe(game, z))
    z, state = z0, vmap(lambda z: dynamics.init(game, z))(z0)
    metrics = observe_all(z0)
    diverged = torch.full((z0.shape[0],), -1, dtype=torch.long, device=z0.device)
    path = []
    for step in progress(range(steps + 1), total=steps + 1, desc="play"):
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
        log(step, metrics)
    return BatchTrajectory(torch.stack(path), diverged)


def _select(keep: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Rows of `new` where keep (B,) holds, else rows of `old`."""
    return torch.where(keep.reshape(-1, *[1] * (new.dim() - 1)), new, old)


class _OnDevice(TorchFunctionMode):
    """While active, every tensor argument of a torch operation that is not on `device` is copied
    there first (a copy per use: a game's constants are a few hundred bytes at most)."""

    def __init__(self, device: torch.device):
        super().__init__()
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device

    def __torch_function__(self, func, types, args=(), kwargs=None):
        def move(value):
            elsewhere = isinstance(value, Tensor) and value.device != self.device
            return value.to(self.device) if elsewhere else value

        args, kwargs = tree_map(move, (args, kwargs or {}))
        return func(*args, **kwargs)
