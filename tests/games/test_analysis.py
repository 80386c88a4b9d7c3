"""Predicted rates (spectral radius of the update map) against closed forms and measured runs."""

import math
import re
from typing import NamedTuple

import pytest
import torch
from torch import Tensor

import games

F64 = torch.float64


def test_update_jacobian_of_sim_gd_is_identity_minus_eta_h():
    game = games.bilinear(dim=2, seed=0)
    h = games.field_jacobian(game, game.equilibrium)
    torch.testing.assert_close(
        games.update_jacobian(game, games.sim_gd(0.3), game.equilibrium),
        torch.eye(4, dtype=F64) - 0.3 * h,
        rtol=0,
        atol=1e-15,
    )


def test_update_jacobian_of_a_method_with_memory_is_augmented():
    """Heavy ball: (z, z_prev) ↦ ((1 + β)z − ηξ(z) − βz_prev, z): [[(1 + β)I − ηH, −βI], [I, 0]]."""
    game = games.bilinear()
    h = games.field_jacobian(game, game.equilibrium)
    eye, zero = torch.eye(2, dtype=F64), torch.zeros(2, 2, dtype=F64)
    expected = torch.cat([torch.cat([0.7 * eye - 0.2 * h, 0.3 * eye], 1), torch.cat([eye, zero], 1)])
    found = games.update_jacobian(game, games.momentum(0.2, beta=-0.3), game.equilibrium)
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-15)


def test_simultaneous_gd_stability_condition_of_mescheder_et_al():
    """Converges iff η < 2 Re μ / |μ|² for every eigenvalue μ of H; Dirac-GAN with R1 r1 = 1 has
    μ = ½ (double), so the threshold is η = 4."""
    game = games.dirac_gan(r1=1.0)
    assert games.predicted_rate(game, games.sim_gd(3.9)) < 1 < games.predicted_rate(game, games.sim_gd(4.1))


def test_measured_rate_of_a_geometric_sequence():
    assert games.measured_rate([2.0 * 0.9**t for t in range(101)]) == pytest.approx(0.9, rel=1e-13)
    assert games.measured_rate([1.0, 0.0, 0.0]) == 0.0
    assert games.measured_rate([1.0]) is None


def test_measured_rate_of_a_periodic_sequence_takes_whole_periods():
    """d_t = 0.9^t, tripled on odd steps: over 5 steps the ratio is off, over 4 it is 0.9 exactly."""
    dist = [0.9**t * (3.0 if t % 2 else 1.0) for t in range(101)]
    assert games.measured_rate(dist, fraction=0.05, period=2) == pytest.approx(0.9, rel=1e-13)
    assert games.measured_rate(dist, fraction=0.05) == pytest.approx(0.9 / 3 ** (1 / 5), rel=1e-13)
    assert games.measured_rate(dist, fraction=0.001, period=2) == pytest.approx(0.9, rel=1e-13)
    assert games.measured_rate([1.0, 0.5], period=2) is None


@pytest.mark.parametrize(
    "game_name,dynamics_name,lr",
    [
        ("bilinear", "optimistic", 0.3),
        ("bilinear", "momentum", 0.5),
        ("bilinear", "lola", 0.3),
        ("dirac_gan", "extragradient", 0.5),
        ("dirac_gan", "consensus", 0.5),
        ("quadratic", "cgd", 0.3),
        ("quadratic", "alt_gd", 0.3),
        ("matching_pennies", "sga", 1.0),
        ("rock_paper_scissors", "sos", 0.5),
    ],
)
def test_predicted_and_measured_rates_agree(game_name, dynamics_name, lr):
    """Started close to the equilibrium, a run contracts (or expands) by ρ per step."""
    game = games.make_game(game_name)
    dynamics = games.make_dynamics(dynamics_name, lr)
    predicted = games.predicted_rate(game, dynamics)
    z0 = 1e-4 * game.sample_init(torch.Generator().manual_seed(0))
    dist = game.distance(games.play(game, dynamics, z0, 80).params)
    assert games.measured_rate(dist.tolist(), fraction=1.0) == pytest.approx(predicted, abs=5e-3)


def test_the_spectrum_of_a_non_finite_matrix_is_nan_not_a_hang():
    for bad in (float("inf"), float("nan")):
        matrix = torch.tensor([[1.0, bad], [0.0, 2.0]], dtype=torch.float64)
        values = games.eigenvalues(matrix)
        assert values.shape == (2,) and values.dtype == torch.complex128 and values.isnan().all()
        assert math.isnan(games.spectral_radius(matrix))


