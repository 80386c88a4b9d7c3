"""First-order game dynamics, each an `(init, update)` pair in the style of optax.

(The second-order ones, which also use the game Hessian, are in `games.adjusted`.)

`init(game, z)` returns the dynamics' state (a NamedTuple of tensors, empty when memoryless) and
`update(game, z, state)` returns the next joint parameters and state. `fixed_point(game, z)`, for
dynamics whose fixed points are not the game's Nash points, finds the one near z (None if it
fails); None means they are the Nash points. Updates call the game for
the field wherever they need it (extragradient and consensus need more than ξ at z), use no
data-dependent Python branches, and so run unchanged under `torch.func.vmap` and `jacfwd`.
Notation: ξ the simultaneous gradient, H = ∂ξ/∂z, η the learning rate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from games.game import Game


class Dynamics(NamedTuple):
    init: Callable[[Game, Tensor], tuple]
    update: Callable[[Game, Tensor, tuple], tuple[Tensor, tuple]]
    fixed_point: Callable[[Game, Tensor], Tensor | None] | None = None


class NoState(NamedTuple):
    pass


class PreviousField(NamedTuple):
    field: Tensor  # ξ(z_{t−1})


class PreviousParams(NamedTuple):
    params: Tensor  # z_{t−1}


def _stateless(step: Callable[[Game, Tensor], Tensor]) -> Dynamics:
    return Dynamics(lambda game, z: NoState(), lambda game, z, state: (step(game, z), state))


def _alternate(game: Game, z: Tensor, step_block: Callable[[int, Tensor], Tensor]) -> Tensor:
    """Players move in turn, each seeing the others' latest parameters:
    θ_i ← step_block(i, ξ_i(θ_1⁺, ..., θ_{i−1}⁺, θ_i, ..., θ_n))."""
    for i, block in enumerate(game.blocks()):
        z = game.replace_block(z, i, step_block(i, game.field(z)[block]))
    return z


def sim_gd(lr: float) -> Dynamics:
    """Simultaneous gradient descent: z⁺ = z − ηξ(z)."""
    return _stateless(lambda game, z: z - lr * game.field(z))


def alt_gd(lr: float) -> Dynamics:
    """Alternating gradient descent: θ_i⁺ = θ_i − η∇_i L_i at the players' latest parameters;
    on xᵀAy it conserves ‖x‖² + ‖y‖² − η xᵀAy (Bailey et al. 2020)."""

    def step(game: Game, z: Tensor) -> Tensor:
        blocks = game.blocks()
        return _alternate(game, z, lambda i, grad: z[blocks[i]] - lr * grad)

    return _stateless(step)


def extragradient(lr: float) -> Dynamics:
    """Extragradient (Korpelevich 1976): z^½ = z − ηξ(z), z⁺ = z − ηξ(z^½)."""
    return _stateless(lambda game, z: z - lr * game.field(z - lr * game.field(z)))


def optimistic(lr: float) -> Dynamics:
    """Optimistic gradient descent (Popov 1980; Daskalakis et al. 2018):
    z⁺ = z − 2ηξ(z_t) + ηξ(z_{t−1}), with ξ(z_{−1}) = ξ(z_0) so the first step is plain GD."""

    def update(game: Game, z: Tensor, state: PreviousField):
        field = game.field(z)
        return z - 2 * lr * field + lr * state.field, PreviousField(field)

    return Dynamics(lambda game, z: PreviousField(game.field(z)), update)


def momentum(lr: float, beta: float = -0.5, alternating: bool = False) -> Dynamics:
    """Heavy-ball momentum (Polyak 1964): z⁺ = z − ηξ(z) + β(z − z_{t−1}); with `alternating`,
    players move in turn (Gidel et al. 2019: negative β converges on bilinear games only then)."""

    def update(game: Game, z: Tensor, state: PreviousParams):
        velocity = beta * (z - state.params)
        if alternating:
            blocks = game.blocks()
            new = _alternate(game, z, lambda i, grad: z[blocks[i]] - lr * grad + velocity[blocks[i]])
        else:
            new = z - lr * game.field(z) + velocity
        return new, PreviousParams(z)

    return Dynamics(lambda game, z: PreviousParams(z), update)
