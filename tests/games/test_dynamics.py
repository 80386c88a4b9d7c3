"""Closed-form facts about each dynamics on the scalar bilinear game f = xy (σ = 1).

There ξ(z) = Jz with J = [[0, 1], [−1, 0]], JᵀJ = I and J² = −I, so each memoryless method is
z⁺ = Mz with M = aI + bJ, and ‖Mz‖ = √(a² + b²)‖z‖ for every z (aI + bJ is √(a² + b²) times a
rotation). The docstrings give a and b.
"""

import math

import pytest
import torch

import games

F64 = torch.float64
Z0 = torch.tensor([1.0, 0.5], dtype=F64)


def ratios(dynamics, steps=20, game=None, z0=Z0):
    trajectory = games.play(game or games.bilinear(), dynamics, z0, steps)
    norms = trajectory.params.norm(dim=1)
    return norms[1:] / norms[:-1]


def assert_every_ratio(dynamics, factor):
    torch.testing.assert_close(ratios(dynamics), torch.full((20,), factor, dtype=F64), rtol=1e-13, atol=0)


@pytest.mark.parametrize("lr", [0.1, 1.3])
def test_sim_gd_spirals_out_by_sqrt_one_plus_eta_squared(lr):
    """M = I − ηJ: a = 1, b = −η."""
    assert_every_ratio(games.sim_gd(lr), math.sqrt(1 + lr**2))


@pytest.mark.parametrize("lr", [0.5, 0.9])
def test_extragradient_factor(lr):
    """M = I − ηJ(I − ηJ) = (1 − η²)I − ηJ: ratio √((1 − η²)² + η²) = √(1 − η² + η⁴)."""
    assert_every_ratio(games.extragradient(lr), math.sqrt(1 - lr**2 + lr**4))


@pytest.mark.parametrize("lr,gamma", [(0.1, 1.0), (0.5, 2.0)])
def test_consensus_factor(lr, gamma):
    """ξ + γJᵀJz = (J + γI)z, so M = (1 − ηγ)I − ηJ: ratio √((1 − ηγ)² + η²)."""
    assert_every_ratio(games.consensus(lr, gamma=gamma), math.sqrt((1 - lr * gamma) ** 2 + lr**2))


@pytest.mark.parametrize("lr", [0.3, 5.0])
def test_cgd_is_the_proximal_point(lr):
    """H_o = J, so M = I − η(I + ηJ)⁻¹J = (I + ηJ)⁻¹: ratio 1/√(1 + η²), every η > 0."""
    assert_every_ratio(games.cgd(lr), 1 / math.sqrt(1 + lr**2))


