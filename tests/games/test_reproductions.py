"""Published behaviour of the dynamics on the nonlinear toy games (see REFERENCES.md)."""

import pytest
import torch

import games

F64 = torch.float64


def final(game, dynamics, z0, steps):
    trajectory = games.play(game, dynamics, z0, steps)
    assert trajectory.diverged_step is None
    return trajectory.params


def test_dirac_gan_sim_gd_leaves_and_extragradient_reaches_the_equilibrium():
    """Mescheder et al. 2018: eigenvalues ±i/2 at 0, so simultaneous GD spirals out while
    extragradient contracts (by √(1 − η²/4 + η⁴/16) per step near 0)."""
    game, z0 = games.dirac_gan(), torch.tensor([1.0, 1.0], dtype=F64)
    outward = game.distance(final(game, games.sim_gd(0.5), z0, 100))
    assert (outward[1:] > outward[:-1]).all() and outward[-1] > 2.0
    inward = game.distance(final(game, games.extragradient(1.0), z0, 150))
    assert inward[-1] < 1e-5


@pytest.mark.slow
def test_dirac_gan_sim_gd_drift_over_5000_steps():
    """REFERENCES.md: from ‖z‖ = 1.41 to about 3.6 over 5000 steps at η = 0.1; alternating GD
    stays near its starting radius."""
    game, z0 = games.dirac_gan(), torch.tensor([1.0, 1.0], dtype=F64)
    assert game.distance(final(game, games.sim_gd(0.1), z0, 5000))[-1] == pytest.approx(3.6, abs=0.1)
    alternating = game.distance(final(game, games.alt_gd(0.1), z0, 5000))
    assert alternating.min() > 1.3 and alternating.max() < 1.55


def test_tandem_lola_is_biased_and_sos_is_not():
    """LOLA's fixed point solves 2s − 2 − α(8s − 4) = 0: s = x + y = (1 − 2α)/(1 − 4α) (4/3 at
    α = 0.1); SOS switches the shaping off near fixed points (p = ‖ξ‖² → 0) and reaches s = 1."""
    game, z0, alpha = games.tandem(), torch.tensor([0.3, -0.2], dtype=F64), 0.1
    lola = final(game, games.lola(0.1, lookahead=alpha), z0, 60)[-1].sum().item()
    assert lola == pytest.approx((1 - 2 * alpha) / (1 - 4 * alpha), abs=1e-6)
    sos = final(game, games.sos(0.1, lookahead=alpha), z0, 60)[-1].sum().item()
    assert sos == pytest.approx(1.0, abs=1e-6)


def test_tandem_sim_gd_contracts_the_sum_by_one_minus_four_eta():
    """ξ = (2s − 2)(1, 1), so s⁺ − 1 = (1 − 4η)(s − 1)."""
    params = final(games.tandem(), games.sim_gd(0.1), torch.tensor([0.3, -0.2], dtype=F64), 10)
    gap = params.sum(dim=1) - 1
    torch.testing.assert_close(gap[1:] / gap[:-1], torch.full((10,), 0.6, dtype=F64), rtol=1e-12, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lola", "sos", "sga", "cgd"])
def test_matching_pennies_opponent_aware_methods_reach_the_mixed_equilibrium(name):
    """η = 1, 200 steps, N(0, 1) start: |p − ½| < 0.01 (naive GD stays far: next test)."""
    game = games.matching_pennies()
    for seed in range(3):
        z0 = game.sample_init(torch.Generator().manual_seed(seed))
        p = torch.sigmoid(final(game, games.make_dynamics(name, 1.0), z0, 200)[-1])
        assert (p - 0.5).abs().max() < 0.01


@pytest.mark.slow
def test_matching_pennies_naive_gd_stays_far():
    game = games.matching_pennies()
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    p = torch.sigmoid(final(game, games.sim_gd(1.0), z0, 200)[-1])
    assert (p - 0.5).abs().max() > 0.1


@pytest.mark.slow
def test_ipd_lola_cooperates_where_naive_learners_defect():
    """Foerster et al. 2018 (η = 1 on the discounted return −V, i.e. η = 1/(1 − γ) = 25 on the
    per-step loss used here), N(0, 1) starts, 200 steps: naive learners end near 2 (mutual
    defection) every time; LOLA and SOS near 1 (mutual cooperation) in most runs (7 of these 8
    seeds each; the others end in exploitation or defection, as in the papers' spread)."""
    game = games.ipd()
    lr = 1 / (1 - 0.96)
    for name, bound in (("sim_gd", None), ("lola", 1.1), ("sos", 1.1)):
        mean_losses = []
        for seed in range(8):
            z0 = game.sample_init(torch.Generator().manual_seed(seed))
            mean_losses.append(game.losses(final(game, games.make_dynamics(name, lr), z0, 200)[-1]).mean())
        mean_losses = torch.stack(mean_losses)
        if bound is None:
            assert (mean_losses > 1.9).all()
        else:
            assert (mean_losses < bound).sum() >= 6 and mean_losses.median() < 1.01, name


SMALL_GAMES = [name for name in games.GAMES if name != "gaussian_mixture_gan"]


@pytest.mark.parametrize("dynamics_name", list(games.DYNAMICS))
def test_every_dynamics_runs_on_every_small_game(dynamics_name):
    for game_name in SMALL_GAMES:
        game = games.make_game(game_name)
        z0 = game.sample_init(torch.Generator().manual_seed(0))
        # the bilinear follower is linear in y: Stackelberg needs its regulariser there
        options = {"regularization": 1.0} if (dynamics_name, game_name) == ("stackelberg", "bilinear") else {}
        params = final(game, games.make_dynamics(dynamics_name, 0.05, **options), z0, 2)
        assert params.shape == (3, game.dim) and not torch.equal(params[0], params[-1])


@pytest.mark.slow
@pytest.mark.parametrize("dynamics_name", list(games.DYNAMICS))
def test_every_dynamics_runs_on_the_gan(dynamics_name):
    game = games.gaussian_mixture_gan()
    z0 = game.sample_init(torch.Generator().manual_seed(0))
    params = final(game, games.make_dynamics(dynamics_name, 0.05), z0, 2)
    assert torch.isfinite(params).all() and not torch.equal(params[0], params[-1])


def test_options_that_do_not_apply_are_errors():
    with pytest.raises(ValueError, match="dynamics 'sim_gd' takes no option 'gamma'; valid: none"):
        games.make_dynamics("sim_gd", 0.1, gamma=1.0)
    with pytest.raises(ValueError, match="takes no option 'beta'; valid: lookahead"):
        games.make_dynamics("lola", 0.1, beta=0.5)
    with pytest.raises(ValueError, match="unknown dynamics 'sgd'; valid: sim_gd, alt_gd"):
        games.make_dynamics("sgd", 0.1)
    for lr in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"^lr=.*: the learning rate η .*; valid: a finite number > 0$"):
            games.make_dynamics("sim_gd", lr)
