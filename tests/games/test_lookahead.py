"""Lookahead, and the analysis of dynamics whose update map repeats only every k steps.

On xᵀAy the field is ξ = Hz with H = [[0, A], [−Aᵀ, 0]] constant, so a base method is z ↦ Mz
(extragradient: M = I − ηH + η²H²) and k lookahead updates from a restart are
z ↦ ((1 − α)I + αM^k)z: the predicted rate per step is ρ((1 − α)I + αM^k)^(1/k).
"""

import math
import re
from typing import NamedTuple

import pytest
import torch
from torch import Tensor
from torch.func import vmap

import games
from games import adjusted

F64 = torch.float64


def closed_form_map(game, lr, k, alpha):  # (d, d), the k-step lookahead-extragradient map
    h = games.field_jacobian(game, game.equilibrium)
    eye = torch.eye(game.dim, dtype=F64)
    base = eye - lr * h + lr**2 * h @ h
    return (1 - alpha) * eye + alpha * torch.linalg.matrix_power(base, k)


@pytest.mark.parametrize(
    "dim,seed,lr,k,alpha", [(1, 0, 0.3, 5, 0.5), (3, 1, 0.3, 5, 0.5), (2, 3, 0.6, 3, 0.8)]
)
def test_rate_on_bilinear_is_that_of_the_closed_form_k_step_map(dim, seed, lr, k, alpha):
    game = games.bilinear(dim=dim, seed=seed)
    expected = games.spectral_radius(closed_form_map(game, lr, k, alpha)) ** (1 / k)
    assert games.predicted_rate(game, games.lookahead(lr, k=k, alpha=alpha)) == pytest.approx(
        expected, rel=1e-12
    )


def test_update_jacobian_is_the_k_step_map_of_fast_and_slow_weights():
    """(z, φ) ↦ (φ', φ') with φ' = (1 − α)φ + αM^k z; the counter is not a coordinate."""
    game, lr, k, alpha = games.bilinear(dim=2, seed=3), 0.3, 4, 0.5
    power = (closed_form_map(game, lr, k, alpha) - (1 - alpha) * torch.eye(4, dtype=F64)) / alpha
    row = torch.cat([alpha * power, (1 - alpha) * torch.eye(4, dtype=F64)], dim=1)
    found = games.update_jacobian(game, games.lookahead(lr, k=k, alpha=alpha), game.equilibrium)
    torch.testing.assert_close(found, torch.cat([row, row]), rtol=0, atol=1e-14)


def test_measured_rate_of_a_run_is_the_predicted_one():
    """On xy, (1 − α)I + αM^k is a multiple of a rotation: every k-step ratio is the rate exactly.
    Measured as the game scenario does (the last tenth of 200 steps), in whole periods."""
    game = games.bilinear()
    dynamics = games.lookahead(0.3, k=5, alpha=0.5)
    dist = game.distance(games.play(game, dynamics, torch.tensor([1.0, 0.5], dtype=F64), 200).params)
    predicted = games.predicted_rate(game, dynamics)
    assert games.measured_rate(dist.tolist(), period=5) == pytest.approx(predicted, rel=1e-12)
    assert predicted < games.predicted_rate(game, games.extragradient(0.3)) < 1


@pytest.mark.parametrize("base", ["sim_gd", "extragradient", "optimistic", "momentum"])
def test_measured_rate_on_a_larger_bilinear_game_approaches_the_prediction(base):
    game = games.bilinear(dim=2, seed=3)
    dynamics = games.lookahead(0.2, k=5, alpha=0.5, base=base)
    z0 = 1e-4 * game.sample_init(torch.Generator().manual_seed(0))
    dist = game.distance(games.play(game, dynamics, z0, 400).params)
    predicted = games.predicted_rate(game, dynamics)
    assert games.measured_rate(dist.tolist(), period=5) == pytest.approx(predicted, abs=2e-3)


