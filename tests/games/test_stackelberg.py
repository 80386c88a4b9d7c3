"""Stackelberg dynamics against closed forms: where it goes, one step, its Jacobian and rate.

Cournot's duopoly (`games.duopoly`): firm i's loss is q_i(q₁ + q₂ − 3), so ξ = (2q₁ + q₂ − 3,
2q₂ + q₁ − 3) and the Nash (Cournot) point is q = (1, 1). The follower's best response to q₁ is
r(q₁) = (3 − q₁)/2, ∇²_{yy}g = 2, ∇²_{xy}g = 1 and ∇_y f = q₁, so the leader's total derivative is
Df = 2q₁ + q₂ − 3 − q₁/2 and the Stackelberg field ω_S = (3q₁/2 + q₂ − 3, q₁ + 2q₂ − 3) vanishes at
(3/2, 3/4), the minimiser of the leader's reduced loss (q₁² − 3q₁)/2. Its Jacobian is
J_S = [[3/2, 1], [1, 2]], eigenvalues (7 ± √17)/4, so with learning rate η and τ = 1 the update
contracts by 1 − η(7 − √17)/4 per step.
"""

import json
import math
import re

import pytest
import torch
from torch.func import jacfwd, vmap

import games
from games.adjusted import newton_zero
from playground.cli import main

F64 = torch.float64
COURNOT = torch.tensor([1.0, 1.0], dtype=F64)
STACKELBERG = torch.tensor([1.5, 0.75], dtype=F64)
J_S = torch.tensor([[1.5, 1.0], [1.0, 2.0]], dtype=F64)


def duopoly_rate(lr):
    return 1 - lr * (7 - math.sqrt(17)) / 4


def t(*rows):
    return torch.tensor(rows, dtype=F64)


# A general-sum quadratic game with a 2-parameter leader and a 3-parameter follower:
#   f = ½xᵀPx + xᵀQy + ½yᵀRy + pᵀx,   g = ½yᵀSy + yᵀTx + sᵀy + ‖x‖²  (the last term moves nothing).
P, Q, p = t([3.0, 1.0], [1.0, 2.0]), t([1.0, 0.0, 2.0], [0.0, 1.0, -1.0]), t(1.0, -2.0)
R = t([1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.0, 0.5, 1.0])
S, T, s = (
    t([2.0, 0.5, 0.0], [0.5, 3.0, 0.0], [0.0, 0.0, 1.0]),
    t([-1.0, 0.0], [0.0, -2.0], [-1.0, 1.0]),
    t(0.5, 0.0, -1.0),
)


def general_game(nonlinear=0.0):
    """With `nonlinear` ≠ 0, terms that make every Hessian block depend on z (for vmap/jacfwd)."""

    def losses(params):
        x, y = params
        f = 0.5 * x @ P @ x + x @ Q @ y + 0.5 * y @ R @ y + p @ x
        g = 0.5 * y @ S @ y + y @ T @ x + s @ y + x @ x
        f = f + nonlinear * torch.sin(x.sum() * y[0])
        g = g + nonlinear * ((y @ y) * (x @ x) + (y**3).sum())
        return torch.stack([f, g])

    return games.Game(("x", "y"), ((2,), (3,)), losses, name="general")


def general_closed_forms():
    """Nash: Px + Qy + p = 0 and Sy + Tx + s = 0. Stackelberg: r(x) = Kx + k with K = −S⁻¹T,
    k = −S⁻¹s; the leader's reduced loss f(x, Kx + k) has gradient
    (P + QK + KᵀQᵀ + KᵀRK)x + Qk + KᵀRk + p, zero at x_S. J_S = [[P + KᵀQᵀ, Q + KᵀR], [T, S]]
    (∇²_{xy}g = Tᵀ, ∇_y f = Qᵀx + Ry, and −TᵀS⁻¹ = Kᵀ)."""
    field_jacobian = torch.cat([torch.cat([P, Q], 1), torch.cat([T, S], 1)])
    nash = torch.linalg.solve(field_jacobian, -torch.cat([p, s]))
    K, k = -torch.linalg.solve(S, T), -torch.linalg.solve(S, s)
    x = torch.linalg.solve(P + Q @ K + K.T @ Q.T + K.T @ R @ K, -(Q @ k + K.T @ R @ k + p))
    jacobian = torch.cat([torch.cat([P + K.T @ Q.T, Q + K.T @ R], 1), torch.cat([T, S], 1)])
    return nash, torch.cat([x, K @ x + k]), jacobian


