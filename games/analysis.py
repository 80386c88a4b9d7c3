"""Why a run converges: the game's Jacobian, its spectrum, and the linear rate of a dynamics.

Near a fixed point z* a dynamics is the linear map u ↦ Mu with M the Jacobian of one update step
(of the augmented state (z, memory) for methods with memory); ‖z_t − z*‖ then shrinks or grows
asymptotically by the spectral radius ρ(M) per step, the *predicted* rate (Mescheder et al. 2017,
*The Numerics of GANs*, Prop. 3; Gidel et al. 2019 for momentum). A dynamics of period p (a
lookahead restarting every p steps) is not one fixed map but p maps in turn: M is then the Jacobian
of their composition, from the state's initial phase, and the rate per step is ρ(M)^(1/p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import jacfwd
from torch.utils._pytree import keystr, tree_flatten, tree_flatten_with_path, tree_leaves, tree_unflatten

from games.dynamics import Dynamics
from games.game import Game


def field_jacobian(game: Game, z: Tensor) -> Tensor:  # (d, d)
    """H = ∂ξ/∂z, the game Hessian (Balduzzi et al. 2018)."""
    return jacfwd(game.field)(z)


def eigenvalues(matrix: Tensor) -> Tensor:  # (d,) complex, sorted by real then imaginary part
    """The spectrum; all NaN for a matrix with a non-finite entry (LAPACK may never return on one)."""
    if not torch.isfinite(matrix).all():
        return torch.full(matrix.shape[:1], complex("nan+nanj"), dtype=_complex(matrix.dtype))
    values = torch.linalg.eigvals(matrix)
    order = sorted(range(len(values)), key=lambda k: (values[k].real.item(), values[k].imag.item()))
    return values[order]


def potential_hamiltonian_split(jacobian: Tensor) -> tuple[Tensor, Tensor]:
    """H = S + A, S = (H + Hᵀ)/2 the potential part, A = (H − Hᵀ)/2 the Hamiltonian part
    (Balduzzi et al. 2018): A = 0 for potential games, S = 0 for zero-sum bilinear ones."""
    return 0.5 * (jacobian + jacobian.T), 0.5 * (jacobian - jacobian.T)


def update_jacobian(game: Game, dynamics: Dynamics, z: Tensor) -> Tensor:
    """Jacobian of `dynamics.period` updates (one for most dynamics) of the augmented state
    (z, state) at z, with the state a fixed point would carry (`dynamics.init(game, z)`); size
    d + (size of the state's floating-point entries). Only those are differentiated: the other
    entries (a step counter, as an integer tensor or a Python int) are carried as constants, and a
    period after which they are not back at their initial values is refused (ValueError)."""
    period = _period(dynamics)
    state = dynamics.init(game, z)
    leaves, spec = tree_flatten(state)
    moving = [_differentiated(leaf) for leaf in leaves]
    if not all(moving):
        _check_return(game, dynamics, z, floats=False)
    sizes = [z.numel()] + [leaf.numel() for leaf, m in zip(leaves, moving) if m]

    def period_map(flat: Tensor) -> Tensor:
        parts = iter(torch.split(flat, sizes))
        w = next(parts)
        s = [next(parts).reshape(leaf.shape) if m else leaf for leaf, m in zip(leaves, moving)]
        w, s = _iterate(game, dynamics, w, tree_unflatten(s, spec), period)
        return torch.cat([w, *(leaf.reshape(-1) for leaf, m in zip(tree_leaves(s), moving) if m)])

    return jacfwd(period_map)(torch.cat([z, *(leaf.reshape(-1) for leaf, m in zip(leaves, moving) if m)]))


def _period(dynamics: Dynamics) -> int:
    period = dynamics.period
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"Dynamics.period={period!r} must be an integer >= 1")
    return period


def _differentiated(leaf) -> bool:
    return isinstance(leaf, Tensor) and leaf.is_floating_point()


def _iterate(game: Game, dynamics: Dynamics, z: Tensor, state: tuple, steps: int) -> tuple[Tensor, tuple]:
    for _ in range(steps):
        z, state = dynamics.update(game, z, state)
    return z, state


def _check_return(game: Game, dynamics: Dynamics, z: Tensor, floats: bool) -> None:
    """ValueError unless every entry of the state from z is back at its initial value after
    `period` updates: exactly for counters and other constants, to √eps for floating-point
    entries when `floats` (as at a fixed point, where a state of the wrong period drifts)."""
    period = _period(dynamics)
    state = dynamics.init(game, z)
    if not tree_leaves(state):
        return
    _, after = _iterate(game, dynamics, z, state, period)
    for (path, before), new in zip(tree_flatten_with_path(state)[0], tree_leaves(after)):
        if _differentiated(before):
            tol = torch.finfo(before.dtype).eps ** 0.5
            back = not floats or torch.allclose(new, before, rtol=tol, atol=tol, equal_nan=True)
        else:
            back = torch.equal(new, before) if isinstance(before, Tensor) else new == before
        if not back:
            raise ValueError(
                f"state{keystr(path)} moves {_change(before, new)} in period={period} update(s) at "
                f"z, so the update map does not repeat after that period; valid: Dynamics.period = "
                f"the number of updates after which the state is back where it began (a step "
                f"counter counts modulo it, as an integer tensor)"
            )


def _change(before, after) -> str:
    if not isinstance(before, Tensor):
        return f"from {before!r} to {after!r}"
    if before.numel() <= 4:
        return f"from {before.tolist()} to {after.tolist()}"
    return f"by up to {(after - before).abs().max().item():.3g}"


def spectral_radius(matrix: Tensor) -> float:
    """max |λ|; NaN for a matrix with a non-finite entry."""
    return eigenvalues(matrix).abs().max().item()


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def predicted_rate(game: Game, dynamics: Dynamics, z: Tensor | None = None) -> float | None:
    """ρ(M)^(1/p) for M the update Jacobian at z and p the dynamics' period (default z: the game's
    equilibrium; None without one). z is a fixed point, so a state not back at its initial value
    after p updates from z means the declared period is wrong: refused (ValueError), as is a z
    where the dynamics is not defined (its `check`)."""
    z = game.equilibrium if z is None else z
    if z is None:
        return None
    if dynamics.check is not None:
        dynamics.check(game, z)
    _check_return(game, dynamics, z, floats=True)
    jacobian = update_jacobian(game, dynamics, z)
    _check_no_passenger(game, dynamics, z, jacobian)
    return spectral_radius(jacobian) ** (1 / dynamics.period)


def _check_no_passenger(game: Game, dynamics: Dynamics, z: Tensor, jacobian: Tensor) -> None:
    """ValueError for a floating-point state entry whose row and column of the Jacobian are its
    unit vector: to first order it stays put and moves nothing, like a float step counter or a
    constant, and its eigenvalue 1 would pass for the rate."""
    unit = jacobian == torch.eye(len(jacobian), dtype=jacobian.dtype, device=jacobian.device)
    still = (unit.all(dim=0) & unit.all(dim=1))[z.numel() :].nonzero()
    if len(still):
        leaves = tree_flatten_with_path(dynamics.init(game, z))[0]
        names = [keystr(path) for path, leaf in leaves if _differentiated(leaf) for _ in range(leaf.numel())]
        raise ValueError(
            f"state{names[still[0, 0]]} is a floating-point entry that, to first order at z, stays "
            f"put and moves nothing (a step counter? a constant?), so its eigenvalue 1 is no rate; "
            f"valid: a step counter as an integer tensor (carried as a constant), constants outside the state"
        )


def distance_floor(game: Game) -> float:
    """√eps·‖z*‖, eps the machine epsilon of the game's dtype (0 without an equilibrium): the
    floating-point floor of the distance to z*. z near z* is rounded to about eps·‖z*‖, so below
    √eps·‖z*‖ rounding takes more than half of the distance's digits and a run that keeps
    contracting shows a plateau, not its rate. At z* = 0 rounding is relative and there is no floor."""
    if game.equilibrium is None:
        return 0.0
    return torch.finfo(game.dtype).eps ** 0.5 * torch.linalg.vector_norm(game.equilibrium).item()


def above_floor(dist: Sequence[float], floor: float) -> int:
    """How many points of `dist` come before the first one below `floor`."""
    return next((t for t, d in enumerate(dist) if float(d) < floor), len(dist))


def measured_rate(
    dist: Sequence[float], fraction: float = 0.1, period: int = 1, floor: float = 0.0
) -> float | None:
    """Mean per-step ratio of `dist` over the last `fraction` of a run, as a geometric mean:
    (d_T / d_{T−k})^{1/k}, k = max(1, ⌊fraction·T / p⌋)·p a whole number of the dynamics' periods p
    (p >= 1; within a period the distance need not shrink evenly). Only the steps before the
    distance first falls below `floor` count (`distance_floor`: a plateau there is rounding, not
    the rate), so T is the last of them. 0 once it reaches 0 exactly; None for fewer than one
    period of steps."""
    dist = dist[: above_floor(dist, floor)]
    steps = len(dist) - 1
    if steps < period:
        return None
    k = max(1, int(fraction * steps) // period) * period
    start, end = float(dist[steps - k]), float(dist[steps])
    if start == 0.0:
        return 0.0
    return math.exp((math.log(end) - math.log(start)) / k) if end > 0 else 0.0