def test_measured_rate_edge_cases():
    """The window is at least one period, the whole run when it is one period long; a distance
    that reaches 0 gives rate 0, one that starts the window at 0 too."""
    assert games.measured_rate([1.0, 0.5]) == 0.5  # one step, one period
    assert games.measured_rate([1.0, 0.5, 0.25, 0.2]) == pytest.approx(0.8, rel=1e-15)  # k = 1
    assert games.measured_rate([1.0, 0.5, 0.0]) == 0.0
    assert games.measured_rate([2.0, 1.0, 0.0, 0.0]) == 0.0
    assert games.measured_rate([1.0, 1.0, 1.0]) == 1.0  # a window starting at 1 is no special case
    assert games.measured_rate([1.0]) is None and games.measured_rate([1.0, 0.5], period=2) is None


def test_eigenvalues_of_a_non_finite_float32_matrix_are_complex64_nans():
    values = games.eigenvalues(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]))
    assert values.dtype == torch.complex64 and values.isnan().all()


def test_the_distance_floor_is_sqrt_eps_times_the_equilibrium_norm():
    """√eps·‖z*‖ in the game's dtype; no floor at z* = 0 (rounding is relative) or without z*."""
    eps64, eps32 = torch.finfo(F64).eps, torch.finfo(torch.float32).eps
    assert games.distance_floor(games.duopoly()) == pytest.approx(math.sqrt(2 * eps64), rel=1e-15)
    assert games.distance_floor(games.bilinear()) == 0.0 and games.distance_floor(games.tandem()) == 0.0
    loss = lambda p: torch.stack([(p[0] - 3).pow(2).sum(), (p[1] - 4).pow(2).sum()])
    single = games.Game(("a", "b"), ((1,), (1,)), loss, torch.tensor([3.0, 4.0]), dtype=torch.float32)
    assert games.distance_floor(single) == pytest.approx(5 * math.sqrt(eps32), rel=1e-6)


def test_measured_rate_fits_only_the_steps_above_the_floor():
    """0.8^t down to 1e-12, then a rounding plateau: the whole run reads 1.0, the steps above a
    floor of 1e-9 read 0.8; fewer than one period above it reads None."""
    dist = [0.8**t for t in range(124)] + [1e-12 * (1 + 0.1 * (t % 3)) for t in range(80)]
    assert games.measured_rate(dist) == pytest.approx(1.0, abs=0.01)  # the plateau, as before
    assert games.above_floor(dist, 1e-9) == 93  # 0.8^92 ≈ 1.2e-9 > 1e-9 > 0.8^93
    assert games.measured_rate(dist, floor=1e-9) == pytest.approx(0.8, rel=1e-13)
    assert games.measured_rate(dist, floor=1e-9, period=93) is None
    assert games.measured_rate([1.0, 0.5, 1e-20], floor=1e-9) == 0.5  # one step above
    assert games.measured_rate([1e-10, 1e-11], floor=1e-9) is None and games.above_floor([1e-10], 1e-9) == 0
    assert games.measured_rate([1.0, 0.5, 0.0]) == 0.0  # no floor: an exact 0 is rate 0


@pytest.mark.parametrize("dim,seed,mu,lr", [(1, 0, 1.0, 0.1), (3, 1, 0.5, 0.2), (3, 0, 0.5, 0.2)])
def test_sim_gd_on_the_quadratic_game_contracts_by_its_closed_form(dim, seed, mu, lr):
    """H = [[μI, A], [−Aᵀ, μI]] has eigenvalues μ ± iσ_k (σ_k the singular values of A), so
    sim_gd's map I − ηH has spectral radius max_k √((1 − ημ)² + η²σ_k²); a run (z* = 0: no floor)
    shrinks or grows by it per step (these cases' next σ_k fades by 1e-6 within 200 steps)."""
    game = games.quadratic(dim=dim, seed=seed, mu=mu)
    coupling = games.field_jacobian(game, game.equilibrium)[:dim, dim:]
    sigma = torch.linalg.svdvals(coupling).max().item()
    expected = math.sqrt((1 - lr * mu) ** 2 + (lr * sigma) ** 2)
    assert games.predicted_rate(game, games.sim_gd(lr)) == pytest.approx(expected, rel=1e-13)
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    dist = game.distance(games.play(game, games.sim_gd(lr), z0, 200).params)
    assert games.measured_rate(dist.tolist(), floor=games.distance_floor(game)) == pytest.approx(
        expected, rel=1e-6
    )


