"""The registries of games and dynamics, and building one by name with checked options.

Adding a game or a dynamics is one factory and one line here. An option the chosen factory does
not take is an error naming the options it does take, never silently ignored.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from games import adjusted, dynamics, gan, zoo
from games.dynamics import Dynamics
from games.game import Game

GAMES: dict[str, Callable[..., Game]] = {
    "bilinear": zoo.bilinear,
    "quadratic": zoo.quadratic,
    "matching_pennies": zoo.matching_pennies,
    "rock_paper_scissors": zoo.rock_paper_scissors,
    "dirac_gan": zoo.dirac_gan,
    "tandem": zoo.tandem,
    "duopoly": zoo.duopoly,
    "ipd": zoo.ipd,
    "gaussian_mixture_gan": gan.gaussian_mixture_gan,
}

DYNAMICS: dict[str, Callable[..., Dynamics]] = {
    "sim_gd": dynamics.sim_gd,
    "alt_gd": dynamics.alt_gd,
    "extragradient": dynamics.extragradient,
    "optimistic": dynamics.optimistic,
    "consensus": adjusted.consensus,
    "hamiltonian": adjusted.hamiltonian,
    "momentum": dynamics.momentum,
    "sga": adjusted.sga,
    "lola": adjusted.lola,
    "sos": adjusted.sos,
    "cgd": adjusted.cgd,
    "stackelberg": adjusted.stackelberg,
}


def option_names(factory: Callable) -> list[str]:
    """The keyword options a factory takes (for dynamics, all but the learning rate)."""
    return [name for name in inspect.signature(factory).parameters if name != "lr"]


def game_factory(spec: str) -> Callable[..., Game]:
    """A built-in game's factory by name, or a user's as `module:factory`: a Python function
    defined in that module (not a builtin, a class or a name it imported), called with the game
    options; it must return a `Game`."""
    if spec in GAMES:
        return GAMES[spec]
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"unknown game {spec!r}; valid: {', '.join(GAMES)} or module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot load game {spec!r}: {error}") from None
    factory = getattr(module, attribute, None)
    if not inspect.isfunction(factory) or factory.__module__ != module.__name__:
        raise ValueError(
            f"game {spec!r} is not a function defined in {module_name}; valid: "
            f"module:factory naming a Python function that returns a games.Game"
        )
    return factory


def make_game(spec: str, **options: Any) -> Game:
    """Build the game `spec` (a name or `module:factory`) with its options."""
    factory = game_factory(spec)
    game = factory(**_checked(f"game {spec!r}", factory, options))
    if not isinstance(game, Game):
        raise ValueError(
            f"game {spec!r} returned {type(game).__name__}; valid: a function returning a games.Game"
        )
    return game


def dynamics_factory(name: str) -> Callable[..., Dynamics]:
    """A dynamics' factory by name."""
    if name not in DYNAMICS:
        raise ValueError(f"unknown dynamics {name!r}; valid: {', '.join(DYNAMICS)}")
    return DYNAMICS[name]


def make_dynamics(name: str, lr: float, **options: Any) -> Dynamics:
    """Build the dynamics `name` with learning rate `lr` and its options."""
    dynamics_factory(name)
    if not lr > 0:
        raise ValueError(f"lr={lr} must be > 0")
    return DYNAMICS[name](lr, **_checked(f"dynamics {name!r}", DYNAMICS[name], options))


def _checked(what: str, factory: Callable, options: dict[str, Any]) -> dict[str, Any]:
    valid = option_names(factory)
    for key in options:
        if key not in valid:
            raise ValueError(f"{what} takes no option {key!r}; valid: {', '.join(valid) or 'none'}")
    missing = [
        name
        for name, p in inspect.signature(factory).parameters.items()
        if name != "lr"
        and name not in options
        and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if missing:
        raise ValueError(f"{what} needs option(s) {', '.join(missing)} that have no default")
    return options
