"""Second-order dynamics that adjust ξ with the game Hessian H = ∂ξ/∂z and its off-diagonal H_o.

Each update reads one `Curvature` at z (dense for small games, matrix-free for large ones), except
`stackelberg`, which needs the follower's own Hessian block as a matrix to invert. Branches are
`torch.where`s, so the updates run under `vmap` and `jacfwd` like the first-order ones.
Notation: ∇L the matrix of the players' full loss gradients, η the learning rate.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor
from torch.func import grad, jacfwd, vjp, vmap

from bilevel.solvers import conjugate_gradient
from games.curvature import Curvature, curvature
from games.dynamics import Dynamics, _stateless
from games.game import Game
from registration.ranges import check_integer, check_number

_ALIGN_EPS = 0.1  # ε in the sign of SGA's alignment (Balduzzi et al. 2018, Algorithm 1)
_CHECKED_AT_ONCE = 64  # start points whose follower Jacobians `check_follower` forms together


def consensus(lr: float, gamma: float = 1.0) -> Dynamics:
    """Consensus optimisation (Mescheder et al. 2017): z⁺ = z − η(ξ + γHᵀξ), Hᵀξ = ∇½‖ξ‖²."""
    check_number(
        "gamma",
        gamma,
        "consensus descends ‖ξ‖² with weight γ; γ = 0 is simultaneous GD, γ < 0 ascends it",
        above=0,
    )

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
    check_number(
        "gamma",
        gamma,
        "SGA adjusts ξ by γ·sign(·)Aᵀξ; γ = 0 is simultaneous GD, γ < 0 flips the sign",
        above=0,
    )

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


def _lookahead_rate(lr: float, lookahead: float | None, method: str) -> float:
    """α, the opponents' look-ahead step (default η), checked: α = 0 is simultaneous GD."""
    if lookahead is None:
        return lr
    check_number(
        "lookahead",
        lookahead,
        f"{method} looks α ahead at the opponents' step; α = 0 is simultaneous GD",
        above=0,
    )
    return lookahead


def lola_field(game: Game, z: Tensor, alpha: float) -> Tensor:  # (d,)
    """LOLA's direction (I − αH_o)ξ − αχ at z (Foerster et al. 2018, Taylor form)."""
    looked_ahead, shaping = _lookahead_and_shaping(game, curvature(game, z), alpha)
    return looked_ahead - alpha * shaping


def lola(lr: float, lookahead: float | None = None) -> Dynamics:
    """LOLA (Foerster et al. 2018) in its Taylor form: z⁺ = z − η((I − αH_o)ξ − αχ),
    α = lookahead (default η). On xᵀAy it equals consensus with γ = 2α. Its shaping term −αχ is
    not 0 at the Nash points of a general-sum game (Cournot's duopoly), so its fixed points are
    the zeros of its own field (Letcher et al. 2019: LOLA's shift them): its `fixed_point` finds
    the one near z by Newton's method, where the run goes and its rate is predicted."""
    alpha = _lookahead_rate(lr, lookahead, "LOLA")

    def step(game: Game, z: Tensor) -> Tensor:
        return z - lr * lola_field(game, z, alpha)

    def fixed_point(game: Game, z: Tensor) -> Tensor | None:
        return newton_zero(lambda w: lola_field(game, w, alpha), z)

    return _stateless(step)._replace(fixed_point=fixed_point)


def sos(lr: float, lookahead: float | None = None, a: float = 0.5, b: float = 0.1) -> Dynamics:
    """Stable opponent shaping (Letcher et al. 2019, Algorithm 1): z⁺ = z − η(ξ₀ − pαχ) with
    ξ₀ = (I − αH_o)ξ; p = min(p₁, p₂), p₁ = 1 if ⟨−αχ, ξ₀⟩ ≥ 0 else min(1, −a‖ξ₀‖²/⟨−αχ, ξ₀⟩),
    p₂ = ‖ξ‖² if ‖ξ‖ < b else 1. LOLA's shaping away from fixed points, LookAhead near them; the
    paper takes a, b in (0, 1)."""
    alpha = _lookahead_rate(lr, lookahead, "SOS")
    check_number(
        "a",
        a,
        "SOS bounds the shaping against LookAhead by a, in (0, 1) (Letcher et al. 2019)",
        above=0,
        below=1,
    )
    check_number(
        "b", b, "SOS turns the shaping off where ‖ξ‖ < b, in (0, 1) (Letcher et al. 2019)", above=0, below=1
    )

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
    check_integer("cg_iters", cg_iters, "CGD needs at least one conjugate-gradient iteration", 1)

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


