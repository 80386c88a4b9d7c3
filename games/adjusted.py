"""Second-order dynamics that adjust ξ with the game Hessian H = ∂ξ/∂z and its off-diagonal H_o.

Each update reads one `Curvature` at z (dense for small games, matrix-free for large ones), except
`stackelberg`, which needs the follower's own Hessian block as a matrix to invert. Branches are
`torch.where`s, so the updates run under `vmap` and `jacfwd` like the first-order ones.
Notation: ∇L the matrix of the players' full loss gradients, η the learning rate.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor
from torch.func import grad, jacfwd, vjp

from bilevel.solvers import conjugate_gradient
from games.curvature import Curvature, curvature
from games.dynamics import Dynamics, _stateless
from games.game import Game

_ALIGN_EPS = 0.1  # ε in the sign of SGA's alignment (Balduzzi et al. 2018, Algorithm 1)


def consensus(lr: float, gamma: float = 1.0) -> Dynamics:
    """Consensus optimisation (Mescheder et al. 2017): z⁺ = z − η(ξ + γHᵀξ), Hᵀξ = ∇½‖ξ‖²."""

    def step(game: Game, z: Tensor) -> Tensor:
        curv = curvature(game, z)
        return z - lr * (curv.field + gamma * curv.h_t(curv.field))

    return _stateless(step)


def hamiltonian(lr: float) -> Dynamics:
    """Hamiltonian gradient descent (Balduzzi et al. 2018; Abernethy et al. 2019):
    z⁺ = z − ηHᵀξ, plain descent on ½‖ξ‖²."""

    def step(game: Game, z: Tensor) -> Tensor:
        curv = curvature(game, z)
        return z - lr * curv.h_t(curv.field)

    return _stateless(step)


def sga(lr: float, gamma: float = 1.0) -> Dynamics:
    """Symplectic gradient adjustment (Balduzzi et al. 2018): z⁺ = z − η(ξ + λAᵀξ), A = (H − Hᵀ)/2
    the antisymmetric part of H, λ = γ·sign(⟨ξ, Hᵀξ⟩⟨Aᵀξ, Hᵀξ⟩/d + ε), ε = 0.1."""

    def step(game: Game, z: Tensor) -> Tensor:
        curv = curvature(game, z)
        field = curv.field
        ham_grad = curv.h_t(field)  # Hᵀξ
        antisym = 0.5 * (ham_grad - curv.h(field))  # Aᵀξ
        align = (field @ ham_grad) * (antisym @ ham_grad) / game.dim + _ALIGN_EPS
        return z - lr * (field + gamma * torch.sign(align) * antisym)

    return _stateless(step)


def _lookahead_and_shaping(game: Game, curv: Curvature, alpha: float) -> tuple[Tensor, Tensor]:
    """(ξ − αH_oξ, χ) with χ = diag(H_oᵀ∇L): χ_i = Σ_{j≠i} (∂ξ_j/∂θ_i)ᵀ ∇_j L_i, the term by
    which player i shapes the others' next step (Letcher et al. 2019)."""
    # (H_o)_ii = 0, so block i of H_oᵀ∇L_i already sums over j ≠ i only.
    shaping = torch.cat([curv.h_o_t(curv.loss_grads[i])[block] for i, block in enumerate(game.blocks())])
    return curv.field - alpha * curv.h_o(curv.field), shaping


def lola(lr: float, lookahead: float | None = None) -> Dynamics:
    """LOLA (Foerster et al. 2018) in its Taylor form: z⁺ = z − η((I − αH_o)ξ − αχ),
    α = lookahead (default η). On xᵀAy it equals consensus with γ = 2α."""
    alpha = lr if lookahead is None else lookahead

    def step(game: Game, z: Tensor) -> Tensor:
        looked_ahead, shaping = _lookahead_and_shaping(game, curvature(game, z), alpha)
        return z - lr * (looked_ahead - alpha * shaping)

    return _stateless(step)


def sos(lr: float, lookahead: float | None = None, a: float = 0.5, b: float = 0.1) -> Dynamics:
    """Stable opponent shaping (Letcher et al. 2019, Algorithm 1): z⁺ = z − η(ξ₀ − pαχ) with
    ξ₀ = (I − αH_o)ξ; p = min(p₁, p₂), p₁ = 1 if ⟨−αχ, ξ₀⟩ ≥ 0 else min(1, −a‖ξ₀‖²/⟨−αχ, ξ₀⟩),
    p₂ = ‖ξ‖² if ‖ξ‖ < b else 1. LOLA's shaping away from fixed points, LookAhead near them."""
    alpha = lr if lookahead is None else lookahead

    def step(game: Game, z: Tensor) -> Tensor:
        curv = curvature(game, z)
        looked_ahead, shaping = _lookahead_and_shaping(game, curv, alpha)
        dot = -alpha * (shaping @ looked_ahead)
        safe_dot = torch.where(dot < 0, dot, -torch.ones_like(dot))  # no 0/0 in the unused branch
        p1 = torch.where(
            dot >= 0,
            torch.ones_like(dot),
            torch.clamp(-a * (looked_ahead @ looked_ahead) / safe_dot, max=1.0),
        )
        sq_norm = curv.field @ curv.field
        p2 = torch.where(sq_norm < b**2, sq_norm, torch.ones_like(sq_norm))
        return z - lr * (looked_ahead - torch.minimum(p1, p2) * alpha * shaping)

    return _stateless(step)