def test_the_update_is_k_base_steps_then_a_step_toward_the_slow_weights():
    game, lr, alpha = games.bilinear(dim=2, seed=1), 0.25, 0.4
    z = game.sample_init(torch.Generator().manual_seed(2))
    optimistic = games.optimistic(lr)
    expected, slow, state = [z], z, optimistic.init(game, z)
    for _ in range(2):  # two periods of k = 3 steps, the optimistic state kept across the restart
        fast = slow
        for _ in range(3):
            fast, state = optimistic.update(game, fast, state)
            expected.append(fast)
        slow = slow + alpha * (fast - slow)
        expected[-1] = slow
    found = games.play(game, games.lookahead(lr, k=3, alpha=alpha, base="optimistic"), z, 6).params
    torch.testing.assert_close(found, torch.stack(expected), rtol=0, atol=0)


def test_alpha_one_or_one_step_is_the_base_method_and_refused():
    """α = 1 puts the slow weights on the fast ones: the base method; k = 1 moves them α of one
    base step: the base method with a shorter step (sim_gd: lr αη)."""
    with pytest.raises(
        ValueError, match=r"^alpha=1.0: .*α = 1 is the base method; valid: a finite number > 0 and < 1$"
    ):
        games.lookahead(0.3, k=3, alpha=1.0)
    with pytest.raises(
        ValueError, match=r"^k=1: .*k = 1 is the base method, relaxed; valid: an integer >= 2$"
    ):
        games.lookahead(0.3, k=1, alpha=0.5)


