"""A differentiable game: players, their losses, and the simultaneous gradient field.

Player i holds parameters θ_i and minimises L_i(θ_1, ..., θ_n). The joint parameters are one flat
vector z = (θ_1, ..., θ_n) of length d. The simultaneous gradient (Balduzzi et al. 2018) is

    ξ(z) = (∇_{θ_1} L_1, ..., ∇_{θ_n} L_n),

and its Jacobian H = ∂ξ/∂z is the "game Hessian": its diagonal blocks ∇²_{θ_i} L_i are each
player's own curvature, its off-diagonal part H_o the coupling between players.

ξ is computed as ∇_w F(w, z) at w = z with F(w, z) = Σ_i L_i(w_i, z_{-i}): player i's block of w
only ever enters its own loss (products with H and H_o live in `games.curvature`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.func import grad, jacrev

LossFn = Callable[[Sequence[Tensor]], Tensor]  # per-player parameters -> (n,) losses


@dataclass(frozen=True, eq=False)
class Game:
    """n players with parameter shapes `shapes` and losses `loss_fn(params) -> (n,)`.

    `equilibrium` is the known fixed point as a flat vector (None where there is none or it is not
    isolated); `init_std` scales the standard normal initial draw (a number or a (d,) tensor).
    A user game is a few lines:

        Game(("x", "y"), ((1,), (1,)), lambda p: torch.stack([p[0] @ p[1], -(p[0] @ p[1])]))
    """

    players: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    loss_fn: LossFn
    equilibrium: Tensor | None = None
    init_std: float | Tensor = 1.0
    name: str = "custom"
    dtype: torch.dtype = torch.float64
    sizes: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        if len(self.players) != len(self.shapes) or len(self.players) < 2:
            raise ValueError(
                f"a game needs >= 2 players, one shape each; got players={self.players} shapes={self.shapes}"
            )
        object.__setattr__(self, "shapes", tuple(tuple(s) for s in self.shapes))
        object.__setattr__(self, "sizes", tuple(math.prod(s) for s in self.shapes))
        if self.equilibrium is not None and self.equilibrium.shape != (self.dim,):
            raise ValueError(f"equilibrium has shape {tuple(self.equilibrium.shape)}; expected ({self.dim},)")

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @property
    def n_players(self) -> int:
        return len(self.players)

    def blocks(self) -> list[slice]:
        """Where each player's parameters sit in the joint vector."""
        starts = [0]
        for size in self.sizes:
            starts.append(starts[-1] + size)
        return [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]

    def split(self, z: Tensor) -> list[Tensor]:
        """The joint vector (d,) as each player's parameters in its own shape."""
        return [z[b].reshape(s) for b, s in zip(self.blocks(), self.shapes)]

    def losses(self, z: Tensor) -> Tensor:  # (n,)
        return self.loss_fn(self.split(z))

    def field(self, z: Tensor) -> Tensor:  # (d,)
        """The simultaneous gradient ξ(z)."""
        return grad(self.own_losses)(z, z)

    def loss_gradients(self, z: Tensor) -> Tensor:  # (n, d)
        """∇_z L_i for every player i, with respect to all parameters."""
        return jacrev(self.losses)(z)

    def replace_block(self, z: Tensor, i: int, value: Tensor) -> Tensor:
        """z with player i's block set to `value` (out of place, so it works under vmap)."""
        b = self.blocks()[i]
        return torch.cat([z[: b.start], value, z[b.stop :]])

    def sample_init(self, generator: torch.Generator) -> Tensor:
        """A seeded initial point: init_std times a standard normal draw."""
        noise = torch.randn(self.dim, generator=generator, dtype=self.dtype)
        return noise * self.init_std

    def distance(self, z: Tensor) -> Tensor | None:
        """Euclidean distance of z (…, d) to the equilibrium, or None without one."""
        if self.equilibrium is None:
            return None
        return torch.linalg.vector_norm(z - self.equilibrium, dim=-1)

    def own_losses(self, own: Tensor, others: Tensor) -> Tensor:
        """F(w, z) = Σ_i L_i(w_i, z_{-i}): ∇_w F at w = z is ξ(z)."""
        mine, theirs = self.split(own), self.split(others)
        return sum(
            self.loss_fn([mine[j] if j == i else theirs[j] for j in range(self.n_players)])[i]
            for i in range(self.n_players)
        )