@pytest.mark.parametrize("name", ["consensus", "hamiltonian", "sga", "lola", "sos", "cgd"])
def test_matrix_free_updates_match_the_dense_ones(name, monkeypatch):
    """Large games take Hessian products (and CGD an iterative solve) instead of dense H."""
    game = games.bilinear(dim=4, seed=2)
    z = game.sample_init(torch.Generator().manual_seed(0))
    dynamics = games.make_dynamics(name, 0.7)
    dense, _ = dynamics.update(game, z, ())
    monkeypatch.setattr("games.curvature.DENSE_UP_TO", 0)
    matrix_free, _ = dynamics.update(game, z, ())
    torch.testing.assert_close(matrix_free, dense, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lr", [0.4, 1.5])
def test_hamiltonian_factor(lr):
    """Hᵀξ = JᵀJz = z, so M = (1 − η)I: ratio |1 − ησ²|."""
    assert_every_ratio(games.hamiltonian(lr), abs(1 - lr))


def test_hamiltonian_with_lr_one_over_sigma_squared_solves_in_one_step():
    z1, _ = games.hamiltonian(1.0).update(games.bilinear(), Z0, ())
    assert torch.count_nonzero(z1) == 0


@pytest.mark.parametrize("lr", [0.8, 1.9])
def test_alt_gd_conserves_the_modified_energy(lr):
    """x⁺ = x − ηy, y⁺ = y + ηx⁺ (y ascends on xy): x⁺² + y⁺² − ηx⁺y⁺ = x² + y² − ηxy."""
    trajectory = games.play(games.bilinear(), games.alt_gd(lr), Z0, 20).params
    x, y = trajectory[:, 0], trajectory[:, 1]
    energy = x**2 + y**2 - lr * x * y
    torch.testing.assert_close(energy, torch.full_like(energy, energy[0].item()), rtol=1e-12, atol=0)
    assert trajectory.norm(dim=1).max() > 1.01 * Z0.norm()  # not conserving ‖z‖ itself


def test_optimistic_converges_below_one_over_root_three_and_diverges_above():
    """The augmented map (z, ξ_{t−1}) has ρ < 1 iff ησ < 1/√3 (Mokhtari et al. 2020); runs agree."""
    limit = 1 / math.sqrt(3)
    bilinear = games.bilinear()
    assert games.predicted_rate(bilinear, games.optimistic(limit - 1e-3)) < 1
    assert games.predicted_rate(bilinear, games.optimistic(limit + 1e-3)) > 1
    for lr, converges in [(0.45, True), (0.7, False)]:
        dist = games.play(bilinear, games.optimistic(lr), Z0, 200).params.norm(dim=1)
        assert (dist[-1] < 1e-2 * dist[0]) == converges, lr
        assert (dist[-1] > dist[0]) == (not converges), lr


@pytest.mark.parametrize("lr", [0.2, 0.4, 0.5])
def test_optimistic_rate_formula(lr):
    """For ησ ≤ ½ the rate is √((1 + √(1 − 4η²σ²))/2); ρ of the augmented map equals it."""
    expected = math.sqrt((1 + math.sqrt(1 - 4 * lr**2)) / 2)
    assert games.predicted_rate(games.bilinear(), games.optimistic(lr)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "alternating,beta,expected",
    [(True, -0.5, 0.9625), (True, None, 1.0), (True, 0.5, 1.269), (False, -0.5, 1.02)],
)
def test_momentum_rates_of_gidel_et_al(alternating, beta, expected):
    """η = 0.5, σ = 1 (Gidel et al. 2019): negative momentum converges only when alternating. Their
    β = 0 is alternating GD itself (momentum refuses it)."""
    dynamics = games.alt_gd(0.5) if beta is None else games.momentum(0.5, beta=beta, alternating=alternating)
    assert games.predicted_rate(games.bilinear(), dynamics) == pytest.approx(expected, abs=6e-4)


@pytest.mark.parametrize("beta", [0.0, 1.0, -1.0, 1.5, float("nan"), float("inf"), True, "0.5", None])
def test_momentum_outside_its_definition_is_refused(beta):
    """β = 0 is plain GD (sim_gd, alt_gd when alternating); |β| >= 1 never forgets a step."""
    with pytest.raises(
        ValueError, match=r"^beta=.*: heavy-ball momentum .*; valid: a number in \(-1, 0\) or \(0, 1\)$"
    ):
        games.momentum(0.3, beta=beta)


def test_alternating_momentum_first_steps_by_hand():
    """Bilinear f₁ = xy = −f₂, η = 0.5, β = 0.3, from (1, 1): x moves first on ∂ₓ(xy) = y, then y
    on −∂ᵧ(xy) = −x at the new x, each adding β times its own last move (none at the first step).
    Step 1: x = 1 − 0.5 = 0.5, y = 1 + 0.5·0.5 = 1.25; step 2: x = 0.5 − 0.625 + 0.3(−0.5) = −0.275,
    y = 1.25 + 0.5(−0.275) + 0.3(0.25) = 1.1875."""
    game = games.bilinear()
    z = torch.tensor([1.0, 1.0], dtype=torch.float64)
    path = games.play(game, games.momentum(0.5, beta=0.3, alternating=True), z, 2).params
    expected = torch.tensor([[1.0, 1.0], [0.5, 1.25], [-0.275, 1.1875]], dtype=torch.float64)
    torch.testing.assert_close(path, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("lr,gamma", [(0.3, 0.4)])
def test_sga_on_a_hamiltonian_game_is_consensus(lr, gamma):
    """A = H = J, ⟨ξ, Hᵀξ⟩ = 0 so the alignment sign is +1: ξ + γAᵀξ = ξ + γHᵀξ."""
    game = games.bilinear(dim=3, seed=5)
    z0 = game.sample_init(torch.Generator().manual_seed(1))
    a = games.play(game, games.sga(lr, gamma=gamma), z0, 15).params
    b = games.play(game, games.consensus(lr, gamma=gamma), z0, 15).params
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def sga_game(a):
    """f = (a/2)x² + xy + x, g = 3xy + y²/2: H = [[a, 1], [3, 1]] everywhere and ξ(0) = (1, 0)."""

    def losses(params):
        x, y = params[0].sum(), params[1].sum()
        return torch.stack([0.5 * a * x**2 + x * y + x, 3 * x * y + 0.5 * y**2])

    return games.Game(("x", "y"), ((1,), (1,)), losses, name="sga")


@pytest.mark.parametrize(
    "a,gamma,y_next", [(0.1, None, 0.5), (0.1, 0.5, 0.25), (0.2, 0.5, 0.0), (0.4, 0.5, -0.25)]
)
def test_sga_alignment_sign_in_each_regime(a, gamma, y_next):
    """At z = 0: Hᵀξ = (a, 1), Hξ = (a, 3), Aᵀξ = (0, −1), so the alignment
    ⟨ξ, Hᵀξ⟩⟨Aᵀξ, Hᵀξ⟩/d + ε = −a/2 + 0.1 and λ = γ·sign(·) is γ at a = 0.1, exactly 0 at a = 0.2
    and −γ at a = 0.4; z⁺ = −η(ξ + λAᵀξ) = (−η, ηλ) with η = 0.5. The default γ is 1."""
    dynamics = games.sga(0.5) if gamma is None else games.sga(0.5, gamma=gamma)
    z1, _ = dynamics.update(sga_game(a), torch.zeros(2, dtype=F64), ())
    assert z1.tolist() == [-0.5, y_next]


def test_cgd_on_a_large_game_takes_cg_iters_conjugate_gradient_steps(monkeypatch):
    """Matrix-free CGD solves MᵀMv = Mᵀξ, M = I + ηH_o, by conjugate gradients. On xᵀSy with
    S = diag(1, …, 21), MᵀM = I + η²diag(S², S²) has 21 distinct eigenvalues, so 21 steps reach the
    proximal point (I + ηJ)⁻¹z (up to rounding) and 20, the default, do not."""
    sigma = torch.arange(1, 22, dtype=F64)

    def losses(params):
        f = params[0] @ (sigma * params[1])
        return torch.stack([f, -f])

    game = games.Game(("x", "y"), ((21,), (21,)), losses, name="diagonal")
    monkeypatch.setattr("games.curvature.DENSE_UP_TO", 0)
    lr, z = 0.1, torch.ones(42, dtype=F64)
    jacobian = torch.zeros(42, 42, dtype=F64)
    jacobian[:21, 21:], jacobian[21:, :21] = torch.diag(sigma), -torch.diag(sigma)
    proximal = torch.linalg.solve(torch.eye(42, dtype=F64) + lr * jacobian, z)
    exact, _ = games.cgd(lr, cg_iters=21).update(game, z, ())
    torch.testing.assert_close(exact, proximal, rtol=0, atol=1e-13)
    default, _ = games.cgd(lr).update(game, z, ())
    twenty, _ = games.cgd(lr, cg_iters=20).update(game, z, ())
    assert torch.equal(default, twenty)
    assert torch.linalg.vector_norm(default - proximal) > 1e-11  # 2.5e-10


def test_cgd_keeps_the_dtype_of_z_whatever_the_default_dtype():
    """A float32 game under torch's float64 default: (I + ηJ)⁻¹z on xy, η = 0.5, z = (1, 0.5), is
    (1 − 0.25, 0.5 + 0.5)/1.25 = (0.6, 0.8), in float32."""

    def losses(params):
        f = params[0].sum() * params[1].sum()
        return torch.stack([f, -f])

    game = games.Game(("x", "y"), ((1,), (1,)), losses, name="xy32")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        z1, _ = games.cgd(0.5).update(game, torch.tensor([1.0, 0.5], dtype=torch.float32), ())
    finally:
        torch.set_default_dtype(previous)
    assert z1.dtype == torch.float32
    torch.testing.assert_close(z1, torch.tensor([0.6, 0.8]), rtol=1e-6, atol=0)


@pytest.mark.parametrize("alpha", [0.35])
def test_lola_on_bilinear_is_consensus_with_twice_the_lookahead(alpha):
    """On xᵀAy, H_o = J: H_oξ = J²z = −(AAᵀx, AᵀAy) and χ = (−AAᵀx, −AᵀAy), so
    ξ − αH_oξ − αχ = ξ + 2αJᵀJz = ξ + 2αHᵀξ."""
    game = games.bilinear(dim=2, seed=3)
    z0 = game.sample_init(torch.Generator().manual_seed(2))
    a = games.play(game, games.lola(0.2, lookahead=alpha), z0, 15).params
    b = games.play(game, games.consensus(0.2, gamma=2 * alpha), z0, 15).params
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_sos_near_the_fixed_point_is_lookahead():
    """p₂ = ‖ξ‖² → 0, so SOS's linearisation is LookAhead's, (I − αH_o)ξ, i.e. extragradient's
    on a bilinear game when α = η."""
    game = games.bilinear()
    for lr in (0.2, 0.6):
        assert games.predicted_rate(game, games.sos(lr)) == pytest.approx(
            math.sqrt(1 - lr**2 + lr**4), rel=1e-12
        )


def sos_game(c, k, n):
    """L₁ = xy + cx + ky, L₂ = xy + nx: at z = 0, ξ = (y + c, x) = (c, 0), H_o = [[0, 1], [1, 0]] and
    χ = (∂_xξ₂ ∂_yL₁, ∂_yξ₁ ∂_xL₂) = (x + k, y + n) = (k, n)."""

    def losses(params):
        x, y = params[0].sum(), params[1].sum()
        return torch.stack([x * y + c * x + k * y, x * y + n * x])

    return games.Game(("x", "y"), ((1,), (1,)), losses, name="sos")


@pytest.mark.parametrize(
    "c,k,n,options,p",
    [
        (1.0, 2.5, 0.0, {}, 0.5),  # ⟨−αχ, ξ₀⟩ = −1.25: p₁ = a‖ξ₀‖²/1.25 = 0.5 with a = 0.5
        (1.0, 2.5, 0.0, {"a": 0.25}, 0.25),
        (1.0, 1.0, 0.0, {}, 1.0),  # ⟨−αχ, ξ₀⟩ = −0.5: a‖ξ₀‖²/0.5 = 1.25, clipped to p₁ = 1
        (1.0, -1.0, 0.0, {}, 1.0),  # ⟨−αχ, ξ₀⟩ = 0.5 ≥ 0: p₁ = 1
        (1.0, 1.0, 2.0, {}, 1.0),  # ⟨−αχ, ξ₀⟩ = 0 exactly, χ ≠ 0: p₁ = 1
        (0.125, -1.0, 0.0, {}, 1.0),  # ‖ξ‖ = 0.125 ≥ b = 0.1: p₂ = 1
        (0.0625, -1.0, 0.0, {}, 0.0625**2),  # ‖ξ‖ < b = 0.1: p₂ = ‖ξ‖²
        (0.0625, -1.0, 0.0, {"b": 0.05}, 1.0),  # ‖ξ‖ ≥ b = 0.05: p₂ = 1
        (0.125, -1.0, 0.0, {"b": 0.125}, 1.0),  # ‖ξ‖ = b exactly: p₂ = 1
    ],
)
def test_sos_shaping_weight_in_each_regime(c, k, n, options, p):
    """On `sos_game` at z = 0 with α = η = 0.5: ξ₀ = (I − αH_o)ξ = (c, −c/2), ‖ξ₀‖² = 1.25c² and
    ⟨−αχ, ξ₀⟩ = −c(k − n/2)/2, so p₁ = 1 where that is ≥ 0, else min(1, a‖ξ₀‖²/(c(k − n/2)/2));
    p₂ = c² where |c| < b, else 1. The step is z⁺ = −η(ξ₀ − pαχ) = (−c/2 + pk/4, c/4 + pn/4), with
    p = min(p₁, p₂). The defaults are a = 0.5, b = 0.1."""
    z1, _ = games.sos(0.5, **options).update(sos_game(c, k, n), torch.zeros(2, dtype=F64), ())
    assert z1.tolist() == [-c / 2 + p * k / 4, c / 4 + p * n / 4]


def test_sos_differentiates_in_reverse_mode_at_a_fixed_point():
    """At z = 0 on xy, ξ = ξ₀ = χ = 0, so ⟨−αχ, ξ₀⟩ = 0 and p₁'s unused branch would be 0/0; the
    Jacobian is LookAhead's, I − η(I − αH_o)H = (1 − ηα)I − ηJ (H = H_o = J, J² = −I), by
    reverse-mode differentiation as by forward mode."""
    lr = 0.5
    step = lambda z: games.sos(lr).update(games.bilinear(), z, ())[0]
    jacobian = torch.tensor([[0.75, -0.5], [0.5, 0.75]], dtype=F64)
    zero = torch.zeros(2, dtype=F64)
    torch.testing.assert_close(torch.func.jacrev(step)(zero), jacobian, rtol=0, atol=1e-15)
    torch.testing.assert_close(torch.func.jacfwd(step)(zero), jacobian, rtol=0, atol=1e-15)


def test_sos_refuses_a_zero_lookahead_by_name():
    with pytest.raises(ValueError, match="lookahead=0.0: SOS looks α ahead at the opponents' step"):
        games.sos(0.5, lookahead=0.0)
