"""Second-order information at one point: ξ, each ∇L_i, and products with H and H_o.

H = ∂ξ/∂z is the game Hessian and H_o its off-diagonal part (player i's gradient as a function of
the others' parameters). Small games get them densely from one forward-over-reverse pass (all
per-loss Hessians at once: a handful of large tensor operations instead of many small ones); large
games get matrix-free Jacobian-vector products. Both give the same `Curvature`, so the dynamics
that use it (consensus, SGA, LOLA, SOS, CGD) have one code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import grad, jacfwd, jacrev, jvp, vjp

from games.game import Game

DENSE_UP_TO = 256  # games with at most this many parameters get dense Hessians

Product = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Curvature:
    field: Tensor  # ξ(z), (d,)
    loss_grads: Tensor  # ∇_z L_i for every player, (n, d)
    h: Product  # v ↦ Hv
    h_t: Product  # u ↦ Hᵀu
    h_o: Product  # v ↦ H_o v
    h_o_t: Product  # u ↦ H_oᵀu
    off_diagonal: Tensor | None = None  # H_o as a (d, d) matrix when dense


def curvature(game: Game, z: Tensor) -> Curvature:
    """Dense for games with at most `DENSE_UP_TO` parameters, matrix-free above."""
    return dense_curvature(game, z) if game.dim <= DENSE_UP_TO else matrix_free_curvature(game, z)


def dense_curvature(game: Game, z: Tensor) -> Curvature:
    """Row block i of H is player i's rows of ∇²L_i; H_o is H with its diagonal blocks zeroed."""

    def loss_grads(x: Tensor) -> tuple[Tensor, Tensor]:
        grads = jacrev(game.losses)(x)  # (n, d)
        return grads, grads

    hessians, grads = jacfwd(loss_grads, has_aux=True)(z)  # (n, d, d), (n, d)
    blocks = game.blocks()
    field = torch.cat([grads[i, b] for i, b in enumerate(blocks)])
    jacobian = torch.cat([hessians[i, b] for i, b in enumerate(blocks)])  # (d, d)
    own = torch.block_diag(*[torch.ones(s, s, dtype=z.dtype, device=z.device) for s in game.sizes])
    off = jacobian * (1 - own)
    return Curvature(
        field,
        grads,
        lambda v: jacobian @ v,
        lambda u: jacobian.T @ u,
        lambda v: off @ v,
        lambda u: off.T @ u,
        off,
    )


def matrix_free_curvature(game: Game, z: Tensor) -> Curvature:
    """ξ(z) = ∇_w F(w, z) at w = z with F(w, z) = Σ_i L_i(w_i, z_{−i}), so H_o = ∂_z ∇_w F and
    its products are a JVP and a VJP in the second argument."""
    field_of_others = lambda others: grad(game.own_losses)(z, others)
    field, pull_field = vjp(game.field, z)
    _, pull_others = vjp(field_of_others, z)
    return Curvature(
        field,
        game.loss_gradients(z),
        lambda v: jvp(game.field, (z,), (v,))[1],
        lambda u: pull_field(u)[0],
        lambda v: jvp(field_of_others, (z,), (v,))[1],
        lambda u: pull_others(u)[0],
    )
