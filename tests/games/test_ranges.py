"""Every option of every built-in game and dynamics has a valid range, checked by its factory: a
value outside it (one that would make the method a no-op, another method, or nothing defined,
and nan or inf) is a one-line ValueError `keyword=value: why; valid: range`."""

import math
import re

import pytest

import games

NAN, INF = math.nan, math.inf

# (registry, factory, keyword): values outside the keyword's range
REFUSED = {
    ("game", "bilinear", "dim"): [0, -1, 4097, 10**12, 2.0, True],
    ("game", "bilinear", "seed"): [-1, 2**63, 1.5],
    ("game", "quadratic", "dim"): [0],
    ("game", "quadratic", "seed"): [-1],
    ("game", "quadratic", "mu"): [0.0, -1.0, NAN, INF],  # μ = 0 is the bilinear game
    ("game", "dirac_gan", "r1"): [-0.1, NAN, INF],
    ("game", "ipd", "gamma"): [0.0, 1.0, -0.5, NAN],
    ("game", "gaussian_mixture_gan", "seed"): [-1],
    ("game", "gaussian_mixture_gan", "hidden"): [0, 4097, 10**12],
    ("game", "gaussian_mixture_gan", "samples"): [0, 2**20 + 1],
    ("game", "gaussian_mixture_gan", "latent"): [0, 4097],
    ("dynamics", "consensus", "gamma"): [0.0, -1.0, NAN, INF],  # γ = 0 is sim_gd, γ < 0 anti-consensus
    ("dynamics", "sga", "gamma"): [0.0, -1.0, NAN],
    ("dynamics", "momentum", "beta"): [0.0, 1.0, -1.0, 2.0, NAN],
    ("dynamics", "lookahead", "k"): [0, 1, -3, 2.0],
    ("dynamics", "lookahead", "alpha"): [0.0, 1.0, 1.5, NAN],
    ("dynamics", "lola", "lookahead"): [0.0, -0.5, NAN, INF],  # α = 0 is sim_gd
    ("dynamics", "sos", "lookahead"): [0.0, -0.5],
    ("dynamics", "sos", "a"): [5.0, 0.0, 1.0, NAN],  # a, b in (0, 1): Letcher et al. 2019
    ("dynamics", "sos", "b"): [-1.0, 0.0, 1.0, INF],
    ("dynamics", "cgd", "cg_iters"): [0, -1, 2.5],
    ("dynamics", "stackelberg", "timescale"): [0.0, -1.0, INF],
    ("dynamics", "stackelberg", "regularization"): [-1e-3, NAN, INF],
}
# keywords with no range beyond their type: a switch, and a name checked against its own list
UNBOUNDED = {("dynamics", "momentum", "alternating"), ("dynamics", "lookahead", "base")}
# values at the edge of each range, accepted
ACCEPTED = [
    ("game", "bilinear", {"dim": 1, "seed": 2**63 - 1}),
    ("game", "quadratic", {"mu": 1e-12}),
    ("game", "dirac_gan", {"r1": 0.0}),
    ("game", "ipd", {"gamma": 1e-9}),
    ("game", "gaussian_mixture_gan", {"hidden": 1, "samples": 1, "latent": 1, "seed": 0}),
    ("dynamics", "consensus", {"gamma": 1e-12}),
    ("dynamics", "sga", {"gamma": 1e-12}),
    ("dynamics", "momentum", {"beta": -0.999}),
    ("dynamics", "momentum", {"beta": 0.999, "alternating": True}),
    ("dynamics", "lookahead", {"k": 2, "alpha": 0.999}),
    ("dynamics", "lola", {"lookahead": 1e-12}),
    ("dynamics", "sos", {"lookahead": 1e-12, "a": 1e-12, "b": 0.999}),
    ("dynamics", "cgd", {"cg_iters": 1}),
    ("dynamics", "stackelberg", {"timescale": 1e-12, "regularization": 0.0}),
]


def make(kind, name, **options):
    return games.make_game(name, **options) if kind == "game" else games.make_dynamics(name, 0.1, **options)


def test_every_option_of_every_factory_has_its_range_here():
    """A new option needs its range in its factory, and its refused values in REFUSED."""
    options = {
        (kind, name, keyword)
        for kind, registry in (("game", games.GAMES), ("dynamics", games.DYNAMICS))
        for name in registry
        for keyword in registry.options(name)
    }
    assert options == set(REFUSED) | UNBOUNDED


@pytest.mark.parametrize(
    "kind,name,keyword,value", [(*key, value) for key, values in REFUSED.items() for value in values]
)
def test_a_value_outside_the_range_is_refused_with_the_reason(kind, name, keyword, value):
    pattern = rf"^{keyword}={re.escape(repr(value))}: .+; valid: (a|an) .+$"
    with pytest.raises(ValueError, match=pattern):
        make(kind, name, **{keyword: value})


@pytest.mark.parametrize("kind,name,options", ACCEPTED)
def test_values_at_the_edge_of_the_range_are_accepted(kind, name, options):
    make(kind, name, **options)


@pytest.mark.parametrize(
    "kind,name,options,message",
    [
        (
            "dynamics",
            "cgd",
            {"cg_iters": 0},
            "cg_iters=0: CGD needs at least one conjugate-gradient iteration",
        ),
        ("dynamics", "consensus", {"gamma": 0.0}, "γ = 0 is simultaneous GD, γ < 0 ascends it"),
        (
            "dynamics",
            "sga",
            {"gamma": 0.0},
            "gamma=0.0: SGA adjusts ξ by γ·sign(·)Aᵀξ; γ = 0 is simultaneous GD, γ < 0 flips the sign",
        ),
        ("dynamics", "sos", {"a": 5.0, "b": -1.0}, "a=5.0: SOS bounds the shaping"),
        ("dynamics", "sos", {"b": -1.0}, "b=-1.0: SOS turns the shaping off where ‖ξ‖ < b, in (0, 1)"),
        ("dynamics", "lola", {"lookahead": 0.0}, "α = 0 is simultaneous GD"),
        ("dynamics", "momentum", {"beta": 0.0}, "β = 0 is plain GD, dynamics=sim_gd"),
        ("dynamics", "lookahead", {"alpha": 1.0}, "α = 1 is the base method"),
        ("game", "quadratic", {"mu": 0.0}, "μ = 0 is the bilinear game"),
        ("game", "bilinear", {"dim": 4097}, "valid: an integer >= 1 and <= 4096"),
    ],
)
def test_the_message_names_the_reason(kind, name, options, message):
    with pytest.raises(ValueError) as error:
        make(kind, name, **options)
    assert message in str(error.value) and "\n" not in str(error.value)