def test_stackelberg_reaches_the_stackelberg_point_and_sim_gd_the_cournot_one():
    """The leader earns 9/8 at the Stackelberg point against 1 at Cournot's."""
    game = games.duopoly()
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    leader = games.play(game, games.stackelberg(0.5), z0, 60).params[-1]  # ρ = 0.64
    nash = games.play(game, games.sim_gd(0.5), z0, 60).params[-1]  # ρ = 0.5
    torch.testing.assert_close(leader, STACKELBERG, rtol=0, atol=1e-10)
    torch.testing.assert_close(nash, COURNOT, rtol=0, atol=1e-10)
    assert game.losses(leader)[0].item() == pytest.approx(-9 / 8, abs=1e-10)
    assert game.losses(nash)[0].item() == pytest.approx(-1.0, abs=1e-10)


def test_the_dynamics_names_its_own_fixed_point():
    """Stackelberg dynamics converge to the Stackelberg point and say so; sim_gd's are Nash points."""
    game = games.duopoly()
    torch.testing.assert_close(
        games.stackelberg(0.5).fixed_point(game, game.equilibrium), STACKELBERG, rtol=0, atol=1e-12
    )
    assert games.sim_gd(0.5).fixed_point is None


def test_the_regularised_dynamics_names_the_regularised_stackelberg_point():
    """With ρ the leader descends Df = 2q₁ + q₂ − 3 − q₁/(2 + ρ): at ρ = 1, ω_S = 0 where
    q₂ = (3 − q₁)/2 and (5/3 − 1/2)q₁ = 3/2, so at q = (9/7, 6/7), not (3/2, 3/4)."""
    game, rho = games.duopoly(), 1.0
    expected = t(9 / 7, 6 / 7)
    found = games.stackelberg_equilibrium(game, game.equilibrium, regularization=rho)
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-15)
    named = games.stackelberg(0.5, regularization=rho).fixed_point(game, game.equilibrium)
    torch.testing.assert_close(named, expected, rtol=0, atol=1e-15)


def test_one_update_is_the_hand_computed_step():
    """At q = (1/2, 2), η = 0.1, τ = 3: Df = 3/4 + 2 − 3 = −1/4 and ∇_y g = 4 + 1/2 − 3 = 3/2,
    so q⁺ = (1/2 + 0.025, 2 − 0.3 · 3/2) = (0.525, 1.55)."""
    z1, _ = games.stackelberg(0.1, timescale=3.0).update(games.duopoly(), t(0.5, 2.0), ())
    torch.testing.assert_close(z1, t(0.525, 1.55), rtol=0, atol=1e-15)


def test_the_field_by_default_is_the_exact_total_derivative():
    """stackelberg_field without ρ at q = (1/2, 2) on the duopoly: (Df, ∇_y g) = (−1/4, 3/2), the
    values of the hand-computed step above (ρ = 1 would damp the follower's Hessian, 2, to 3)."""
    torch.testing.assert_close(
        games.stackelberg_field(games.duopoly(), t(0.5, 2.0)), t(-0.25, 1.5), rtol=0, atol=1e-15
    )


def test_one_update_on_the_general_game_is_the_matrix_formula():
    """x⁺ = x − η(Px + Qy + p − TᵀS⁻¹(Qᵀx + Ry)), y⁺ = y − τη(Sy + Tx + s)."""
    z = torch.linspace(-1, 1, 5, dtype=F64)
    x, y = z[:2], z[2:]
    leader = P @ x + Q @ y + p - T.T @ torch.linalg.solve(S, Q.T @ x + R @ y)
    expected = torch.cat([x - 0.1 * leader, y - 0.1 * 2.0 * (S @ y + T @ x + s)])
    z1, _ = games.stackelberg(0.1, timescale=2.0).update(general_game(), z, ())
    torch.testing.assert_close(z1, expected, rtol=1e-14, atol=1e-15)


