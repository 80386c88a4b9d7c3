"""The 4-block convolutional network of few-shot image classification.

Vinyals et al. 2016 (*Matching Networks*) introduced it and Finn et al. 2017 (*MAML*) adapted it:
four blocks of [3x3 conv, 64 filters -> BatchNorm -> ReLU -> 2x2 max-pool] take a 28x28 image to
a 64-vector (28 -> 14 -> 7 -> 3 -> 1), and a linear head maps that to `ways` logits.

BatchNorm keeps no running statistics (`track_running_stats=False`): every forward pass normalises
with the statistics of its own batch, in training and at test time alike, as in MAML, and the
network stays a pure function of its parameters for `torch.func`. Initialisation follows
learn2learn's `maml_init_`: Xavier-uniform weights (Glorot & Bengio 2010), zero biases; BatchNorm
starts at scale 1, shift 0.
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
