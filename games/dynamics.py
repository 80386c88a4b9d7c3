"""First-order game dynamics, each an `(init, update)` pair in the style of optax.

(The second-order ones, which also use the game Hessian, are in `games.adjusted`.)

`init(game, z)` returns the dynamics' state (a NamedTuple of tensors, possibly nested, empty when
memoryless) and `update(game, z, state)` returns the next joint parameters and state. `fixed_point(game,
z)`, for dynamics whose fixed points are not the game's Nash points, finds the one near z (None if it
fails); None means they are the Nash points. `check(game, z)`, for dynamics not defined everywhere,
raises ValueError at the first point of z ((d,) or a batch (B, d)) where it is not (Stackelberg's,
where the follower's Hessian is singular); `play` and `play_batch` call it on the start. `period`
is the number of updates after which the update map repeats (k for a lookahead that restarts
every k steps); a step counter that tells the
updates of a period apart is an integer entry of the state (an int64 tensor; a Python int is fine
for `play` and the analysis but not for `play_batch`, whose `vmap` returns tensors only), which the
analysis carries as a constant instead of differentiating it. Updates call the game for the field
wherever they need it (extragradient and consensus need more than ξ at z), use no data-dependent
Python branches, and so run unchanged under `torch.func.vmap` and `jacfwd`.
Notation: ξ the simultaneous gradient, H = ∂ξ/∂z, η the learning rate.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import NamedTuple

import torch
from torch import Tensor

from games.game import Game
from registration.ranges import check_integer, check_number


class Dynamics(NamedTuple):
    init: Callable[[Game, Tensor], tuple]
    update: Callable[[Game, Tensor, tuple], tuple[Tensor, tuple]]
    fixed_point: Callable[[Game, Tensor], Tensor | None] | None = None
    period: int = 1  # updates after which the update map repeats (its counter is back at init)
    check: Callable[[Game, Tensor], None] | None = None  # ValueError where the dynamics is undefined


class NoState(NamedTuple):
    pass


class PreviousField(NamedTuple):
    field: Tensor  # ξ(z_{t−1})


class PreviousParams(NamedTuple):
    params: Tensor  # z_{t−1}


class LookaheadState(NamedTuple):
    slow: Tensor  # φ, the slow weights the fast ones restart from
    inner: tuple  # the base dynamics' state, kept across restarts
    count: Tensor  # int64, fast steps since the last restart, in [0, k)


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
    players move in turn (Gidel et al. 2019: negative β converges on bilinear games only then).
    β = 0 is plain (simultaneous or alternating) GD, and |β| >= 1 never forgets a step."""
    if isinstance(beta, bool) or not isinstance(beta, Real) or not (-1 < beta < 1) or beta == 0:
        raise ValueError(
            f"beta={beta!r}: heavy-ball momentum keeps β of the last step, 0 < β < 1 (Polyak 1964) or "
            f"−1 < β < 0 (Gidel et al. 2019); β = 0 is plain GD, dynamics=sim_gd (alt_gd when "
            f"alternating); valid: a number in (-1, 0) or (0, 1)"
        )

    def update(game: Game, z: Tensor, state: PreviousParams):
        velocity = beta * (z - state.params)
        if alternating:
            blocks = game.blocks()
            new = _alternate(game, z, lambda i, grad: z[blocks[i]] - lr * grad + velocity[blocks[i]])
        else:
            new = z - lr * game.field(z) + velocity
        return new, PreviousParams(z)

    return Dynamics(lambda game, z: PreviousParams(z), update)


_BASES = {f.__name__: f for f in (sim_gd, alt_gd, extragradient, optimistic, momentum)}


def lookahead(lr: float, k: int = 5, alpha: float = 0.5, base: str = "extragradient") -> Dynamics:
    """Lookahead (Zhang et al. 2019; on games, Chavdarova et al. 2021): k fast steps of `base` from
    the slow weights φ, then φ ← φ + α(z − φ) and the fast weights z restart at φ. z is the fast
    weights; the base's state is kept across restarts (Zhang et al.'s default). The counter is an
    int64 tensor advanced modulo k and read through `torch.where`; the period is k. On a linear
    field with a memoryless base of map M (I − ηH + η²H² for extragradient), k updates from a
    restart are z ↦ ((1 − α)I + αM^k)z. k = 1 (the slow weights follow every fast step) and α = 1
    (they jump to the fast ones) are the base method itself, up to its step size: refused."""
    check_integer("k", k, "Lookahead takes k fast steps per slow one; k = 1 is the base method, relaxed", 2)
    check_number(
        "alpha",
        alpha,
        "the slow weights move α of the way to the fast ones; α = 1 is the base method",
        above=0,
        below=1,
    )
    if base not in _BASES:
        raise ValueError(f"base={base!r} is not a first-order dynamics; valid: {', '.join(_BASES)}")
    fast = _BASES[base](lr)

    def init(game: Game, z: Tensor) -> LookaheadState:
        return LookaheadState(z, fast.init(game, z), torch.zeros((), dtype=torch.int64, device=z.device))

    def update(game: Game, z: Tensor, state: LookaheadState):
        z, inner = fast.update(game, z, state.inner)
        count = (state.count + 1) % k
        restart = count == 0
        slow = torch.where(restart, state.slow + alpha * (z - state.slow), state.slow)
        return torch.where(restart, slow, z), LookaheadState(slow, inner, count)

    return Dynamics(init, update, period=k)
