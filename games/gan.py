"""The ring-of-Gaussians GAN (Metz et al. 2017, *Unrolled GANs*): the classic mode-collapse toy.

Data: 8 Gaussians (std 0.02) evenly spaced on a circle of radius 2. Generator and discriminator
are small tanh MLPs whose weights are the players' flat parameter vectors. The real samples and
the latent codes are drawn once from `seed`, so the game is deterministic (a fixed minibatch) and
its Jacobian is well defined. Losses: the discriminator's binary cross-entropy and the
generator's non-saturating loss −log D(G(z)) (Goodfellow et al. 2014).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import softplus

from games.game import Game
from registration.ranges import check_integer, check_seed

_F64 = torch.float64
MAX_WIDTH = 4096  # hidden and latent: the players' weights, about 2·hidden², are dense vectors
MAX_SAMPLES = 2**20  # the fixed minibatch, passed through both networks at every step


def ring_of_gaussians(
    n: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0, std: float = 0.02
) -> Tensor:  # (n, 2)
    angle = 2 * math.pi * torch.randint(modes, (n,), generator=generator).to(_F64) / modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator, dtype=_F64)


def _layer_shapes(widths: list[int]) -> list[tuple[int, int]]:
    return list(zip(widths[:-1], widths[1:]))


def _mlp(flat: Tensor, widths: list[int], x: Tensor) -> Tensor:
    """A tanh MLP whose weights and biases are read in order from `flat`."""
    start = 0
    layers = _layer_shapes(widths)
    for k, (fan_in, fan_out) in enumerate(layers):
        weight = flat[start : start + fan_in * fan_out].reshape(fan_in, fan_out)
        start += fan_in * fan_out
        bias = flat[start : start + fan_out]
        start += fan_out
        x = x @ weight + bias
        if k < len(layers) - 1:
            x = torch.tanh(x)
    return x


def _init_std(widths: list[int]) -> Tensor:
    """1/√fan_in for weights, 0 for biases (biases start at 0)."""
    parts = []
    for fan_in, fan_out in _layer_shapes(widths):
        parts += [torch.full((fan_in * fan_out,), fan_in**-0.5, dtype=_F64), torch.zeros(fan_out, dtype=_F64)]
    return torch.cat(parts)


def _size(widths: list[int]) -> int:
    return sum(i * o + o for i, o in _layer_shapes(widths))


def gaussian_mixture_gan(seed: int = 0, hidden: int = 16, samples: int = 256, latent: int = 2) -> Game:
    """Generator latent → hidden → hidden → 2, discriminator 2 → hidden → hidden → 1."""
    check_seed("seed", seed)
    check_integer(
        "hidden", hidden, "the networks' width: about 2·hidden² weights, one dense vector", 1, MAX_WIDTH
    )
    check_integer("latent", latent, "the generator's input width: latent·hidden weights", 1, MAX_WIDTH)
    check_integer("samples", samples, "the fixed minibatch, through both networks every step", 1, MAX_SAMPLES)
    gen_widths, disc_widths = [latent, hidden, hidden, 2], [2, hidden, hidden, 1]
    rng = torch.Generator().manual_seed(seed)
    real = ring_of_gaussians(samples, rng)  # (S, 2)
    codes = torch.randn(samples, latent, generator=rng, dtype=_F64)  # (S, latent)

    def losses(p):
        fake = _mlp(p[0], gen_widths, codes)  # (S, 2)
        d_real, d_fake = _mlp(p[1], disc_widths, real), _mlp(p[1], disc_widths, fake)  # (S, 1)
        disc = softplus(-d_real).mean() + softplus(d_fake).mean()
        return torch.stack([softplus(-d_fake).mean(), disc])

    return Game(
        ("generator", "discriminator"),
        ((_size(gen_widths),), (_size(disc_widths),)),
        losses,
        init_std=torch.cat([_init_std(gen_widths), _init_std(disc_widths)]),
        name="gaussian_mixture_gan",
    )
