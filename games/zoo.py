"""Built-in games, each a factory returning a `Game` (float64, with its equilibrium where isolated).

Conventions: in two-player zero-sum games the first player minimises f and the second maximises
it, so the losses are (f, −f). Mixed strategies are logits: a sigmoid for two actions, a softmax
with the last logit pinned at 0 for three (so the uniform equilibrium is the isolated point 0).
"""

from __future__ import annotations

import torch
from torch import Tensor

from games.game import Game
from registration.ranges import check_integer, check_number, check_seed

_F64 = torch.float64
MAX_DIM = 4096  # a coupling A of at most 4096² float64 numbers, 128 MiB


def _zero_sum(f: Tensor) -> Tensor:
    return torch.stack([f, -f])


def _coupling(dim: int, seed: int) -> Tensor:
    """A = 1 for dim 1, else a seeded standard normal dim × dim matrix."""
    why = "each player holds dim parameters, coupled by a dense dim × dim matrix A (128 MiB at 4096)"
    check_integer("dim", dim, why, 1, MAX_DIM)
    check_seed("seed", seed)
    if dim == 1:
        return torch.ones(1, 1, dtype=_F64)
    return torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=_F64)


def bilinear(dim: int = 1, seed: int = 0) -> Game:
    """f(x, y) = xᵀAy, x minimises, y maximises; ξ = Jz with J = [[0, A], [−Aᵀ, 0]]."""
    a = _coupling(dim, seed)
    return Game(
        ("x", "y"),
        ((dim,), (dim,)),
        lambda p: _zero_sum(p[0] @ a @ p[1]),
        equilibrium=torch.zeros(2 * dim, dtype=_F64),
        name="bilinear",
    )


def quadratic(dim: int = 1, seed: int = 0, mu: float = 1.0) -> Game:
    """f(x, y) = (μ/2)‖x‖² + xᵀAy − (μ/2)‖y‖²: strongly convex-concave, coupled by A."""
    check_number("mu", mu, "μ > 0 makes f strongly convex-concave; μ = 0 is the bilinear game", above=0)
    a = _coupling(dim, seed)

    def losses(p):
        x, y = p
        return _zero_sum(0.5 * mu * (x @ x) + x @ a @ y - 0.5 * mu * (y @ y))

    return Game(
        ("x", "y"), ((dim,), (dim,)), losses, equilibrium=torch.zeros(2 * dim, dtype=_F64), name="quadratic"
    )


def matching_pennies() -> Game:
    """Player 1 wins ±1 on a match: f = −(2p − 1)(2q − 1), p = σ(θ₁), q = σ(θ₂); f ≈ −θ₁θ₂/4 at 0."""

    def losses(p):
        u = (2 * torch.sigmoid(p[0]) - 1) * (2 * torch.sigmoid(p[1]) - 1)
        return _zero_sum(-u.sum())

    return Game(
        ("player1", "player2"),
        ((1,), (1,)),
        losses,
        equilibrium=torch.zeros(2, dtype=_F64),
        name="matching_pennies",
    )


_RPS_PAYOFF = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], dtype=_F64)


def rock_paper_scissors() -> Game:
    """f = −pᵀMq with M the ±1 payoff of rock, paper, scissors; p = softmax(θ₁, 0)."""

    def strategy(logits: Tensor) -> Tensor:
        return torch.softmax(torch.cat([logits, logits.new_zeros(1)]), dim=0)

    def losses(p):
        return _zero_sum(-(strategy(p[0]) @ _RPS_PAYOFF @ strategy(p[1])))

    return Game(
        ("player1", "player2"),
        ((2,), (2,)),
        losses,
        equilibrium=torch.zeros(4, dtype=_F64),
        name="rock_paper_scissors",
    )