def _two_players(game: Game) -> None:
    if game.n_players != 2:
        raise ValueError(
            f"stackelberg needs a two-player game (leader, follower); game "
            f"{game.name!r} has {game.n_players} players"
        )


def _follower_gradient(game: Game, w: Tensor) -> Tensor:  # ∇_y g, (d_y,)
    return grad(lambda v: game.losses(v)[1])(w)[game.blocks()[1]]


def stackelberg_field(game: Game, z: Tensor, regularization: float = 0.0) -> Tensor:  # (d,)
    """ω_S(z) = (Df, ∇_y g) for leader x = θ_1 with loss f = L_1 and follower y = θ_2 with g = L_2:
    Df = ∇_x f − ∇²_{xy}g (∇²_{yy}g + ρI)⁻¹ ∇_y f is the leader's total derivative through the
    follower's best response y = r(x), Dr = −(∇²_{yy}g)⁻¹∇²_{yx}g by the implicit function theorem
    (Fiez, Chasnov & Ratliff 2020); ρ = `regularization` (their code's damping of the follower's
    Hessian, ρ = 0 the exact derivative). Where ∇²_{yy}g + ρI is exactly singular (a zero pivot, as
    on bilinear games, whose g is linear in y) r has no derivative and the leader keeps ∇_x f: a
    run that starts there is refused (`check_follower`), one that passes there steps on.
    ∇²_{yy}g is formed densely by d_y forward passes (a step on the ring GAN, d_y = 337, costs
    about 20 LOLA steps) and inverted; ∇²_{xy}g enters only through one vector-Jacobian product."""
    _two_players(game)
    lead, follow = game.blocks()
    loss = lambda i: lambda w: game.losses(w)[i]
    grad_y_g, pull_back = vjp(partial(_follower_gradient, game), z)  # x block of pull_back(v): ∇²_{xy}g v
    hess_yy = jacfwd(lambda y: _follower_gradient(game, game.replace_block(z, 1, y)))(z[follow])
    eye = torch.eye(hess_yy.shape[0], dtype=z.dtype, device=z.device)
    hess_yy = hess_yy + regularization * eye
    grad_f = grad(loss(0))(z)  # (d,)
    # inv, not solve: vmap over jacfwd through linalg.solve is wrong in torch 2.14.
    invertible = torch.linalg.inv_ex(hess_yy).info == 0
    inverse = torch.linalg.inv_ex(torch.where(invertible, hess_yy, eye)).inverse  # never inf or nan
    correction = pull_back(inverse @ grad_f[follow])[0][lead]
    leader = grad_f[lead] - torch.where(invertible, correction, 0.0)
    return torch.cat([leader, grad_y_g])


def check_follower(game: Game, z: Tensor, regularization: float = 0.0) -> None:
    """ValueError at the first point of z, (d,) or a batch (B, d), where the follower's Hessian
    ∇²_{yy}g + ρI is numerically singular: its smallest singular value at most eps·d·σ_max of the
    follower's whole Jacobian ∂(∇_y g)/∂z = [∇²_{yx}g, ∇²_{yy}g + ρI] (the rank tolerance of
    `torch.linalg.matrix_rank`). There the leader's implicit gradient does not exist:
    `stackelberg_field` falls back to ∇_x f, simultaneous GD, where the Hessian is exactly singular,
    and inverts rounding where it nearly is (the ring GAN's discriminator, at some starts); ρ > 0 (a
    Tikhonov term) makes it exist. A point where the Jacobian is not finite is left to the run."""
    _two_players(game)
    points = z.reshape(-1, game.dim)
    lead, follow = game.blocks()
    eye = torch.eye(follow.stop - follow.start, dtype=z.dtype, device=z.device)
    jacobian = vmap(jacfwd(partial(_follower_gradient, game)))  # (b, d_y, d)
    for first in range(0, len(points), _CHECKED_AT_ONCE):
        whole = jacobian(points[first : first + _CHECKED_AT_ONCE])
        whole = torch.cat([whole[..., lead], whole[..., follow] + regularization * eye], dim=-1)
        finite = torch.isfinite(whole).flatten(1).all(dim=1)
        whole = torch.where(finite[:, None, None], whole, 0.0)  # LAPACK may not return on inf or nan
        smallest = torch.linalg.svdvals(whole[..., follow]).amin(dim=-1)
        tol = torch.finfo(z.dtype).eps * game.dim * torch.linalg.svdvals(whole).amax(dim=-1)
        singular = (finite & (smallest <= tol)).nonzero()
        if len(singular):
            k = singular[0, 0].item()
            raise ValueError(
                f"the follower's Hessian ∇²_yy g{' + ρI' if regularization else ''} is singular at "
                f"{_point(z, first + k)}: its smallest singular value is {smallest[k].item():.3g}, "
                f"numerically 0 (at most {tol[k].item():.3g}), so the leader's implicit gradient "
                f"through the follower's best response does not exist there: the update would be "
                f"simultaneous gradient descent where it is exactly singular, rounding where nearly; "
                f"valid: a game and start where ∇²_yy g is invertible, or regularization=ρ > 0 (the "
                f"follower's Tikhonov term, (∇²_yy g + ρI)⁻¹)"
            )