def test_lola_is_predicted_and_measured_at_its_own_fixed_point():
    """Cournot's duopoly: ξ = Hq − 3·1, H = [[2, 1], [1, 2]], H_o = [[0, 1], [1, 0]], χ = q, so
    LOLA's field (I − αH_o)ξ − αχ vanishes at q₁ = q₂ = 3(1 − α)/(3 − 4α) (27/26 at α = 0.1), not at
    Nash's (1, 1); its Jacobian H − αH_oH − αI has eigenvalues 3 − 4α and 1, so the update
    contracts by max(|1 − η(3 − 4α)|, |1 − η|) = 0.9 at η = α = 0.1, toward that point."""
    game, lr = games.duopoly(), 0.1
    lola = games.lola(lr)
    point = lola.fixed_point(game, game.equilibrium)
    torch.testing.assert_close(point, torch.full((2,), 27 / 26, dtype=F64), rtol=0, atol=1e-15)
    assert games.predicted_rate(game, lola, point) == pytest.approx(0.9, rel=1e-13)
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    params = games.play(game, lola, z0, 100).params
    dist = torch.linalg.vector_norm(params - point, dim=1)
    assert games.measured_rate(dist.tolist()) == pytest.approx(0.9, rel=1e-9)
    nash = game.distance(params)  # the distance to Nash's point levels off: it reads about 1
    assert games.measured_rate(nash.tolist()) > 0.999
    assert (
        games.lola(lr).fixed_point(games.bilinear(), torch.zeros(2, dtype=F64)).abs().max() == 0
    )  # zero-sum: Nash


def pulled_to(*center: float) -> games.Game:
    """Player i owns z_i and pays (z_i − c_i)²/2: ξ = z − c, H = I, z* = c."""
    c = torch.tensor(center, dtype=F64)
    loss = lambda p: torch.stack([((x - ci) ** 2).sum() / 2 for x, ci in zip(p, c)])
    return games.Game(tuple(f"p{i}" for i in range(len(c))), ((1,),) * len(c), loss, c)


class Trail(NamedTuple):
    trail: Tensor


def trailing(lr: float, drift: Tensor | float = 0.0, offset: Tensor | float = 0.0) -> games.Dynamics:
    """sim_gd with a trail s⁺ = (s + z⁺)/2 + δ, started at z + offset, that feeds nothing back: on
    H = I, M = [[(1 − η)I, 0], [(1 − η)I/2, I/2]] and ρ(M) = max(|1 − η|, 1/2). From s = z = z*
    the trail moves by δ per update."""

    def update(game, z, state):
        z = z - lr * game.field(z)
        return z, Trail((state.trail + z) / 2 + drift)

    return games.Dynamics(lambda game, z: Trail(z + offset), update)


def test_a_float_state_need_only_return_to_within_sqrt_eps_absolute_plus_relative():
    """|s_p − s_0| <= √eps·(1 + |s_0|) per entry, √eps ≈ 1.49e-8: at s_0 = (1000, 0) a drift of
    (1e-5, 1.2e-8) is back, one of 2e-5 or 2e-8 (1.34 times the bound) is not."""
    game = pulled_to(1000.0, 0.0)
    back = trailing(0.3, torch.tensor([1e-5, 1.2e-8], dtype=F64))
    assert games.predicted_rate(game, back) == pytest.approx(0.7, rel=1e-13)
    for drift, moved in (
        ([2e-5, 0.0], "from [1000.0, 0.0] to [1000.00002, 0.0]"),
        ([0.0, 2e-8], "from [1000.0, 0.0] to [1000.0, 2e-08]"),
    ):
        with pytest.raises(ValueError, match=re.escape(f"state.trail moves {moved} in period=1 update(s)")):
            games.predicted_rate(game, trailing(0.3, torch.tensor(drift, dtype=F64)))


def test_a_nan_state_entry_that_stays_nan_is_back_where_it_began():
    """(NaN + z⁺)/2 = NaN: the entry returns as NaN, and M does not depend on it."""
    dynamics = trailing(0.3, offset=torch.tensor([float("nan"), 0.0], dtype=F64))
    assert games.predicted_rate(pulled_to(1.0, 2.0), dynamics) == pytest.approx(0.7, rel=1e-13)


