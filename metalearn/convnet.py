"""The 4-block convolutional network of few-shot image classification.

Vinyals et al. 2016 (*Matching Networks*) introduced it and Finn et al. 2017 (*MAML*) adapted it:
four blocks of [3x3 conv, 64 filters -> BatchNorm -> ReLU -> 2x2 max-pool] take a 28x28 image to
a 64-vector (28 -> 14 -> 7 -> 3 -> 1), and a linear head maps that to `ways` logits.

BatchNorm keeps no running statistics (`track_running_stats=False`): every forward pass normalises
with the statistics of its own batch, in training and at test time alike, as in MAML, and the
network stays a pure function of its parameters for `torch.func`. Initialisation follows
learn2learn's `maml_init_`: Xavier-uniform weights (Glorot & Bengio 2010), zero biases; BatchNorm
starts at scale 1, shift 0.

`BatchNorm` computes the same normalisation in plain tensor operations. `torch.func.vmap` over
`F.batch_norm` gets second derivatives wrong: in float64, the vmapped second-order MAML
meta-gradient of conv-4 (5-way 1-shot, meta-batch 4) is 3.5e-2 away, relative, from a per-task
`torch.autograd.grad(create_graph=True)` loop with torch 2.14, while with `BatchNorm` the two agree
to 1e-14 (`tests/metalearn/test_batchnorm.py`). The functional engine swaps it in
(`plain_batch_norm`) where it differentiates through the inner loop: second-order MAML, Meta-SGD.
"""

from __future__ import annotations

import torch
from torch import nn

from metalearn.fewshot.tasks import HeadedNetwork


def conv4(ways: int, generator: torch.Generator, channels: int = 1, hidden: int = 64) -> HeadedNetwork:
    """Conv-4 for 28x28 images, (B, channels, 28, 28) -> (B, ways), initialised from `generator`."""
    # Built on the meta device and initialised from `generator` alone: making a model neither
    # draws from nor advances torch's global random state.
    blocks = [_block(channels if i == 0 else hidden, hidden) for i in range(4)]
    model = HeadedNetwork(nn.Sequential(*blocks), nn.Linear(hidden, ways, device="meta"))
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight, generator=generator)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


def _block(in_channels: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1, device="meta"),
        nn.BatchNorm2d(hidden, track_running_stats=False, device="meta"),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class BatchNorm(nn.Module):
    """Batch normalisation in plain tensor operations (Ioffe & Szegedy 2015), no running statistics.

    y = γ (x − μ) / √(σ² + ε) + β, with μ and σ² the mean and biased variance of x over every axis
    but the channel axis 1: the forward pass of `nn.BatchNorm2d(track_running_stats=False)`.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter, eps: float = 1e-5):
        super().__init__()
        self.weight, self.bias, self.eps = weight, bias, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axes = [0, *range(2, x.dim())]
        shape = (-1,) + (1,) * (x.dim() - 2)  # broadcasts a per-channel vector over (B, C, ...)
        centred = x - x.mean(axes, keepdim=True)
        variance = (centred * centred).mean(axes, keepdim=True)
        return centred * torch.rsqrt(variance + self.eps) * self.weight.view(shape) + self.bias.view(shape)


def refuse_running_statistics(model: nn.Module) -> None:
    """Raise ValueError naming the first batch norm of `model` that keeps running statistics: it
    updates them in place on every forward pass, which torch.func's vmap cannot do (its first
    meta-step would fail with "in-place operation ... captured Tensor")."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            raise ValueError(
                f"batch norm {name!r} has track_running_stats=True, which the functional engine cannot "
                "update under vmap; valid: track_running_stats=False"
            )


def plain_batch_norm(model: nn.Module) -> nn.Module:
    """`model` with each of its batch norms replaced, in place, by a `BatchNorm` holding the same
    parameters (the same `nn.Parameter` objects, so optimisers and state dicts are unaffected).

    Every batch norm must keep no running statistics and have a scale and shift (as in `conv4`).
    """
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        if module.track_running_stats or not module.affine:
            raise ValueError(
                f"batch norm {name!r} has track_running_stats={module.track_running_stats}, "
                f"affine={module.affine}; valid: track_running_stats=False, affine=True"
            )
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, BatchNorm(module.weight, module.bias, module.eps))
    return model