def dirac_gan(r1: float = 0.0) -> Game:
    """Mescheder et al. 2018: L(θ, ψ) = f(ψθ) + f(0), f(t) = −log(1 + e^{−t}); generator θ
    minimises L, discriminator ψ maximises it minus the R1 penalty (r1/2)ψ². Eigenvalues of
    H = ∂ξ/∂z at 0: (r1 ± √(r1² − 1))/2 (the paper's (−γ ± √(γ² − 1))/2 are those of −H)."""
    check_number("r1", r1, "the discriminator's R1 penalty (r1/2)ψ² has weight r1 (0: none)", low=0)

    def f(t: Tensor) -> Tensor:
        return -torch.nn.functional.softplus(-t)

    def losses(p):
        theta, psi = p[0].sum(), p[1].sum()
        value = f(psi * theta) + f(torch.zeros_like(theta))
        return torch.stack([value, -value + 0.5 * r1 * psi**2])

    return Game(
        ("generator", "discriminator"),
        ((1,), (1,)),
        losses,
        equilibrium=torch.zeros(2, dtype=_F64),
        name="dirac_gan",
    )


def tandem() -> Game:
    """Letcher et al. 2019: L₁ = (x + y)² − 2x, L₂ = (x + y)² − 2y; fixed points on x + y = 1."""

    def losses(p):
        s = (p[0] + p[1]).sum()
        return torch.stack([s**2 - 2 * p[0].sum(), s**2 - 2 * p[1].sum()])

    return Game(("x", "y"), ((1,), (1,)), losses, name="tandem")


def duopoly() -> Game:
    """Cournot's duopoly: firm i sells q_i at the price 3 − q₁ − q₂ (demand net of marginal cost)
    and its loss is minus its profit, q_i(q₁ + q₂ − 3). Nash (Cournot 1838), the `equilibrium`:
    q = (1, 1), profits 1 and 1. With firm 1 leading (von Stackelberg 1934) firm 2 best responds
    q₂ = (3 − q₁)/2, so the leader's loss is (q₁² − 3q₁)/2: the Stackelberg point is (3/2, 3/4),
    profits 9/8 and 9/16."""

    def losses(p):
        q1, q2 = p[0].sum(), p[1].sum()
        return torch.stack([q1 * (q1 + q2 - 3), q2 * (q1 + q2 - 3)])

    return Game(
        ("firm1", "firm2"), ((1,), (1,)), losses, equilibrium=torch.ones(2, dtype=_F64), name="duopoly"
    )


# Rewards of the iterated prisoner's dilemma for states CC, CD, DC, DD (player 1's move first).
_IPD_REWARDS = torch.tensor([[-1.0, -1.0], [-3.0, 0.0], [0.0, -3.0], [-2.0, -2.0]], dtype=_F64)
_IPD_SWAP = [0, 1, 3, 2, 4]  # player 2 sees CD as DC


def ipd(gamma: float = 0.96) -> Game:
    """Foerster et al. 2018: memory-one policies, logits of cooperating at the first move and
    after CC, CD, DC, DD. Exact value V = p₀ᵀ(I − γP)⁻¹r; loss = average per-step cost (1 − γ)(−V)."""
    check_number("gamma", gamma, "the discount γ of the infinite game's value", above=0, below=1)

    def joint(a: Tensor, b: Tensor) -> Tensor:  # (..., 4): CC, CD, DC, DD
        return torch.stack([a * b, a * (1 - b), (1 - a) * b, (1 - a) * (1 - b)], dim=-1)

    def losses(p):
        coop1, coop2 = torch.sigmoid(p[0]), torch.sigmoid(p[1])[_IPD_SWAP]  # (5,)
        start = joint(coop1[0], coop2[0])  # (4,)
        transition = joint(coop1[1:], coop2[1:])  # (4, 4)
        eye = torch.eye(4, dtype=transition.dtype, device=transition.device)
        # inv, not solve: vmap over jacfwd through linalg.solve is wrong in torch 2.14 (batches).
        values = start @ torch.linalg.inv(eye - gamma * transition) @ _IPD_REWARDS  # (2,)
        return -(1 - gamma) * values

    return Game(("player1", "player2"), ((5,), (5,)), losses, name="ipd")
