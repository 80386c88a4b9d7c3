"""The registries of games and dynamics (see `registration`): adding one is a factory and one
line here; a user's own is `module:factory`, from the user's module."""

from __future__ import annotations

from typing import Any

from games import adjusted, dynamics, gan, zoo
from games.dynamics import Dynamics
from games.game import Game
from registration import Registry
from registration.ranges import check_number

GAMES = Registry("game", returns=Game)
GAMES.register("bilinear", zoo.bilinear)
GAMES.register("quadratic", zoo.quadratic)
GAMES.register("matching_pennies", zoo.matching_pennies)
GAMES.register("rock_paper_scissors", zoo.rock_paper_scissors)
GAMES.register("dirac_gan", zoo.dirac_gan)
GAMES.register("tandem", zoo.tandem)
GAMES.register("duopoly", zoo.duopoly)
GAMES.register("ipd", zoo.ipd)
GAMES.register("gaussian_mixture_gan", gan.gaussian_mixture_gan)

DYNAMICS = Registry("dynamics", returns=Dynamics, given=("lr",))
DYNAMICS.register("sim_gd", dynamics.sim_gd)
DYNAMICS.register("alt_gd", dynamics.alt_gd)
DYNAMICS.register("extragradient", dynamics.extragradient)
DYNAMICS.register("optimistic", dynamics.optimistic)
DYNAMICS.register("consensus", adjusted.consensus)
DYNAMICS.register("hamiltonian", adjusted.hamiltonian)
DYNAMICS.register("momentum", dynamics.momentum)
DYNAMICS.register("sga", adjusted.sga)
DYNAMICS.register("lola", adjusted.lola)
DYNAMICS.register("sos", adjusted.sos)
DYNAMICS.register("cgd", adjusted.cgd)
DYNAMICS.register("stackelberg", adjusted.stackelberg)
DYNAMICS.register("lookahead", dynamics.lookahead)

make_game = GAMES.make


def make_dynamics(spec: str, lr: float, **options: Any) -> Dynamics:
    """Build the dynamics `spec` (a name or `module:factory`) with learning rate `lr` > 0 (finite);
    each factory checks its own options' ranges (`registration.ranges`)."""
    DYNAMICS.factory(spec)  # an unknown name first
    check_number("lr", lr, "the learning rate η scales every step; η <= 0 does not descend", above=0)
    return DYNAMICS.make(spec, lr, **options)