def test_general_game_converges_to_its_closed_form_stackelberg_point():
    game = general_game()
    nash, stackelberg, _ = general_closed_forms()
    assert torch.linalg.vector_norm(nash - stackelberg) > 0.5
    z0 = game.sample_init(torch.Generator().manual_seed(3))
    found = games.stackelberg_equilibrium(game, z0)
    torch.testing.assert_close(found, stackelberg, rtol=0, atol=1e-13)
    final = games.play(game, games.stackelberg(0.3), z0, 50).params[-1]  # ρ = 0.57
    torch.testing.assert_close(final, stackelberg, rtol=0, atol=1e-10)


@pytest.mark.parametrize("timescale", [1.0, 3.0])
def test_duopoly_update_jacobian_is_the_closed_form_and_its_rate_is_measured(timescale):
    """M = I − η diag(1, τ) J_S at the Stackelberg point; a run contracts by ρ(M) per step."""
    game, lr = games.duopoly(), 0.1
    dynamics = games.stackelberg(lr, timescale=timescale)
    point = games.stackelberg_equilibrium(game, game.equilibrium)
    torch.testing.assert_close(point, STACKELBERG, rtol=0, atol=1e-15)
    expected = torch.eye(2, dtype=F64) - lr * torch.diag(t(1.0, timescale)) @ J_S
    found = games.update_jacobian(game, dynamics, point)
    torch.testing.assert_close(found, expected, rtol=0, atol=1e-15)
    predicted = games.predicted_rate(game, dynamics, point)
    if timescale == 1.0:
        assert predicted == pytest.approx(duopoly_rate(lr), rel=1e-14)
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    dist = torch.linalg.vector_norm(games.play(game, dynamics, z0, 150).params - point, dim=1)
    assert games.measured_rate(dist.tolist()) == pytest.approx(predicted, rel=1e-9)


def test_general_game_update_jacobian_and_measured_rate():
    """J_S in closed form (docstring of `general_closed_forms`); its real eigenvalue ≈ 1.48 is the
    slowest, so 1 − η·1.48 = 0.70 is the rate; the next |1 − ημ| is 0.51, whose transient,
    (0.51/0.70)⁵⁴ ≈ 2e-8 over the last 6 of 60 steps, bounds how closely the run shows it."""
    game, lr = general_game(), 0.2
    _, point, jacobian = general_closed_forms()
    dynamics = games.stackelberg(lr)
    torch.testing.assert_close(
        games.update_jacobian(game, dynamics, point),
        torch.eye(5, dtype=F64) - lr * jacobian,
        rtol=0,
        atol=1e-14,
    )
    predicted = games.predicted_rate(game, dynamics, point)
    expected = games.spectral_radius(torch.eye(5, dtype=F64) - lr * jacobian)
    assert predicted == pytest.approx(expected, rel=1e-13)
    z0 = game.sample_init(torch.Generator().manual_seed(1))
    dist = torch.linalg.vector_norm(games.play(game, dynamics, z0, 60).params - point, dim=1)
    assert games.measured_rate(dist.tolist()) == pytest.approx(predicted, rel=1e-7)


def test_zero_sum_rate_comes_from_the_leaders_schur_complement_and_the_followers_curvature():
    """f = (μ/2)x² + xy − (μ/2)y², g = −f: at the saddle ∇_y f = 0, so J_S = [[μ + 1/μ, 0], [−1, μ]]
    (block triangular) and the update's eigenvalues are 1 − η(μ + 1/μ) and 1 − ημ."""
    mu, lr = 0.5, 0.3
    game = games.quadratic(mu=mu)
    assert torch.equal(games.stackelberg_equilibrium(game, game.equilibrium), game.equilibrium)
    found = games.eigenvalues(games.update_jacobian(game, games.stackelberg(lr), game.equilibrium))
    expected = sorted([1 - lr * (mu + 1 / mu), 1 - lr * mu])
    assert found.real.tolist() == pytest.approx(expected, abs=1e-14) and (found.imag == 0).all()


