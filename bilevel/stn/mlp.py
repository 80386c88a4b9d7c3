"""An MLP of STN's gated layers whose dropout rates and weight decay are tuned during one training
run (MacKay et al. 2019, Alg. 1), and random search over the same hyperparameters to set beside it.

Hyperparameters live unconstrained: λ = (logit p_0, ..., logit p_{L−1}, log β) for dropout rate p_l
on the input of layer l and weight decay β, and the gated layers see λ as is (the paper's code).
A training step draws λ_i = λ + σ⊙ε_i per example, drops example i's units at its rates p_l(λ_i)
(inverted dropout, the mask's rate held constant) and descends on φ

    mean_i [CE_i(ŵ_φ(λ_i)) + ½β_i Σ_l ‖W_l(λ_i)‖²],

the gated weights' own decay; every `inner_steps` training steps, one step on (λ, log σ) descends
mean_j CE_j(ŵ_φ(λ_j)) − τ Σ log σ on a validation batch, λ_j perturbed and nothing dropped: λ
reaches the validation loss only through the gated layers, which is all the best response is for.
Both use Adam (the paper's code: SGD with momentum on φ, Adam on λ and σ).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from bilevel.stn.layers import GatedLinear, gated_linear, gated_linear_init, gated_weight_sq_norm
from reporting import Log, Progress, no_log, no_progress

Batch = tuple[Tensor, Tensor]  # x (B, features), y (B,) int64


def hyperparameter_names(layers: int) -> list[str]:
    """`dropout_0`, ... (dropout on the input of each layer; 0 is the data) and `weight_decay`."""
    return [f"dropout_{layer}" for layer in range(layers)] + ["weight_decay"]


def constrained(lam: Tensor) -> Tensor:
    """(p_0, ..., p_{L−1}, β) = (σ(λ_0), ..., σ(λ_{L−1}), e^{λ_L}), for λ (..., L + 1)."""
    return torch.cat([torch.sigmoid(lam[..., :-1]), lam[..., -1:].exp()], -1)


def unconstrained(dropout: list[float], weight_decay: float) -> Tensor:
    """λ from dropout rates in (0, 1) and a weight decay > 0."""
    rates = torch.tensor(dropout, dtype=torch.float32)
    return torch.cat([rates.log() - (-rates).log1p(), torch.tensor([math.log(weight_decay)])])


def gated_mlp_init(
    sizes: list[int], hyperparameters: int, generator: torch.Generator, dtype: torch.dtype = torch.float32
) -> list[GatedLinear]:
    """Gated layers sizes[0] → sizes[1] → ... → sizes[-1]; `hyperparameters` = 0 gives a plain MLP
    (no gates: W(λ̃) = sW)."""
    return [
        gated_linear_init(a, b, hyperparameters, generator, dtype=dtype) for a, b in zip(sizes, sizes[1:])
    ]


def gated_mlp(
    net: list[GatedLinear],
    x: Tensor,
    h: Tensor,
    rates: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Logits (B, classes) for x (B, in) with the gates fed λ̃ = h (B, n); ReLU between layers;
    with `rates` (B, L), unit j on the input of layer l is dropped from example i at rate rates[i, l]."""
    for layer, weights in enumerate(net):
        if rates is not None:
            keep = 1 - rates[:, layer : layer + 1].detach()  # (B, 1)
            x = x * torch.bernoulli(keep.expand_as(x), generator=generator) / keep
        x = gated_linear(weights, x, h)
        if layer < len(net) - 1:
            x = F.relu(x)
    return x


def train_loss(
    net: list[GatedLinear], batch: Batch, lam: Tensor, hnet: bool, generator: torch.Generator
) -> Tensor:
    """mean_i [CE_i + ½β_i Σ_l ‖W_l(λ_i)‖²] with dropout, for per-example λ (B, L + 1); the gates
    see λ when `hnet`, nothing (a plain MLP) otherwise."""
    x, y = batch
    hyper = constrained(lam)
    h = lam if hnet else lam[:, :0]
    logits = gated_mlp(net, x, h, hyper[:, :-1], generator)
    decay = sum(gated_weight_sq_norm(layer, h) for layer in net)  # (B,)
    return (F.cross_entropy(logits, y, reduction="none") + 0.5 * hyper[:, -1] * decay).mean()


def accuracy(net: list[GatedLinear], batch: Batch, lam: Tensor, hnet: bool = True) -> float:
    """Test-time accuracy at λ (L + 1,): nothing dropped, the gates fed λ."""
    x, y = batch
    h = lam.expand(len(x), -1) if hnet else x.new_zeros(len(x), 0)
    with torch.no_grad():
        return (gated_mlp(net, x, h).argmax(1) == y).float().mean().item()


def _batches(data: Batch, size: int, generator: torch.Generator):
    """Minibatches without end, each epoch in a fresh order."""
    while True:
        order = torch.randperm(len(data[1]), generator=generator)
        for start in range(0, len(order) - size + 1, size):
            index = order[start : start + size]
            yield data[0][index], data[1][index]


class StnResult(NamedTuple):
    net: list[GatedLinear]
    lam: Tensor  # the final λ, (L + 1,)
    sigma: Tensor  # the final σ, (L + 1,)
    schedule: list[tuple[int, Tensor]]  # (training step, λ) after each hyperparameter step
    diverged_step: int | None  # the first training step whose perturbed λ or loss was not finite


