"""The play loops: what they log, divergence as a result, and batches equal to separate runs."""

import pytest
import torch

import games

F64 = torch.float64


def test_play_logs_step_zero_and_every_step():
    rows = []
    game = games.bilinear()
    games.play(
        game,
        games.sim_gd(0.1),
        torch.tensor([1.0, 0.0], dtype=F64),
        3,
        log=lambda step, metrics: rows.append((step, metrics)),
    )
    assert [step for step, _ in rows] == [0, 1, 2, 3]
    assert rows[0][1] == {"loss/x": 0.0, "loss/y": -0.0, "grad_norm": 1.0, "dist": 1.0, "params": [1.0, 0.0]}
    assert rows[1][1]["params"] == pytest.approx([1.0, 0.1], abs=1e-15)  # y ascends xy: y⁺ = y + ηx


def test_a_diverging_run_stops_at_overflow_with_its_last_finite_point():
    game = games.bilinear()
    trajectory = games.play(game, games.sim_gd(1e30), torch.tensor([1.0, 1.0], dtype=F64), 100)
    assert trajectory.diverged_step is not None and 1 < trajectory.diverged_step < 100
    assert len(trajectory.params) == trajectory.diverged_step
    assert torch.isfinite(trajectory.params).all()


@pytest.mark.parametrize(
    "game_name,dynamics_name",
    [
        ("dirac_gan", "optimistic"),
        ("bilinear", "alt_gd"),
        ("dirac_gan", "momentum"),
        ("tandem", "sos"),
        ("matching_pennies", "cgd"),
        ("ipd", "lola"),
    ],
)
def test_batch_gives_the_same_trajectories_as_separate_runs(game_name, dynamics_name):
    game = games.make_game(game_name)
    dynamics = games.make_dynamics(dynamics_name, 0.3)
    starts = torch.stack([game.sample_init(torch.Generator().manual_seed(s)) for s in range(3)])
    batch = games.play_batch(game, dynamics, starts, 8)
    assert batch.params.shape == (9, 3, game.dim) and batch.diverged_step == [None, None, None]
    for k in range(3):
        alone = games.play(game, dynamics, starts[k], 8).params
        torch.testing.assert_close(batch.params[:, k], alone, rtol=1e-12, atol=1e-14)


def test_batch_freezes_a_diverged_run_and_keeps_the_others():
    game = games.bilinear()
    starts = torch.tensor([[1.0, 1.0], [1e300, 1e300]], dtype=F64)  # the second overflows xy at once
    batch = games.play_batch(game, games.sim_gd(10.0), starts, 5, log=lambda step, metrics: None)
    assert batch.diverged_step == [None, 1]
    assert torch.equal(batch.params[-1, 1], starts[1])  # stays at its last finite point
    torch.testing.assert_close(batch.params[:, 0], games.play(game, games.sim_gd(10.0), starts[0], 5).params)


def test_a_float32_or_integer_start_is_taken_in_the_games_dtype():
    """torch.tensor([1.0, 0.5]) is float32 and the bilinear game computes in float64: the start is
    converted (1 and 0.5 are exact in both), so the run equals the float64 run bit for bit; a
    float32 game takes a float64 start in float32."""
    game, dynamics = games.bilinear(), games.extragradient(0.1)
    exact = games.play(game, dynamics, torch.tensor([1.0, 0.5], dtype=F64), 5)
    single = games.play(game, dynamics, torch.tensor([1.0, 0.5]), 5)
    assert single.params.dtype == F64 and torch.equal(single.params, exact.params)
    whole = games.play(game, dynamics, torch.tensor([1, 2]), 1)
    assert whole.params.dtype == F64 and whole.params[0].tolist() == [1.0, 2.0]
    batch = games.play_batch(game, dynamics, torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 5)
    assert batch.params.dtype == F64 and torch.equal(batch.params[:, 0], exact.params)
    single32 = games.Game(
        ("a", "b"), ((1,), (1,)), lambda p: torch.stack([p[0] @ p[1], -(p[0] @ p[1])]), dtype=torch.float32
    )
    assert (
        games.play(single32, dynamics, torch.tensor([1.0, 0.5], dtype=F64), 1).params.dtype == torch.float32
    )


@pytest.mark.parametrize(
    "z0, batch, message",
    [
        (
            torch.ones(3),
            False,
            r"^the start z0 has shape \(3,\); valid: \(2,\), the 2 parameters of game 'bilinear' "
            r"\(x, y\) in one vector$",
        ),
        (torch.ones(1, 2), False, r"^the start z0 has shape \(1, 2\); valid: \(2,\)"),
        (torch.ones(2), True, r"^the start z0 has shape \(2,\); valid: \(B, 2\), .* in one vector per run$"),
        (torch.ones(4, 3), True, r"^the start z0 has shape \(4, 3\); valid: \(B, 2\)"),
        (
            torch.ones(2, dtype=torch.complex64),
            False,
            r"^the start z0 is torch.complex64; valid: real numbers \(the game is torch.float64\)$",
        ),
    ],
)
def test_a_start_of_another_shape_or_complex_is_refused_in_one_line(z0, batch, message):
    play = games.play_batch if batch else games.play
    with pytest.raises(ValueError, match=message):
        play(games.bilinear(), games.sim_gd(0.1), z0, 1)


def test_a_trajectory_keeps_every_step_it_logged():
    """sim_gd on the scalar bilinear game multiplies ‖z‖ by √(1 + η²) at every step."""
    logged = []
    run = games.play(
        games.bilinear(), games.sim_gd(0.1), torch.tensor([1.0, 0.0]), 4, lambda s, m: logged.append(s)
    )
    steps, dist = run.history["dist"]
    assert steps.tolist() == logged == [0, 1, 2, 3, 4]
    assert dist == pytest.approx([1.01 ** (t / 2) for t in range(5)], rel=1e-13)
    assert run.history.rows[-1] == {"step": 4, **run.last_finite}