def test_bilinear_follower_has_no_best_response_unless_regularised():
    """g = −xy is linear in y (∇²_{yy}g = 0): the leader's implicit gradient does not exist and the
    update would be simultaneous GD, so a start there is refused. With ρ > 0, Df = y + x/ρ, so
    M = [[1 − η/ρ, −η], [η, 1]]: ρ(M) = √(1 − η/ρ + η²) while complex."""
    game, z0 = games.bilinear(), t(1.0, 0.5)
    with pytest.raises(
        ValueError, match=r"^the follower's Hessian ∇²_yy g is singular at z = \[1.0, 0.5\]: its "
    ):
        games.play(game, games.stackelberg(0.3), z0, 10)
    regularised = games.stackelberg(0.5, regularization=1.0)
    assert games.predicted_rate(game, regularised) == pytest.approx(math.sqrt(0.75), rel=1e-14)
    assert games.play(game, regularised, z0, 150).params[-1].norm() < 1e-8


def test_batches_and_batched_jacobians_equal_separate_ones():
    """play_batch (vmap of the update) and vmap of update_jacobian (vmap over jacfwd, where
    torch.linalg.solve goes wrong in torch 2.14) against one point at a time, on a game whose
    Hessian blocks all vary with z; the Jacobian also against central differences."""
    game, dynamics = general_game(nonlinear=0.3), games.stackelberg(0.05, timescale=2.0)
    starts = torch.stack([game.sample_init(torch.Generator().manual_seed(k)) for k in range(3)])
    starts = 0.3 * starts
    batch = games.play_batch(game, dynamics, starts, 5)
    assert all(step is None for step in batch.diverged_step)
    for k in range(3):
        alone = games.play(game, dynamics, starts[k], 5).params
        torch.testing.assert_close(batch.params[:, k], alone, rtol=1e-12, atol=1e-14)
    jacobians = vmap(lambda z: games.update_jacobian(game, dynamics, z))(starts)
    for k in range(3):
        torch.testing.assert_close(
            jacobians[k], games.update_jacobian(game, dynamics, starts[k]), rtol=1e-12, atol=1e-13
        )
    step = lambda z: dynamics.update(game, z, ())[0]
    h, z = 1e-5, starts[0]
    directions = torch.eye(game.dim, dtype=F64)
    central = torch.stack([step(z + h * e) - step(z - h * e) for e in directions], 1)
    torch.testing.assert_close(jacfwd(step)(z), central / (2 * h), rtol=0, atol=1e-9)


def test_refuses_other_than_two_players_and_bad_options():
    def losses(params):
        a, b, c = (param.sum() for param in params)
        return torch.stack([a * b, b * c, c * a])

    three = games.Game(("a", "b", "c"), ((1,), (1,), (1,)), losses, name="three")
    with pytest.raises(ValueError, match="two-player game .*'three' has 3 players"):
        games.play(three, games.stackelberg(0.1), torch.ones(3, dtype=F64), 1)
    with pytest.raises(ValueError, match=r"^timescale=0.0: .*; valid: a finite number > 0$"):
        games.make_dynamics("stackelberg", 0.1, timescale=0.0)
    with pytest.raises(ValueError, match=r"^regularization=-1.0: .*; valid: a finite number >= 0$"):
        games.make_dynamics("stackelberg", 0.1, regularization=-1.0)
    assert list(games.DYNAMICS.options("stackelberg")) == ["timescale", "regularization"]


