"""Built-in games against their closed forms: equilibria, Jacobians, values."""

import math

import numpy as np
import pytest
import torch

import games

F64 = torch.float64


@pytest.mark.parametrize(
    "name", [n for n in games.GAMES if n not in ("tandem", "ipd", "gaussian_mixture_gan")]
)
def test_the_equilibrium_is_a_fixed_point(name):
    game = games.make_game(name)
    assert torch.count_nonzero(game.field(game.equilibrium)) == 0


def test_bilinear_jacobian_is_J():
    """ξ = (Ay, −Aᵀx), so H = [[0, A], [−Aᵀ, 0]] exactly."""
    game = games.bilinear(dim=3, seed=4)
    a = torch.randn(3, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    zero = torch.zeros(3, 3, dtype=F64)
    expected = torch.cat([torch.cat([zero, a], 1), torch.cat([-a.T, zero], 1)])
    z = torch.linspace(-1, 1, 6, dtype=F64)
    torch.testing.assert_close(games.field_jacobian(game, z), expected, rtol=0, atol=1e-15)


def test_matching_pennies_is_locally_bilinear_with_sigma_a_quarter():
    """f = −(2σ(θ₁) − 1)(2σ(θ₂) − 1) ≈ −θ₁θ₂/4, so H(0) = [[0, −¼], [¼, 0]]."""
    game = games.matching_pennies()
    expected = torch.tensor([[0.0, -0.25], [0.25, 0.0]], dtype=F64)
    torch.testing.assert_close(games.field_jacobian(game, game.equilibrium), expected)


@pytest.mark.parametrize("r1", [0.0, 0.5, 2.0])
def test_dirac_gan_eigenvalues(r1):
    """H(0) = [[0, f′(0)], [−f′(0), r1]] with f′(0) = ½: λ = (r1 ± √(r1² − 1))/2, the negatives
    of Mescheder et al.'s (−γ ± √(γ² − 1))/2, which are eigenvalues of the ascent field −ξ."""
    game = games.dirac_gan(r1=r1)
    root = complex(r1**2 - 1) ** 0.5
    expected = sorted([(r1 - root) / 2, (r1 + root) / 2], key=lambda c: (c.real, c.imag))
    found = games.eigenvalues(games.field_jacobian(game, game.equilibrium))
    assert found.tolist() == pytest.approx(expected, abs=1e-12)


def test_zero_sum_and_potential_parts():
    """Bilinear and rock-paper-scissors at equilibrium are purely Hamiltonian (S = 0);
    tandem's H = [[2, 2], [2, 2]] is purely potential (A = 0)."""
    for game in (games.bilinear(dim=2, seed=1), games.rock_paper_scissors()):
        sym, antisym = games.potential_hamiltonian_split(games.field_jacobian(game, game.equilibrium))
        assert sym.abs().max() < 1e-15 and antisym.abs().max() > 0.1
    game = games.tandem()
    sym, antisym = games.potential_hamiltonian_split(games.field_jacobian(game, torch.ones(2, dtype=F64)))
    assert antisym.abs().max() == 0
    torch.testing.assert_close(sym, torch.full((2, 2), 2.0, dtype=F64))


def test_tandem_field_vanishes_on_the_line_x_plus_y_equals_one():
    game = games.tandem()
    z = torch.tensor([0.3, 0.4], dtype=F64)
    torch.testing.assert_close(game.field(z), torch.full((2,), 2 * 0.7 - 2, dtype=F64))
    assert torch.count_nonzero(game.field(torch.tensor([1.75, -0.75], dtype=F64))) == 0


def _ipd_value_by_series(coop1: np.ndarray, coop2: np.ndarray, gamma: float, rounds: int = 3000):
    """Σ_t γ^t E[r_t], summed round by round: the second implementation of the exact value."""
    rewards = np.array([[-1, -1], [-3, 0], [0, -3], [-2, -2]], dtype=float)
    mine = coop2[[0, 1, 3, 2, 4]]  # player 2's logits are indexed from its own point of view

    def joint(a, b):
        return np.stack([a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)], -1)

    state, transition = joint(coop1[0], mine[0]), joint(coop1[1:], mine[1:])
    total = np.zeros(2)
    for t in range(rounds):
        total += gamma**t * state @ rewards
        state = state @ transition
    return -(1 - gamma) * total


def test_ipd_value_matches_the_discounted_series():
    game = games.ipd()
    z = torch.tensor([0.3, -1.2, 2.0, 0.1, -0.4, 1.1, 0.2, -2.0, 0.7, 0.0], dtype=F64)
    p = torch.sigmoid(z).numpy()
    expected = _ipd_value_by_series(p[:5], p[5:], 0.96)
    np.testing.assert_allclose(game.losses(z).numpy(), expected, rtol=1e-12)


def test_ipd_tit_for_tat_against_always_defect():
    """TFT loses the first round (3) then meets defection (2) forever: loss = 3(1 − γ) + 2γ."""
    big = 40.0  # σ(±40) is 1 or 0 to double precision
    tit_for_tat = [big, big, -big, big, -big]  # first, after CC, CD, DC, DD (own view)
    always_defect = [-big] * 5
    losses = games.ipd().losses(torch.tensor(tit_for_tat + always_defect, dtype=F64))
    gamma = 0.96
    assert losses.tolist() == pytest.approx([3 * (1 - gamma) + 2 * gamma, 2 * gamma], abs=1e-12)


def test_gaussian_mixture_gan_is_seeded_and_finite():
    game = games.gaussian_mixture_gan(seed=3)
    z = game.sample_init(torch.Generator().manual_seed(0))
    assert game.players == ("generator", "discriminator") and game.dim == 354 + 337
    assert torch.isfinite(game.field(z)).all()
    torch.testing.assert_close(game.losses(z), games.gaussian_mixture_gan(seed=3).losses(z), rtol=0, atol=0)
    assert not torch.equal(game.losses(z), games.gaussian_mixture_gan(seed=4).losses(z))


def test_ring_of_gaussians_sits_on_the_circle():
    from games.gan import ring_of_gaussians

    points = ring_of_gaussians(2000, torch.Generator().manual_seed(0))
    radius = points.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.01
    angles = torch.remainder(torch.atan2(points[:, 1], points[:, 0]) / (2 * math.pi / 8), 1.0)
    assert ((angles < 0.06) | (angles > 0.94)).all()  # within 5 std of one of the 8 modes


def test_unknown_game_and_bad_options_are_errors():
    with pytest.raises(ValueError, match="unknown game 'nope'; valid: bilinear, quadratic"):
        games.make_game("nope")
    with pytest.raises(ValueError, match="takes no option 'dim'; valid: r1"):
        games.make_game("dirac_gan", dim=2)
    with pytest.raises(ValueError, match="cannot load game"):
        games.make_game("no_such_module_xyz:factory")


def test_the_two_parts_sum_to_the_jacobian():
    """S = (H + Hᵀ)/2 and A = (H − Hᵀ)/2, so S + A = H exactly, S symmetric, A antisymmetric."""
    jacobian = torch.tensor([[1.0, 2.0], [-4.0, 3.0]], dtype=F64)
    sym, antisym = games.potential_hamiltonian_split(jacobian)
    assert torch.equal(sym, torch.tensor([[1.0, -1.0], [-1.0, 3.0]], dtype=F64))
    assert torch.equal(antisym, torch.tensor([[0.0, 3.0], [-3.0, 0.0]], dtype=F64))
