"""What a searched architecture is worth: trained from scratch and tested, beside the two baselines
a reader of DARTS asks for.

- `train_architecture`: a discrete architecture alone (`network(genotype)`), fresh weights, SGD with
  momentum and a cosine-annealed rate (as DARTS retrains), accuracy on validation and test;
- `random_search`: architectures drawn uniformly from the space `derive` maps into, each trained for
  an equal share of a budget of minibatch steps, the best on validation kept (Li & Talwalkar 2019's
  baseline, without weight sharing);
- `uniform_genotype(op)` trained the same way gives the best single operation everywhere.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch
import torch.nn.functional as F

from bilevel.darts.supernet import Genotype, initialise, network, random_genotype
from bilevel.digits import Digits, Split


class TrainSettings(NamedTuple):
    width: int = 16
    batch_size: int = 64
    lr: float = 0.05  # the peak of the cosine schedule
    momentum: float = 0.9
    weight_decay: float = 3e-4


class Trained(NamedTuple):
    genotype: Genotype
    val_accuracy: float
    test_accuracy: float
    steps: int
    seconds: float


class RandomSearchResult(NamedTuple):
    candidates: list[Trained]  # each trained for `steps_each`
    best: Trained  # the candidate with the highest validation accuracy (the first on a tie)
    steps_each: int


def train_architecture(
    genotype: Genotype, data: Digits, steps: int, settings: TrainSettings, generator: torch.Generator
) -> Trained:
    """`steps` minibatch SGD steps on the training split from a fresh draw of the weights, the rate
    lr·(1 + cos(πt/steps))/2 (Loshchilov & Hutter 2017)."""
    start = time.perf_counter()
    net = network(genotype, settings.width)
    initialise(net, generator)
    optimiser = torch.optim.SGD(
        net.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    x, y = data.train.x, data.train.y
    order = torch.empty(0, dtype=torch.int64)
    for t in range(steps):
        if len(order) < settings.batch_size:
            order = torch.cat([order, torch.randperm(len(y), generator=generator)])
        batch, order = order[: settings.batch_size], order[settings.batch_size :]
        for group in optimiser.param_groups:
            group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * t / steps))
        optimiser.zero_grad()
        F.cross_entropy(net(x[batch]), y[batch]).backward()
        optimiser.step()
    return Trained(
        genotype, accuracy(net, data.val), accuracy(net, data.test), steps, time.perf_counter() - start
    )


def accuracy(net: torch.nn.Module, split: Split) -> float:
    with torch.no_grad():
        return (net(split.x).argmax(-1) == split.y).double().mean().item()


def random_search(
    data: Digits,
    budget: int,
    samples: int,
    nodes: int,
    cells: int,
    top_k: int,
    settings: TrainSettings,
    generator: torch.Generator,
) -> RandomSearchResult:
    """`samples` architectures drawn uniformly, each trained for budget // samples steps; the best
    on validation."""
    steps_each = max(1, budget // samples)
    candidates = [
        train_architecture(
            random_genotype(generator, nodes, cells, top_k), data, steps_each, settings, generator
        )
        for _ in range(samples)
    ]
    best = max(candidates, key=lambda c: c.val_accuracy)
    return RandomSearchResult(candidates, best, steps_each)