def test_game_scenario_reports_the_stackelberg_rate(tmp_path):
    """The scenario measures and predicts at the dynamics' fixed point, the Stackelberg point
    (3/2, 3/4), not the game's Nash equilibrium: both rates are 1 − 0.1(7 − √17)/4."""
    assert (
        main(
            [
                "run",
                "game",
                "game=duopoly",
                "dynamics=stackelberg",
                "steps=200",
                "plots=false",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rate/predicted"] == pytest.approx(duopoly_rate(0.1), rel=1e-13)
    assert summary["rate/measured"] == pytest.approx(summary["rate/predicted"], rel=1e-9)
    assert summary["params"] == pytest.approx([1.5, 0.75], abs=1e-5)


def eps_game(epsilon, coupling=lambda x: x):
    """f = xy, g = (ε/2)y² − c(x)y: ∇²_{yy}g = ε, ∇²_{yx}g = −c′(x) (−1 by default)."""

    def losses(params):
        x, y = params[0].sum(), params[1].sum()
        return torch.stack([x * y, 0.5 * epsilon * y**2 - coupling(x) * y])

    return games.Game(("x", "y"), ((1,), (1,)), losses, name="eps")


def test_the_follower_check_is_the_numerical_rank_of_its_jacobian():
    """Singular means σ_min(∇²_{yy}g + ρI) <= eps·d·σ_max([∇²_{yx}g, ∇²_{yy}g + ρI]): ε = 1e-17
    against a coupling of 1 is rounding, ε = 1e-6 is a (stiff) follower; ρ makes any follower
    regular. A batch names its first singular row; a non-finite Jacobian is left to the run."""
    z = t(1.0, 0.5)
    with pytest.raises(
        ValueError, match=r"singular at z = \[1.0, 0.5\]: its smallest singular value is 1e-17"
    ):
        games.check_follower(eps_game(1e-17), z)
    games.check_follower(eps_game(1e-6), z)
    games.check_follower(eps_game(0.0), z, regularization=1e-6)
    with pytest.raises(ValueError, match=r"∇²_yy g \+ ρI is singular at z = \[1.0, 0.5\]"):
        games.check_follower(eps_game(-1e-3), z, regularization=1e-3)
    starts = torch.stack([STACKELBERG, t(1.0, 0.5)])
    games.check_follower(games.duopoly(), starts)  # ∇²_{yy}g = 2 everywhere
    rps = games.rock_paper_scissors()
    with pytest.raises(
        ValueError, match=r"singular at z\[1\] = \[0.0, 0.0, 0.0, 0.0\]: .* valid: .*regularization"
    ):
        games.check_follower(rps, torch.stack([rps.sample_init(torch.Generator()), rps.equilibrium]))
    games.check_follower(games.bilinear(), t(float("inf"), 1.0))
    with pytest.raises(ValueError, match=r"singular at z = \[0.0, 0.0, 0.0, 0.0\]"):
        games.predicted_rate(rps, games.stackelberg(0.1))  # it would be sim_gd's there


def test_the_follower_check_tolerance_is_eps_times_d_times_the_largest_singular_value():
    """With c = 2x the follower's Jacobian is [−2, ε]: σ_max = 2, so the tolerance is
    2⁻⁵² · 2 · 2 = 2⁻⁵⁰. ε = 2⁻⁵⁰ is singular (at most the tolerance), the next float above is not."""
    z, boundary = t(1.0, 0.5), 2.0**-50
    with pytest.raises(
        ValueError,
        match=r"singular at z = \[1.0, 0.5\]: its smallest singular value is 8.88e-16, "
        r"numerically 0 \(at most 8.88e-16\)",
    ):
        games.check_follower(eps_game(boundary, lambda x: 2 * x), z)
    games.check_follower(eps_game(math.nextafter(boundary, 1.0), lambda x: 2 * x), z)


def test_each_start_of_a_batch_is_checked_at_its_own_scale():
    """c = x²/2, so the Jacobian at (x, y) is [−x, ε]: with ε = 1e-10 the start x = 1 is a stiff
    follower (tolerance 4.4e-16) and x = 1e8 is rounding (tolerance 4.4e-8); the batch names the
    second start."""
    game = eps_game(1e-10, lambda x: 0.5 * x**2)
    with pytest.raises(
        ValueError,
        match=r"singular at z\[1\] = \[100000000.0, 0.0\]: its smallest singular value is 1e-10, "
        r"numerically 0 \(at most 4.44e-08\)",
    ):
        games.check_follower(game, t([1.0, 0.0], [1e8, 0.0]))


@pytest.mark.parametrize(
    "d,batch,named",
    [(8, False, "z = [" + ", ".join(["0.333333"] * 8) + "]"), (9, False, "z"), (9, True, "z[0]")],
)
def test_a_singular_start_is_named_with_its_values_up_to_eight_of_them(d, batch, named):
    """f = (Σx)(Σy) = −g is linear in y, so every start is singular; its values (to 6 decimals) are
    in the message when there are at most 8."""

    def losses(params):
        f = params[0].sum() * params[1].sum()
        return torch.stack([f, -f])

    game = games.Game(("x", "y"), ((4,), (d - 4,)), losses, name="flat")
    z = torch.full((d,), 1 / 3, dtype=F64)
    with pytest.raises(
        ValueError, match=re.escape(f"singular at {named}: its smallest singular value is 0,")
    ):
        games.check_follower(game, z[None] if batch else z)


def test_the_follower_check_forms_64_jacobians_at_once():
    """130 starts cost three batched Jacobian evaluations (64, 64 and 2 starts): one trace of the
    losses each."""
    calls = []

    def losses(params):
        calls.append(1)
        x, y = params[0].sum(), params[1].sum()
        return torch.stack([x * y, y**2 - x * y])

    games.check_follower(games.Game(("x", "y"), ((1,), (1,)), losses), torch.ones(130, 2, dtype=F64))
    assert len(calls) == 3


def test_newton_zero_stops_at_the_tolerance_or_after_its_steps():
    """On z ↦ z², Newton halves z exactly: z_n = z₀/2ⁿ, ‖field(z_n)‖ = z₀²/4ⁿ. With tol = 1e-12
    (4⁻²⁰ <= tol < 4⁻¹⁹) the default 20 steps reach it from 1 but not from 2; a norm equal to tol
    counts as reached, in the loop and after the last step."""
    field = lambda z: z**2
    one, two = t(1.0), t(2.0)
    assert newton_zero(field, one).item() == 2.0**-20
    assert newton_zero(field, two) is None
    assert newton_zero(field, two, steps=21).item() == 2.0**-20
    assert newton_zero(field, one, tol=2.0**-10).item() == 2.0**-5
    assert newton_zero(field, one, steps=5, tol=2.0**-10).item() == 2.0**-5
    assert newton_zero(field, one, steps=4, tol=2.0**-10) is None


def test_stackelberg_equilibrium_takes_newtons_steps_and_tolerance():
    """f = x³/3, g = y²/2: ∇_y f = 0, so ω_S = (x², y), and Newton from (2, 0) is at (2/2ⁿ, 0) with
    ‖ω_S‖ = 4/4ⁿ, as in `newton_zero`'s test: the default 20 steps leave 4⁻¹⁹ > 1e-12, the default
    tol; with tol = 2⁻¹⁰ it takes 6 steps, to 2⁻⁵."""

    def losses(params):
        x, y = params[0].sum(), params[1].sum()
        return torch.stack([x**3 / 3, y**2 / 2])

    game, two = games.Game(("x", "y"), ((1,), (1,)), losses, name="cubic_leader"), t(2.0, 0.0)
    assert games.stackelberg_equilibrium(game, two) is None
    assert games.stackelberg_equilibrium(game, two, steps=6, tol=2.0**-10).tolist() == [2.0**-5, 0.0]
    assert games.stackelberg_equilibrium(game, two, steps=5, tol=2.0**-10) is None


def test_play_and_play_batch_refuse_a_singular_start():
    """Stackelberg on x·y would silently be simultaneous GD (Fiez et al.'s leader gradient needs
    ∇²_{yy}g invertible): refused at the start, in one point or a batch."""
    game = games.bilinear()
    with pytest.raises(
        ValueError, match="the leader's implicit gradient through the follower's best response"
    ):
        games.play_batch(game, games.stackelberg(0.1), torch.ones(3, 2, dtype=F64), 2)
    regularised = games.play_batch(
        game, games.stackelberg(0.1, regularization=0.5), torch.ones(3, 2, dtype=F64), 2
    )
    assert regularised.params.shape == (3, 3, 2)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            {"timescale": 0},
            "timescale=0: τ is the follower's learning rate over the leader's; valid: a finite number > 0",
        ),
        (
            {"regularization": -1},
            "regularization=-1: ρ adds ρI to the follower's Hessian (0: the exact implicit gradient); "
            "valid: a finite number >= 0",
        ),
    ],
)
def test_a_refused_option_says_what_it_means(options, message):
    with pytest.raises(ValueError) as refused:
        games.stackelberg(0.1, **options)
    assert str(refused.value) == message