def test_a_batch_is_separate_runs_and_jacobians_vmap():
    """play_batch vmaps the update (the int64 counter is batched with the rest of the state)."""
    game = games.dirac_gan()
    dynamics = games.lookahead(0.3, k=3, base="momentum")
    starts = torch.stack([game.sample_init(torch.Generator().manual_seed(s)) for s in range(3)])
    batch = games.play_batch(game, dynamics, starts, 8)
    jacobians = vmap(lambda z: games.update_jacobian(game, dynamics, z))(starts)
    for k in range(3):
        alone = games.play(game, dynamics, starts[k], 8).params
        torch.testing.assert_close(batch.params[:, k], alone, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(jacobians[k], games.update_jacobian(game, dynamics, starts[k]))


def test_bad_options_are_errors():
    with pytest.raises(ValueError, match=r"^k=0: Lookahead takes k fast steps .*; valid: an integer >= 2$"):
        games.lookahead(0.1, k=0)
    with pytest.raises(ValueError, match=r"^alpha=1.5: .*; valid: a finite number > 0 and < 1$"):
        games.lookahead(0.1, alpha=1.5)
    with pytest.raises(ValueError, match="base='cgd' is not a first-order dynamics; valid: sim_gd, alt_gd"):
        games.lookahead(0.1, base="cgd")
    for k in (2.0, True):
        with pytest.raises(ValueError, match="valid: an integer >= 2"):
            games.lookahead(0.1, k=k)
    for alpha in (0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^alpha=.*; valid: a finite number > 0 and < 1$"):
            games.lookahead(0.1, alpha=alpha)


def test_the_default_cycle_is_five_steps():
    """Zhang et al. 2019's k = 5, α = 0.5: five fast steps, then halfway back."""
    assert games.lookahead(0.1).period == 5


class Counted(NamedTuple):
    slow: Tensor
    count: Tensor


def user_lookahead(lr, k, alpha, period, dtype=torch.int64, wraps=True) -> games.Dynamics:
    """Lookahead-extragradient as a user writes it, with a step counter of the given dtype that
    counts modulo k (`wraps`) or on without end."""

    def init(game, z):
        return Counted(z, torch.zeros((), dtype=dtype))

    def update(game, z, state):
        fast = z - lr * game.field(z - lr * game.field(z))
        count = (state.count + 1) % k if wraps else state.count + 1
        restart = count % k == 0
        slow = torch.where(restart, state.slow + alpha * (fast - state.slow), state.slow)
        return torch.where(restart, slow, fast), Counted(slow, count)

    return games.Dynamics(init, update, period=period)


@pytest.mark.parametrize("period", [5, 10])
def test_a_user_counter_of_the_right_period_gives_the_closed_form_rate_not_one(period):
    """Differentiated, the counter's derivative 1 reported ρ = 1 (issue #21); any multiple of the
    true period is a period too."""
    game = games.bilinear(dim=3, seed=1)
    expected = games.spectral_radius(closed_form_map(game, 0.3, 5, 0.5)) ** (1 / 5)
    found = games.predicted_rate(game, user_lookahead(0.3, 5, 0.5, period))
    assert found == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    "period,dtype,wraps,message",
    [
        (1, torch.int64, True, "state.count moves from 0 to 1 in period=1 update(s) at z"),
        (3, torch.int64, True, "state.count moves from 0 to 3 in period=3 update(s) at z"),
        (5, torch.int64, False, "state.count moves from 0 to 5 in period=5 update(s) at z"),
        (5, torch.float64, False, "state.count moves from 0.0 to 5.0 in period=5 update(s) at z"),
        (5, torch.float32, True, "state.count is a floating-point entry that, to first order at z, stays"),
    ],
)
def test_a_counter_the_analysis_cannot_use_is_refused_in_one_line(period, dtype, wraps, message):
    game = games.bilinear(dim=3, seed=1)
    dynamics = user_lookahead(0.3, 5, 0.5, period, dtype, wraps)
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        games.predicted_rate(game, dynamics)
    assert "\n" not in str(error.value)


def test_the_update_jacobian_refuses_a_counter_off_its_period_and_a_bad_period():
    game = games.bilinear()
    with pytest.raises(ValueError, match="state.count moves from 0 to 3 in period=3"):
        games.update_jacobian(game, games.lookahead(0.3, k=5)._replace(period=3), game.equilibrium)
    with pytest.raises(ValueError, match=r"^Dynamics.period=0 must be an integer >= 1$"):
        games.update_jacobian(game, games.sim_gd(0.3)._replace(period=0), game.equilibrium)


def test_a_drifting_float_state_at_the_fixed_point_is_refused():
    """Slow weights away from the fixed point after k steps: the period is wrong or z is no fixed point."""
    game = games.bilinear(dim=3, seed=1)
    with pytest.raises(ValueError, match=r"state.slow moves by up to .* in period=5"):
        games.predicted_rate(
            game, games.lookahead(0.3, k=5), game.sample_init(torch.Generator().manual_seed(0))
        )


@pytest.mark.parametrize(
    "make, said",
    [
        (
            lambda: adjusted.lola(0.1, lookahead=-1.0),
            "lookahead=-1.0: LOLA looks α ahead at the opponents' step; α = 0 is simultaneous GD; "
            "valid: a finite number > 0",
        ),
        (
            lambda: adjusted.consensus(0.1, gamma=-1.0),
            "gamma=-1.0: consensus descends ‖ξ‖² with weight γ; γ = 0 is simultaneous GD, γ < 0 ascends it; "
            "valid: a finite number > 0",
        ),
    ],
)
def test_a_refused_rate_names_its_method_and_what_the_rate_does(make, said):
    with pytest.raises(ValueError, match=f"^{re.escape(said)}$"):
        make()


def test_consensus_defaults_to_gamma_1_whose_bilinear_rate_at_0_1_is_0_906():
    """On the scalar bilinear game, consensus at η contracts by √((1 − ηγ)² + η²): 0.9055 at
    η = 0.1, γ = 1 (γ = 2 would give 0.806)."""
    game = games.zoo.bilinear()
    rate = games.predicted_rate(game, adjusted.consensus(0.1))
    assert rate == pytest.approx(math.sqrt(0.9**2 + 0.1**2), abs=1e-12)
