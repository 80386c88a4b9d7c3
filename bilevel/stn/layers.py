"""STN's gated linear layer: a linear layer whose units are scaled and shifted by a linear function
of the hyperparameters (MacKay et al. 2019, §4.2; `HyperLinear` in their code).

    out = s·(Wx + b) + (Aλ̃)⊙(Vx) + (A'λ̃)⊙c

for one example x (in,) and its hyperparameters λ̃ (n,), the unconstrained λ as the network sees
it. It is the linear layer with the effective parameters W(λ̃) = sW + diag(Aλ̃)V and b(λ̃) = sb +
(A'λ̃)⊙c: each unit's weights move along one direction V_r as λ̃ changes, so a layer of `out` units
costs 2·out·in + out·n weights where a hypernetwork emitting all of W would cost out·in·n. The
initialisation is the paper's code's: W, V, b, c ~ U(±1/√in), s = 1, A, A' ~ N(0, 0.01²).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class GatedLinear(NamedTuple):
    weight: Tensor  # W, (out, in)
    gate_weight: Tensor  # V, (out, in)
    to_weight_gates: Tensor  # A, (out, n)
    scale: Tensor  # s, ()
    bias: Tensor | None = None  # b, (out,)
    gate_bias: Tensor | None = None  # c, (out,)
    to_bias_gates: Tensor | None = None  # A', (out, n)

    def tensors(self) -> list[Tensor]:
        """The trained tensors, for an optimiser."""
        return [t for t in self if t is not None]


def gated_linear_init(
    inputs: int,
    outputs: int,
    hyperparameters: int,
    generator: torch.Generator,
    bias: bool = True,
    dtype: torch.dtype = torch.float32,
) -> GatedLinear:
    """A gated layer from `inputs` to `outputs` units gated by `hyperparameters` numbers."""
    bound = 1.0 / math.sqrt(inputs)

    def uniform(*shape: int) -> Tensor:
        return (2 * torch.rand(*shape, generator=generator, dtype=dtype) - 1) * bound

    def small(*shape: int) -> Tensor:
        return 0.01 * torch.randn(*shape, generator=generator, dtype=dtype)

    layer = GatedLinear(
        uniform(outputs, inputs),
        uniform(outputs, inputs),
        small(outputs, hyperparameters),
        torch.ones((), dtype=dtype),
    )
    if bias:
        layer = layer._replace(
            bias=uniform(outputs), gate_bias=uniform(outputs), to_bias_gates=small(outputs, hyperparameters)
        )
    return layer


def gated_linear(layer: GatedLinear, x: Tensor, h: Tensor) -> Tensor:
    """s·(Wx + b) + (Aλ̃)⊙(Vx) + (A'λ̃)⊙c for a batch: x (B, in), λ̃ = h (B, n), out (B, out);
    with n = 0 it is the plain layer s·(Wx + b)."""
    out = layer.scale * (x @ layer.weight.T)
    if layer.bias is not None:
        out = out + layer.scale * layer.bias
    if h.shape[-1] == 0:
        return out
    out = out + (h @ layer.to_weight_gates.T) * (x @ layer.gate_weight.T)
    if layer.bias is not None:
        out = out + (h @ layer.to_bias_gates.T) * layer.gate_bias
    return out


def gated_weight(layer: GatedLinear, h: Tensor) -> tuple[Tensor, Tensor | None]:
    """The effective parameters at λ̃ = h (..., n): W(λ̃) = sW + diag(Aλ̃)V (..., out, in), and
    b(λ̃) = sb + (A'λ̃)⊙c (..., out) or None."""
    weight = layer.scale * layer.weight + (h @ layer.to_weight_gates.T)[..., None] * layer.gate_weight
    if layer.bias is None:
        return weight, None
    return weight, layer.scale * layer.bias + (h @ layer.to_bias_gates.T) * layer.gate_bias


def gated_weight_sq_norm(layer: GatedLinear, h: Tensor) -> Tensor:
    """‖W(λ̃)‖² for a batch of λ̃ = h (B, n) without forming W(λ̃): row r contributes
    s²‖W_r‖² + 2s(Aλ̃)_r⟨W_r, V_r⟩ + (Aλ̃)_r²‖V_r‖². Returns (B,)."""
    gates = h @ layer.to_weight_gates.T  # (B, out)
    own = layer.weight.square().sum(1)  # (out,)
    cross = (layer.weight * layer.gate_weight).sum(1)
    gate = layer.gate_weight.square().sum(1)
    return (layer.scale**2 * own + 2 * layer.scale * gates * cross + gates.square() * gate).sum(1)