@pytest.mark.parametrize(
    "center,drift,moved",
    [
        ((1, 2, 3, 4), (0, 0.5, 0, 0), "from [1.0, 2.0, 3.0, 4.0] to [1.0, 2.5, 3.0, 4.0]"),
        ((1, 2, 3, 4, 5), (0, 0, -0.25, 0.125, 0), "by up to 0.25"),
    ],
)
def test_a_state_off_its_period_is_named_with_its_values_up_to_four_entries_then_its_largest_move(
    center, drift, moved
):
    game = pulled_to(*map(float, center))
    with pytest.raises(ValueError, match=re.escape(f"state.trail moves {moved} in period=1 update(s) at z")):
        games.predicted_rate(game, trailing(0.3, torch.tensor(drift, dtype=F64)))


class Counters(NamedTuple):
    steps: int
    phases: Tensor  # int64, (2,)


def counting_sim_gd(lr: float, k: int, period: int) -> games.Dynamics:
    """sim_gd carrying a Python int and an integer tensor that count modulo k: no float state, M = I − ηH."""

    def update(game, z, state):
        return z - lr * game.field(z), Counters((state.steps + 1) % k, (state.phases + 1) % k)

    return games.Dynamics(lambda game, z: Counters(0, torch.tensor([0, 1])), update, period=period)


def test_integer_counters_are_constants_that_must_return_exactly():
    """Counting modulo 3, the counters are back after 3 or 6 updates and the rate is |1 − η| per
    step; after 2 they are not."""
    game = pulled_to(1.0, 2.0)
    for period in (3, 6):
        assert games.predicted_rate(game, counting_sim_gd(0.3, 3, period)) == pytest.approx(0.7, rel=1e-13)
    with pytest.raises(ValueError, match=re.escape("state.steps moves from 0 to 2 in period=2 update(s)")):
        games.predicted_rate(game, counting_sim_gd(0.3, 3, 2))


class Anchor(NamedTuple):
    anchor: Tensor


def test_a_state_entry_that_stays_put_but_pulls_z_is_a_coordinate_not_a_passenger():
    """z⁺ = z − ηξ(z) − γ(z − a), a⁺ = a, a started at z: M = [[(1 − η − γ)I, γI], [0, I]] on H = I.
    a's row is its unit vector, its column is not: its eigenvalue 1 is real (a moved anchor moves
    the limit), so ρ(M) = max(|1 − η − γ|, 1) = 1."""

    def update(game, z, state):
        return z - 0.3 * game.field(z) - 0.2 * (z - state.anchor), state

    anchored = games.Dynamics(lambda game, z: Anchor(z), update)
    assert games.predicted_rate(pulled_to(1.0, 2.0), anchored) == pytest.approx(1.0, rel=1e-13)


class Rate(NamedTuple):
    lr: Tensor


def test_a_learning_rate_kept_in_the_state_is_refused_as_a_passenger():
    """z⁺ = z − η ξ(z), η⁺ = η: at z*, ∂z⁺/∂η = −ξ(z*) = 0, so η's row and column are its unit vector."""
    init = lambda game, z: Rate(torch.tensor(0.3, dtype=game.dtype))
    update = lambda game, z, state: (z - state.lr * game.field(z), state)
    with pytest.raises(
        ValueError, match=r"^state\.lr is a floating-point entry that, to first order at z, stays put"
    ):
        games.predicted_rate(pulled_to(1.0, 2.0), games.Dynamics(init, update))


def test_a_period_that_is_not_an_integer_of_at_least_one_is_refused():
    game = games.bilinear()
    for period in (2.0, True, -1):
        with pytest.raises(ValueError, match=rf"^Dynamics\.period={period!r} must be an integer >= 1$"):
            games.update_jacobian(game, games.sim_gd(0.3)._replace(period=period), game.equilibrium)


def test_the_predicted_rate_costs_one_period_of_updates_plus_one_to_check_a_state():
    """The Jacobian takes one pass of `period` updates (jacfwd); a state's return is checked by
    one more, and an empty state needs no check: sim_gd 1 update, momentum 2."""
    game = games.bilinear()
    for dynamics, expected in ((games.sim_gd(0.3), 1), (games.momentum(0.3), 2)):
        calls = []

        def update(game, z, state, dynamics=dynamics, calls=calls):
            calls.append(z)
            return dynamics.update(game, z, state)

        games.predicted_rate(game, dynamics._replace(update=update))
        assert len(calls) == expected