def stn_tune(
    train: Batch,
    val: Batch,
    sizes: list[int],
    lam0: Tensor,
    steps: int = 3000,
    inner_steps: int = 2,
    warmup: int = 200,
    batch: int = 64,
    lr: float = 1e-3,
    hyper_lr: float = 0.03,
    scale: float = 0.5,
    tau: float = 1e-3,
    seed: int = 0,
    log: Log = no_log,
    progress: Progress = no_progress,
    log_every: int = 100,
) -> StnResult:
    """`steps` training steps of the gated MLP (`sizes`, the first the input width) from λ₀, a
    hyperparameter step after every `inner_steps` of them once `warmup` are done; logs every
    `log_every` steps the hyperparameters (`hyper/...`, constrained), σ and the losses."""
    generator = torch.Generator().manual_seed(seed)
    n = len(lam0)
    net = gated_mlp_init(sizes, n, generator)
    params = [t.requires_grad_(True) for layer in net for t in layer.tensors()]
    lam = lam0.clone().requires_grad_(True)
    log_sigma = torch.full((n,), math.log(scale), requires_grad=True)
    optimizer = torch.optim.Adam(params, lr=lr)
    hyper_optimizer = torch.optim.Adam([lam, log_sigma], lr=hyper_lr)
    train_batches, val_batches = _batches(train, batch, generator), _batches(val, batch, generator)
    schedule, val_loss = [(0, lam.detach().clone())], float("nan")
    names = hyperparameter_names(n - 1)

    def perturbed(size: int) -> Tensor:
        eps = torch.randn(size, n, generator=generator)
        return lam + log_sigma.exp() * eps  # (B, n)

    for step in progress(range(1, steps + 1), total=steps, desc="stn"):
        optimizer.zero_grad()
        data, lams = next(train_batches), perturbed(batch).detach()
        # a λ or σ past float32's range leaves no dropout rates to draw with: diverged, as a loss
        loss = train_loss(net, data, lams, True, generator) if lams.isfinite().all() else None
        if loss is None or not math.isfinite(loss.item()):
            return StnResult(net, lam.detach(), log_sigma.detach().exp(), schedule, step)
        loss.backward()
        optimizer.step()
        if step > warmup and step % inner_steps == 0:
            hyper_optimizer.zero_grad()
            x, y = next(val_batches)
            outer = F.cross_entropy(gated_mlp(net, x, perturbed(len(x))), y)
            (outer - tau * log_sigma.sum()).backward()
            hyper_optimizer.step()
            schedule.append((step, lam.detach().clone()))
            val_loss = outer.item()
        if step % log_every == 0 or step == steps:
            values = constrained(lam.detach())
            metrics = {f"hyper/{name}": value for name, value in zip(names, values.tolist())}
            metrics.update({f"hyper/sigma_{name}": s for name, s in zip(names, log_sigma.exp().tolist())})
            metrics["loss/train"] = loss.item()
            if math.isfinite(val_loss):  # once a hyperparameter step has been taken
                metrics["loss/val"] = val_loss
            metrics["eval/val_accuracy"] = accuracy(net, val, lam.detach())
            log(step, metrics)
    return StnResult(net, lam.detach(), log_sigma.detach().exp(), schedule, None)


def train_fixed(
    train: Batch, sizes: list[int], lam: Tensor, steps: int, batch: int = 64, lr: float = 1e-3, seed: int = 0
) -> tuple[list[GatedLinear], bool]:
    """A plain MLP trained `steps` steps at fixed hyperparameters λ (L + 1,), the same loss and
    optimiser as STN's training steps; returns it and whether every loss stayed finite."""
    generator = torch.Generator().manual_seed(seed)
    net = gated_mlp_init(sizes, 0, generator)
    params = [t.requires_grad_(True) for layer in net for t in layer.tensors()]
    optimizer = torch.optim.Adam(params, lr=lr)
    batches = _batches(train, batch, generator)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = train_loss(net, next(batches), lam.expand(batch, -1), False, generator)
        if not math.isfinite(loss.item()):
            return net, False
        loss.backward()
        optimizer.step()
    return net, True


class Trial(NamedTuple):
    lam: Tensor  # (L + 1,)
    val_accuracy: float
    net: list[GatedLinear]


def random_search(
    train: Batch,
    val: Batch,
    sizes: list[int],
    trials: int,
    steps: int,
    dropout_range: tuple[float, float] = (0.0, 0.8),
    weight_decay_range: tuple[float, float] = (1e-6, 1e-2),
    seed: int = 0,
    progress: Progress = no_progress,
    **training,
) -> list[Trial]:
    """`trials` plain MLPs, each trained `steps` steps at hyperparameters drawn uniformly (dropout
    rates) and log-uniformly (weight decay) from the ranges (Bergstra & Bengio 2012), each scored
    on the validation set; a trial whose loss diverged scores 0."""
    generator = torch.Generator().manual_seed(seed)
    layers = len(sizes) - 1
    results = []
    for trial in progress(range(trials), total=trials, desc="random search"):
        low, high = dropout_range
        rates = low + (high - low) * torch.rand(layers, generator=generator)
        log_low, log_high = math.log(weight_decay_range[0]), math.log(weight_decay_range[1])
        decay = math.exp(log_low + (log_high - log_low) * torch.rand(1, generator=generator).item())
        lam = unconstrained(rates.clamp(1e-4, 1 - 1e-4).tolist(), decay)
        net, finite = train_fixed(train, sizes, lam, steps, seed=seed + 1 + trial, **training)
        results.append(Trial(lam, accuracy(net, val, lam, hnet=False) if finite else 0.0, net))
    return results


def best_trial(trials: list[Trial]) -> Trial:
    """The trial with the highest validation accuracy (the first among equals)."""
    return max(trials, key=lambda trial: trial.val_accuracy)
