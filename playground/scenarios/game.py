"""Scenario `game`: play a differentiable game with one dynamics; compare measured and predicted rates.

    python -m playground run game game=bilinear dynamics=extragradient lr=0.3 steps=200
    python -m playground run game game=dirac_gan dynamics=sim_gd batch=256   # 256 seeded starts

Logs step 0 (the initial point) and every step after it; the summary has the final values, the
measured rate next to the predicted one (spectral radius of the update at the equilibrium), and the
eigenvalues of the field's Jacobian. Plots: trajectories over the vector field (2-parameter games),
`dist` on a log scale, and the eigenvalues in the complex plane. A batch (`batch` > 1) runs on
`device`; a single run stays on the CPU, where a game of a few parameters is fastest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from matplotlib.figure import Figure

import games
from games.play import MAX_LOGGED_PARAMS
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, keywords, option


@dataclass(frozen=True)
class GameConfig(RunConfig):
    game: str = option("bilinear", f"game: {', '.join(games.GAMES)}, or module:factory")
    dynamics: str = option("sim_gd", f"dynamics: {', '.join(games.DYNAMICS)}, or module:factory")
    lr: float = option(0.1, "learning rate η (> 0)")
    steps: int = option(200, "number of updates", min=1)
    init: tuple[float, ...] = option((), "initial joint parameters (default: a draw from seed)")
    batch: int = option(1, "number of initial points run at once, seeded seed, seed+1, ...", min=1)
    game_options: dict = keywords(games.GAMES)
    dynamics_options: dict = keywords(games.DYNAMICS)
    plots: bool = option(True, "write the PNG plots (off for large sweeps)")

    # the flat names of factory keywords, kept for one release beside `game.<kw>=` and `dynamics.<kw>=`
    renamed: ClassVar[dict[str, str]] = {
        "dim": "game.dim",
        "game_seed": "game.seed",
        "r1": "game.r1",
        "gamma": "dynamics.gamma",
        "beta": "dynamics.beta",
        "alternating": "dynamics.alternating",
        "lookahead": "dynamics.lookahead",
    }

    def __post_init__(self):
        make_dynamics(self)  # unknown name, lr <= 0, an option it does not take
        dim = make_game(self).dim
        if self.init and len(self.init) != dim:
            raise ValueError(f"init has {len(self.init)} values; game {self.game!r} has {dim} parameters")
        if self.init and self.batch > 1:
            raise ValueError(f"init={self.init} fixes one start; batch={self.batch} draws its own")


def make_game(config: GameConfig) -> games.Game:
    return games.make_game(config.game, **config.game_options)


def make_dynamics(config: GameConfig) -> games.Dynamics:
    return games.make_dynamics(config.dynamics, config.lr, **config.dynamics_options)


def initial_points(config: GameConfig, game: games.Game) -> torch.Tensor:  # (batch, d)
    if config.init:
        return torch.tensor(config.init, dtype=game.dtype)[None]
    return torch.stack(
        [game.sample_init(torch.Generator().manual_seed(config.seed + k)) for k in range(config.batch)]
    )


def run(config: GameConfig, run) -> dict:
    game, dynamics = make_game(config), make_dynamics(config)
    if dynamics.fixed_point is not None and game.equilibrium is not None:
        # e.g. a Stackelberg run converges to the leader's optimum along the follower's best
        # response, not to the Nash point: distances and rates are measured to its own fixed point
        game = dataclasses.replace(game, equilibrium=dynamics.fixed_point(game, game.equilibrium))
    z0 = initial_points(config, game)
    progress = lambda steps, total=None, desc=None: run.progress(steps, total=total, desc=config.dynamics)
    if config.batch == 1:
        path, summary = _play_one(game, dynamics, z0[0], config.steps, run, progress)
    else:
        path, summary = _play_many(game, dynamics, z0, config.steps, run, progress, run.device)
    at = game.equilibrium if game.equilibrium is not None else path[-1].reshape(-1, game.dim)[0]
    field_eigs = games.eigenvalues(games.field_jacobian(game, at))
    summary.update(
        {
            "eig/at": "equilibrium" if game.equilibrium is not None else "final point",
            "eig/field": _pairs(field_eigs),
        }
    )
    update_eigs = None
    if game.equilibrium is not None:
        update_eigs = games.eigenvalues(games.update_jacobian(game, dynamics, game.equilibrium))
        rate = games.predicted_rate(game, dynamics)  # per update: the period's root
        summary.update({"rate/predicted": rate, "eig/update": _pairs(update_eigs)})
    if config.plots:
        _plot(run, game, config, path, field_eigs, update_eigs)
    return summary


def _play_one(game, dynamics, z0, steps, run, progress):
    trajectory = games.play(game, dynamics, z0, steps, log=run.log, progress=progress)
    summary = {**trajectory.last_finite, "steps_run": len(trajectory.params) - 1}
    if game.equilibrium is not None:
        summary["rate/measured"] = games.measured_rate(
            game.distance(trajectory.params).tolist(), period=dynamics.period
        )
    if trajectory.diverged_step is not None:
        summary.update(diverged(trajectory.diverged_step, trajectory.last_finite))
    return trajectory.params, summary


def _play_many(game, dynamics, z0, steps, run, progress, device):
    """The batch runs on `device`; its results come back to the CPU for the summary and plots."""

    def log(step, metrics):
        if "params" in metrics and metrics["params"].numel() > MAX_LOGGED_PARAMS:
            metrics = {k: v for k, v in metrics.items() if k != "params"}
        run.log(step, metrics)

    trajectory = games.play_batch(game, dynamics, z0, steps, log=log, progress=progress, device=device)
    params = trajectory.params.cpu()  # (T + 1, B, d)
    finite = torch.tensor([step is None for step in trajectory.diverged_step])
    summary = {
        "batch": z0.shape[0],
        "diverged_count": int((~finite).sum()),
        "diverged": bool((~finite).all()),
    }
    per_run = {"diverged_step": trajectory.diverged_step}  # null for a run that stayed finite
    if game.equilibrium is not None:
        dist = game.distance(params)  # (T + 1, B)
        rates = torch.tensor(
            [games.measured_rate(dist[:, k].tolist(), period=dynamics.period) for k in range(dist.shape[1])]
        )
        per_run.update({"dist/final": dist[-1].tolist(), "rate/measured": rates.tolist()})
        if finite.any():
            summary["dist/final_median"] = dist[-1][finite].median().item()
            summary["rate/measured"] = rates[finite].median().item()
    run.save_json("batch", per_run)
    return params, summary


def _pairs(values: torch.Tensor) -> list[list[float]]:
    return [[v.real.item(), v.imag.item()] for v in values]


def _plot(run, game, config, path, field_eigs, update_eigs) -> None:
    """path: (T + 1, d) for one run or (T + 1, B, d) for a batch."""
    runs = path.reshape(path.shape[0], -1, game.dim)  # (T + 1, B, d)
    if game.equilibrium is not None:
        fig = Figure(figsize=(5, 3.5))
        ax = fig.add_subplot()
        dist = game.distance(runs).clamp_min(1e-300)  # (T + 1, B)
        ax.semilogy(dist.numpy(), color="C0", alpha=1.0 if dist.shape[1] == 1 else 0.2, lw=1)
        ax.set(xlabel="step", ylabel="distance to equilibrium", title=f"{config.game}: {config.dynamics}")
        run.save_figure(fig, "dist")
    if game.dim == 2:
        fig = _vector_field(game, runs, config)
        if fig is not None:
            run.save_figure(fig, "trajectory")
    fig = Figure(figsize=(8, 3.5), layout="constrained")
    panels = [(field_eigs, "field Jacobian"), (update_eigs, "update map")]
    for k, (values, title) in enumerate(panels if update_eigs is not None else panels[:1]):
        ax = fig.add_subplot(1, 2, k + 1)
        if not torch.isfinite(values.abs()).all():  # the Jacobian there was not finite
            ax.set_title(f"eigenvalues: {title}\n(not finite)")
            ax.set_axis_off()
            continue
        ax.scatter(values.real.numpy(), values.imag.numpy(), s=15)
        ax.axhline(0, color="grey", lw=0.5), ax.axvline(0, color="grey", lw=0.5)
        if k == 1:
            circle = torch.linspace(0, 2 * torch.pi, 200)
            ax.plot(circle.cos().numpy(), circle.sin().numpy(), "k--", lw=0.5)
        lim = 1.1 * max(values.abs().max().item(), 1.0)
        ax.set(
            xlabel="Re",
            ylabel="Im",
            title=f"eigenvalues: {title}",
            aspect="equal",
            xlim=(-lim, lim),
            ylim=(-lim, lim),
        )
    run.save_figure(fig, "eigenvalues")


def _vector_field(game, runs, config) -> Figure | None:
    """−ξ on a grid over the trajectories; points of a diverging run beyond 1000 times the
    starting scale (at most 1e100, where plotting arithmetic still holds) are left out, so the
    picture stays readable. None when no point is left."""
    limit = min(1e3 * max(1.0, runs[0].abs().max().item()), 1e100)
    runs = runs.where((runs.abs() <= limit).all(dim=-1, keepdim=True), torch.nan)
    shown = runs[~runs.isnan().any(dim=-1)]  # (N, 2)
    if len(shown) == 0:
        return None
    low, high = shown.min(dim=0).values, shown.max(dim=0).values
    pad = 0.1 * (high - low).clamp_min(1e-3)
    axes = [torch.linspace(a, b, 21, dtype=game.dtype) for a, b in zip(low - pad, high + pad)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="xy"), dim=-1)  # (21, 21, 2)
    field = -torch.func.vmap(game.field)(grid.reshape(-1, 2)).reshape(grid.shape)
    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.quiver(
        grid[..., 0].numpy(),
        grid[..., 1].numpy(),
        field[..., 0].numpy(),
        field[..., 1].numpy(),
        color="grey",
        alpha=0.6,
    )
    for k in range(runs.shape[1]):
        ax.plot(runs[:, k, 0].numpy(), runs[:, k, 1].numpy(), lw=1, alpha=1.0 if runs.shape[1] == 1 else 0.3)
    ax.set(xlabel=game.players[0], ylabel=game.players[1], title=f"{config.game}: {config.dynamics}")
    return fig


def _demo() -> tuple[dict, ...]:
    settings = {
        "bilinear": {"lr": 0.2, "steps": 120, "init": (1.0, 1.0)},
        "dirac_gan": {"lr": 0.2, "steps": 120, "init": (1.0, 1.0)},
    }
    return tuple(
        {"label": f"{name}-{dynamics}", "game": name, "dynamics": dynamics, **options}
        for name, options in settings.items()
        for dynamics in games.DYNAMICS
    )


SCENARIO = Scenario(
    name="game",
    help="play a differentiable game; measured vs predicted rate",
    config=GameConfig,
    run=run,
    demo=_demo(),
)