def cgd(lr: float, cg_iters: int = 20) -> Dynamics:
    """Competitive gradient descent (Schäfer & Anandkumar 2019): z⁺ = z − η(I + ηH_o)⁻¹ξ, the Nash
    equilibrium of the players' bilinear approximations. On xᵀAy it is the proximal point
    z⁺ = (I + ηJ)⁻¹z. Solved exactly where H_o is dense (small games), else by `cg_iters`
    conjugate-gradient steps on the normal equations."""

    def step(game: Game, z: Tensor) -> Tensor:
        curv = curvature(game, z)
        if curv.off_diagonal is not None:
            system = torch.eye(game.dim, dtype=z.dtype, device=z.device) + lr * curv.off_diagonal
            return z - lr * torch.linalg.solve(system, curv.field)
        system, transposed = (lambda v: v + lr * curv.h_o(v)), (lambda u: u + lr * curv.h_o_t(u))
        normal = lambda v: transposed(system(v))  # MᵀM: conjugate gradient on the normal equations
        direction = conjugate_gradient(normal, transposed(curv.field), min(cg_iters, game.dim))
        return z - lr * direction

    return _stateless(step)


def stackelberg_field(game: Game, z: Tensor, regularization: float = 0.0) -> Tensor:  # (d,)
    """ω_S(z) = (Df, ∇_y g) for leader x = θ_1 with loss f = L_1 and follower y = θ_2 with g = L_2:
    Df = ∇_x f − ∇²_{xy}g (∇²_{yy}g + ρI)⁻¹ ∇_y f is the leader's total derivative through the
    follower's best response y = r(x), Dr = −(∇²_{yy}g)⁻¹∇²_{yx}g by the implicit function theorem
    (Fiez, Chasnov & Ratliff 2020); ρ = `regularization` (their code's damping of the follower's
    Hessian, ρ = 0 the exact derivative). Where ∇²_{yy}g + ρI is exactly singular (a zero pivot, as
    on bilinear games, whose g is linear in y) r has no derivative and the leader keeps ∇_x f.
    ∇²_{yy}g is formed densely by d_y forward passes (a step on the ring GAN, d_y = 337, costs
    about 20 LOLA steps) and inverted; ∇²_{xy}g enters only through one vector-Jacobian product."""
    if game.n_players != 2:
        raise ValueError(
            f"stackelberg needs a two-player game (leader, follower); game "
            f"{game.name!r} has {game.n_players} players"
        )
    lead, follow = game.blocks()
    loss = lambda i: lambda w: game.losses(w)[i]
    follower_gradient = lambda w: grad(loss(1))(w)[follow]  # ∇_y g, (d_y,)
    grad_y_g, pull_back = vjp(follower_gradient, z)  # x block of pull_back(v): ∇²_{xy}g v
    hess_yy = jacfwd(lambda y: follower_gradient(game.replace_block(z, 1, y)))(z[follow])
    eye = torch.eye(hess_yy.shape[0], dtype=z.dtype, device=z.device)
    hess_yy = hess_yy + regularization * eye
    grad_f = grad(loss(0))(z)  # (d,)
    # inv, not solve: vmap over jacfwd through linalg.solve is wrong in torch 2.14.
    invertible = torch.linalg.inv_ex(hess_yy).info == 0
    inverse = torch.linalg.inv_ex(torch.where(invertible, hess_yy, eye)).inverse  # never inf or nan
    correction = pull_back(inverse @ grad_f[follow])[0][lead]
    leader = grad_f[lead] - torch.where(invertible, correction, 0.0)
    return torch.cat([leader, grad_y_g])


def stackelberg(lr: float, timescale: float = 1.0, regularization: float = 0.0) -> Dynamics:
    """Stackelberg gradient dynamics (Fiez, Chasnov & Ratliff 2020): the leader (the first player)
    descends its total derivative, the follower its own gradient, z⁺ = z − η(Df, τ∇_y g) with ω_S
    as in `stackelberg_field`. τ = `timescale` is the follower's learning rate over the leader's;
    their two-timescale analysis has the follower faster (τ > 1); the default τ = 1 is the plain
    update, which converges locally for small η at a Stackelberg point of a zero-sum game: there
    J_S = ∂ω_S/∂z is block triangular, its eigenvalues the leader's Schur complement's and
    ∇²_{yy}g's, all positive.
    Fixed points are Stackelberg points, not Nash ones: its `fixed_point` is
    `stackelberg_equilibrium`."""
    if not timescale > 0:
        raise ValueError(f"timescale={timescale} must be > 0")
    if not regularization >= 0:
        raise ValueError(f"regularization={regularization} must be >= 0")

    def step(game: Game, z: Tensor) -> Tensor:
        field = stackelberg_field(game, z, regularization)
        lead, follow = game.blocks()
        return z - lr * torch.cat([field[lead], timescale * field[follow]])

    return _stateless(step)._replace(
        fixed_point=partial(stackelberg_equilibrium, regularization=regularization)
    )


def stackelberg_equilibrium(
    game: Game, z: Tensor, regularization: float = 0.0, steps: int = 20, tol: float = 1e-12
) -> Tensor | None:
    """The zero of ω_S that Newton's method z ← z − J_S⁻¹ω_S reaches from z (in one step on
    quadratic games): the fixed point of `stackelberg` near z, where its rate is predicted. None
    when J_S turns singular or ‖ω_S‖ is still above `tol` after `steps` steps."""
    field = lambda w: stackelberg_field(game, w, regularization)
    for _ in range(steps):
        value = field(z)
        if torch.linalg.vector_norm(value) <= tol:
            return z
        newton, info = torch.linalg.solve_ex(jacfwd(field)(z), value)
        if info != 0:
            return None
        z = z - newton
    return z if torch.linalg.vector_norm(field(z)) <= tol else None
