"""Differentiable games: the game zoo, the dynamics that play them, and their analysis."""

from games.adjusted import (
    cgd,
    consensus,
    hamiltonian,
    lola,
    sga,
    sos,
    stackelberg,
    stackelberg_equilibrium,
    stackelberg_field,
)
from games.analysis import (
    eigenvalues,
    field_jacobian,
    measured_rate,
    potential_hamiltonian_split,
    predicted_rate,
    spectral_radius,
    update_jacobian,
)
from games.curvature import Curvature, dense_curvature, matrix_free_curvature
from games.dynamics import Dynamics, alt_gd, extragradient, lookahead, momentum, optimistic, sim_gd
from games.game import Game
from games.gan import gaussian_mixture_gan
from games.play import BatchTrajectory, Trajectory, observe, play, play_batch
from games.registry import (
    DYNAMICS,
    GAMES,
    make_dynamics,
    make_game,
)
from games.zoo import (
    bilinear,
    dirac_gan,
    duopoly,
    ipd,
    matching_pennies,
    quadratic,
    rock_paper_scissors,
    tandem,
)

__all__ = [
    "Game",
    "Dynamics",
    "Trajectory",
    "BatchTrajectory",
    "Curvature",
    "dense_curvature",
    "matrix_free_curvature",
    "GAMES",
    "DYNAMICS",
    "make_game",
    "make_dynamics",
    "bilinear",
    "quadratic",
    "matching_pennies",
    "rock_paper_scissors",
    "dirac_gan",
    "tandem",
    "ipd",
    "duopoly",
    "gaussian_mixture_gan",
    "sim_gd",
    "alt_gd",
    "extragradient",
    "optimistic",
    "consensus",
    "hamiltonian",
    "momentum",
    "lookahead",
    "sga",
    "lola",
    "sos",
    "cgd",
    "stackelberg",
    "stackelberg_field",
    "stackelberg_equilibrium",
    "play",
    "play_batch",
    "observe",
    "field_jacobian",
    "eigenvalues",
    "potential_hamiltonian_split",
    "update_jacobian",
    "spectral_radius",
    "predicted_rate",
    "measured_rate",
]
