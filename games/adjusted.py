"""Second-order dynamics that adjust ξ with the game Hessian H = ∂ξ/∂z and its off-diagonal H_o.

Each update reads one `Curvature` at z (dense for small games, matrix-free for large ones).
Branches are `torch.where`s, so the updates run under `vmap` and `jacfwd` like the first-order
ones. Notation: ∇L the matrix of the players' full loss gradients, η the learning rate.
"""
from __future__ import annotations

import torch
from torch import Tensor

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
    shaping = torch.cat([curv.h_o_t(curv.loss_grads[i])[block]
                         for i, block in enumerate(game.blocks())])
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
        p1 = torch.where(dot >= 0, torch.ones_like(dot),
                         torch.clamp(-a * (looked_ahead @ looked_ahead) / safe_dot, max=1.0))
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
            system = torch.eye(game.dim, dtype=z.dtype) + lr * curv.off_diagonal
            return z - lr * torch.linalg.solve(system, curv.field)
        direction = _normal_cg(lambda v: v + lr * curv.h_o(v), lambda u: u + lr * curv.h_o_t(u),
                               curv.field, min(cg_iters, game.dim))
        return z - lr * direction

    return _stateless(step)


def _normal_cg(matvec, rmatvec, rhs: Tensor, iters: int) -> Tensor:
    """x ≈ M⁻¹rhs by conjugate gradients on MᵀMx = Mᵀrhs, starting from x = 0 (so r = Mᵀrhs).
    A fixed number of steps (no data-dependent stop, for vmap); divisions are guarded once the
    residual vanishes."""
    tiny = torch.finfo(rhs.dtype).tiny
    x = torch.zeros_like(rhs)
    residual = rmatvec(rhs)
    direction, res_sq = residual, residual @ residual
    for _ in range(iters):
        product = rmatvec(matvec(direction))
        step = res_sq / torch.clamp(direction @ product, min=tiny)
        x = x + step * direction
        residual = residual - step * product
        new_res_sq = residual @ residual
        direction = residual + new_res_sq / torch.clamp(res_sq, min=tiny) * direction
        res_sq = new_res_sq
    return x
