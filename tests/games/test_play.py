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
