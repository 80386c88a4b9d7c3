"""Why a run converges: the game's Jacobian, its spectrum, and the linear rate of a dynamics.

Near a fixed point z* a dynamics is the linear map u ↦ Mu with M the Jacobian of one update step
(of the augmented state (z, memory) for methods with memory); ‖z_t − z*‖ then shrinks or grows
asymptotically by the spectral radius ρ(M) per step, the *predicted* rate (Mescheder et al. 2017,
*The Numerics of GANs*, Prop. 3; Gidel et al. 2019 for momentum).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import jacfwd

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
    """Jacobian of one update of the augmented state (z, state) at z, with the state a fixed
    point would carry (`dynamics.init(game, z)`); size d + (state size)."""
    state = dynamics.init(game, z)
    sizes = [z.numel()] + [s.numel() for s in state]

    def step(flat: Tensor) -> Tensor:
        parts = torch.split(flat, sizes)
        new_z, new_state = dynamics.update(game, parts[0], type(state)(*parts[1:]))
        return torch.cat([new_z, *(s.reshape(-1) for s in new_state)])

    return jacfwd(step)(torch.cat([z, *(s.reshape(-1) for s in state)]))


def spectral_radius(matrix: Tensor) -> float:
    """max |λ|; NaN for a matrix with a non-finite entry."""
    return eigenvalues(matrix).abs().max().item()


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def predicted_rate(game: Game, dynamics: Dynamics, z: Tensor | None = None) -> float | None:
    """ρ of the update Jacobian at z (default: the game's equilibrium; None without one)."""
    z = game.equilibrium if z is None else z
    if z is None:
        return None
    return spectral_radius(update_jacobian(game, dynamics, z))


def measured_rate(dist: Sequence[float], fraction: float = 0.1) -> float | None:
    """Mean per-step ratio of `dist` over the last `fraction` of a run, as a geometric mean:
    (d_T / d_{T−k})^{1/k}, k = max(1, ⌊fraction·T⌋). 0 once the distance reaches 0 exactly."""
    steps = len(dist) - 1
    if steps < 1:
        return None
    k = max(1, int(fraction * steps))
    start, end = float(dist[steps - k]), float(dist[steps])
    if start == 0.0:
        return 0.0
    return math.exp((math.log(end) - math.log(start)) / k) if end > 0 else 0.0
