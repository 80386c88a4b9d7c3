"""Scenario `game`: play a differentiable game with one dynamics; compare measured and predicted rates.

    python -m playground run game game=bilinear dynamics=extragradient lr=0.3 steps=200
    python -m playground run game game=dirac_gan dynamics=sim_gd batch=256   # 256 seeded starts

Logs step 0 (the initial point) and every step after it; the summary has the final values, the
measured rate next to the predicted one (spectral radius of the update at the equilibrium, or at
the dynamics' own fixed point near it), and the eigenvalues of the field's Jacobian. The measured
rate is fitted over the steps above the floating-point floor (`games.distance_floor`); where it
or the predicted one cannot be had, it is null and `rate/measured_note` or `rate/predicted_note`
says why. Plots: trajectories over the vector field (2-parameter games), `dist` on a log scale,
and the eigenvalues in the complex plane. A batch (`batch` > 1) runs on `device`; a single run
stays on the CPU, where a game of a few parameters is fastest. Before anything is written
(`check`), a run is refused whose trajectory and working set do not fit in memory, and one whose
dynamics is not defined at its start or at the equilibrium (Stackelberg's, where the follower's
Hessian is singular).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar

import torch
from matplotlib.figure import Figure

import games
from games.curvature import DENSE_UP_TO
from games.play import MAX_LOGGED_PARAMS
from playground.resources import check_memory
from playground.rundir import diverged
from playground.scenario import RunConfig, Scenario, keywords, option

ANALYSED_UP_TO = 1024  # parameters: eigenvalues of d × d Jacobians cost O(d³), about a second here
_STEP_OVERHEAD = 4096  # bytes a stored step costs beside its numbers (a tensor and its storage)
_LOGGED_NUMBER = 64  # bytes a logged number costs while its row is built: a Python float, its text


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
        # unknown name, lr <= 0, an option it does not take or outside its range
        _as_given(make_dynamics, self, "dynamics", self.dynamics_options)
        dim = _as_given(make_game, self, "game", self.game_options).dim
        if self.init and len(self.init) != dim:
            raise ValueError(f"init has {len(self.init)} values; game {self.game!r} has {dim} parameters")
        if self.init and self.batch > 1:
            raise ValueError(f"init={self.init} fixes one start; batch={self.batch} draws its own")


def _as_given(make, config: GameConfig, namespace: str, options: dict):
    """make(config), with a factory's refusal of its option `keyword=value: ...` (the form of
    `registration.ranges`) named as the user gave it, `namespace.keyword=value: ...`."""
    try:
        return make(config)
    except ValueError as error:
        text = str(error)
        ours = re.match(r"(\w+)=\S+: ", text)
        raise ValueError(f"{namespace}.{text}" if ours and ours[1] in options else text) from None


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


def check(config: GameConfig, device: torch.device) -> None:
    """What the run needs beyond its options, before anything is written: memory for its
    trajectory and working set, and a dynamics defined at its start and where its rate is
    predicted (ValueError otherwise)."""
    game, dynamics = make_game(config), make_dynamics(config)
    _check_memory(config, game, device)
    if dynamics.check is None:
        return
    starts = initial_points(config, game)
    checks = [("the start", starts[0] if config.batch == 1 else starts)]
    if game.equilibrium is not None:
        fixed = (
            game.equilibrium if dynamics.fixed_point is None else dynamics.fixed_point(game, game.equilibrium)
        )
        if fixed is not None:
            checks.append(("the point where its rate is predicted", fixed))
    for where, points in checks:
        try:
            dynamics.check(game, points)
        except ValueError as error:
            raise ValueError(f"dynamics={config.dynamics} at {where}: {error}") from None


def _check_memory(config: GameConfig, game: games.Game, device: torch.device) -> None:
    """The stored trajectory, (steps + 1) × batch × d numbers in the game's dtype, kept as a list,
    stacked and (for the plots) copied; one update's working set per start (a few vectors, and
    the dense Hessians of a second-order dynamics on a small game); one logged row; the analysis's
    d × d Jacobians. A batch computes on `device`, its copies for the summary on the CPU."""
    size, d, batch = game.dtype.itemsize, game.dim, config.batch
    trajectory = (config.steps + 1) * (batch * d * size + _STEP_OVERHEAD)
    update = batch * size * (16 * d + ((game.n_players + 4) * d * d if d <= DENSE_UP_TO else 0))
    logged = game.n_players + 2 + (d if d <= MAX_LOGGED_PARAMS else 0)
    host = batch * _LOGGED_NUMBER * logged + (16 * size * d * d if d <= ANALYSED_UP_TO else 0)
    if batch == 1:
        setting, lower = f"steps={config.steps} on a game of {d} parameters", "steps"
    else:
        setting, lower = f"batch={batch} × steps={config.steps} on a game of {d} parameters", "batch or steps"
    cpu = torch.device("cpu")
    if batch == 1 or device.type == "cpu":
        check_memory(3 * trajectory + update + host, cpu, setting, lower)
    else:
        check_memory(2 * trajectory + update, device, setting, lower)
        check_memory(2 * trajectory + host, cpu, setting, lower)


def run(config: GameConfig, run) -> dict:
    game, dynamics = make_game(config), make_dynamics(config)
    summary = {}
    if dynamics.fixed_point is not None and game.equilibrium is not None:
        # e.g. a Stackelberg run converges to the leader's optimum along the follower's best
        # response, a LOLA run to where its shaping balances ξ, not to the Nash point: distances
        # and rates are measured to, and predicted at, its own fixed point
        game = dataclasses.replace(game, equilibrium=dynamics.fixed_point(game, game.equilibrium))
        if game.equilibrium is None:
            summary["rate/measured_note"] = summary["rate/predicted_note"] = (
                f"Newton's method from the game's equilibrium found no fixed point of "
                f"{config.dynamics} near it: no distance to measure, no point to predict at"
            )
    z0 = initial_points(config, game)
    progress = lambda steps, total=None, desc=None: run.progress(steps, total=total, desc=config.dynamics)
    if config.batch == 1:
        path, played = _play_one(game, dynamics, z0[0], config.steps, run, progress)
    else:
        path, played = _play_many(game, dynamics, z0, config.steps, run, progress, run.device)
    summary.update(played)
    analysis, field_eigs, update_eigs = _analyse(game, dynamics, path)
    summary.update(analysis)
    if config.plots:
        _plot(run, game, config, path, field_eigs, update_eigs)
    return summary


def _analyse(game, dynamics, path) -> tuple[dict, torch.Tensor | None, torch.Tensor | None]:
    """The eigenvalues of the field's Jacobian (at the equilibrium, else at the first run's final
    point), and at the equilibrium the update's and the predicted rate; left out, with the reason,
    for a game of more than ANALYSED_UP_TO parameters."""
    summary = {"eig/at": "equilibrium" if game.equilibrium is not None else "final point"}
    if game.dim > ANALYSED_UP_TO:
        too_large = (
            f"the game has {game.dim} parameters; the dense analysis (eigenvalues of d × d "
            f"Jacobians, O(d³)) runs on games of at most {ANALYSED_UP_TO}"
        )
        summary.update({"eig/field": None, "eig/note": too_large})
        if game.equilibrium is not None:
            summary.update({"rate/predicted": None, "rate/predicted_note": too_large, "eig/update": None})
        return summary, None, None
    at = game.equilibrium if game.equilibrium is not None else path[-1].reshape(-1, game.dim)[0]
    field_eigs, update_eigs = games.eigenvalues(games.field_jacobian(game, at)), None
    summary["eig/field"] = _pairs(field_eigs)
    if game.equilibrium is not None:
        update_eigs = games.eigenvalues(games.update_jacobian(game, dynamics, game.equilibrium))
        rate = games.predicted_rate(game, dynamics)  # per update: the period's root
        summary.update({"rate/predicted": rate, "eig/update": _pairs(update_eigs)})
    return summary, field_eigs, update_eigs


def _measured(dist: list[float], period: int, floor: float) -> tuple[float | None, str | None]:
    """The measured rate of one run, and a note where the floating-point floor cut its fit short
    or there was too little to fit (the rate then None)."""
    rate = games.measured_rate(dist, period=period, floor=floor)
    kept = games.above_floor(dist, floor)
    where = f"the distance fell below the floating-point floor {floor:.3g} (√eps·‖z*‖) at step {kept}"
    if rate is not None:
        return rate, (f"fitted over the steps before {kept}: {where}" if kept < len(dist) else None)
    fitted = f"{max(kept - 1, 0)} step(s) to fit, fewer than one period of the dynamics ({period})"
    return None, f"{where}, leaving {fitted}" if kept < len(dist) else fitted


def _play_one(game, dynamics, z0, steps, run, progress):
    trajectory = games.play(game, dynamics, z0, steps, log=run.log, progress=progress)
    summary = {**trajectory.last_finite, "steps_run": len(trajectory.params) - 1}
    if game.equilibrium is not None:
        dist = game.distance(trajectory.params).tolist()
        rate, note = _measured(dist, dynamics.period, games.distance_floor(game))
        summary["rate/measured"] = rate
        if note is not None:
            summary["rate/measured_note"] = note
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
        dist = game.distance(params)  # (T + 1, B), in the game's dtype
        floor = games.distance_floor(game)
        fits = [_measured(dist[:, k].tolist(), dynamics.period, floor) for k in range(dist.shape[1])]
        rates = [rate for rate, _ in fits]
        per_run.update({"dist/final": dist[-1].tolist(), "rate/measured": rates})  # null: none fitted
        if finite.any():
            summary["dist/final_median"] = dist[-1][finite].median().item()
            fitted = [rate for rate, ok in zip(rates, finite) if ok and rate is not None]
            median = torch.tensor(fitted, dtype=torch.float64).median().item() if fitted else None
            summary["rate/measured"] = median
            notes = [note for (_, note), ok in zip(fits, finite) if ok and note is not None]
            if notes:
                summary["rate/measured_note"] = f"{len(notes)} of {int(finite.sum())} finite runs: {notes[0]}"
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
    if field_eigs is None:  # not analysed: too many parameters
        return
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
    # both followers' Hessians are singular at the equilibrium: Stackelberg needs its regulariser
    regularised = {"stackelberg": {"dynamics.regularization": 1.0}}
    return tuple(
        {
            "label": f"{name}-{dynamics}",
            "game": name,
            "dynamics": dynamics,
            **options,
            **regularised.get(dynamics, {}),
        }
        for name, options in settings.items()
        for dynamics in games.DYNAMICS
    )


SCENARIO = Scenario(
    name="game",
    help="play a differentiable game; measured vs predicted rate",
    config=GameConfig,
    run=run,
    headline=("rate/measured", "rate/predicted", "dist", "dist/final_median"),
    demo=_demo(),
    check=check,
)