def _point(z: Tensor, k: int) -> str:
    """z, or row k of a batch, with its values when there are few."""
    name, point = ("z", z) if z.dim() == 1 else (f"z[{k}]", z[k])
    return f"{name} = {[round(v, 6) for v in point.tolist()]}" if len(point) <= 8 else name


def stackelberg(lr: float, timescale: float = 1.0, regularization: float = 0.0) -> Dynamics:
    """Stackelberg gradient dynamics (Fiez, Chasnov & Ratliff 2020): the leader (the first player)
    descends its total derivative, the follower its own gradient, z⁺ = z − η(Df, τ∇_y g) with ω_S
    as in `stackelberg_field`. τ = `timescale` is the follower's learning rate over the leader's;
    their two-timescale analysis has the follower faster (τ > 1); the default τ = 1 is the plain
    update, which converges locally for small η at a Stackelberg point of a zero-sum game: there
    J_S = ∂ω_S/∂z is block triangular, its eigenvalues the leader's Schur complement's and
    ∇²_{yy}g's, all positive.
    Fixed points are Stackelberg points, not Nash ones: its `fixed_point` is
    `stackelberg_equilibrium`. Its `check` (`check_follower`) refuses a start where ∇²_{yy}g + ρI
    is singular."""
    check_number("timescale", timescale, "τ is the follower's learning rate over the leader's", above=0)
    check_number(
        "regularization",
        regularization,
        "ρ adds ρI to the follower's Hessian (0: the exact implicit gradient)",
        low=0,
    )

    def step(game: Game, z: Tensor) -> Tensor:
        field = stackelberg_field(game, z, regularization)
        lead, follow = game.blocks()
        return z - lr * torch.cat([field[lead], timescale * field[follow]])

    return _stateless(step)._replace(
        fixed_point=partial(stackelberg_equilibrium, regularization=regularization),
        check=partial(check_follower, regularization=regularization),
    )


def stackelberg_equilibrium(
    game: Game, z: Tensor, regularization: float = 0.0, steps: int = 20, tol: float = 1e-12
) -> Tensor | None:
    """The zero of ω_S that Newton's method reaches from z (in one step on quadratic games): the
    fixed point of `stackelberg` near z, where its rate is predicted (see `newton_zero`)."""
    return newton_zero(lambda w: stackelberg_field(game, w, regularization), z, steps, tol)


def newton_zero(
    field: Callable[[Tensor], Tensor], z: Tensor, steps: int = 20, tol: float = 1e-12
) -> Tensor | None:
    """The zero of `field` that Newton's method z ← z − J⁻¹field(z), J = ∂field/∂z, reaches from z:
    z itself where ‖field(z)‖ <= `tol` already. None when J turns singular or ‖field‖ is still
    above `tol` after `steps` steps."""
    for _ in range(steps):
        value = field(z)
        if torch.linalg.vector_norm(value) <= tol:
            return z
        newton, info = torch.linalg.solve_ex(jacfwd(field)(z), value)
        if info != 0:
            return None
        z = z - newton
    return z if torch.linalg.vector_norm(field(z)) <= tol else None
