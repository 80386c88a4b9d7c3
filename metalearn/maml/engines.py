"""Two engines for the meta-loss of the MAML family, the same math computed two ways.

Meta-loss (Finn et al. 2017, eq. 2): L(θ) = (1/T) Σ_τ L_query,τ(U_τ(θ)), U_τ the inner loop of
`adaptation.fine_tune`. Its gradient through U_τ is second order (MAML), or first order when the
inner gradients are held constant (FOMAML); which parameters adapt, at which rates, is the
`MamlVariant`'s to say (`metalearn.maml.variants`).

- `functional`: torch.func — `grad` for the inner loop, `vmap` over the whole meta-batch at once
  (the pattern of PyTorch's functorch MAML example); one batched computation per meta-batch.
  Second order through batch norm needs the plain-ops `metalearn.convnet.BatchNorm`, which the
  learners swap in.
- `learn2learn`: the reference — learn2learn's `MAML` / `MetaSGD` wrappers, clone and adapt, one
  task at a time.

Which is faster depends on the device (`benchmarks/maml.py`): on a CPU the functional engine wins
on the sine MLP and loses on conv-4, where `vmap` turns the convolutions into grouped ones; on a
GPU, where the per-task loop pays a kernel launch per operation per task, the functional engine
was 9-157x faster in every case measured on an NVIDIA H200 with torch 2.11 (issue 12).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap

from metalearn.fewshot.tasks import Tasks
from metalearn.maml.adaptation import Loss, fine_tune
from metalearn.maml.variants import MamlVariant

ENGINES = ("functional", "learn2learn")
# learn2learn is an optional extra: without it the functional engine is the only one
LEARN2LEARN_MISSING = (
    "engine=learn2learn needs learn2learn, which is not installed: pip install 'playground[learn2learn]' "
    "(tools/install-learn2learn.sh builds it where pip cannot); valid: engine=functional"
)


def learn2learn_installed() -> bool:
    """Whether the `learn2learn` engine can run: learn2learn is importable here."""
    return importlib.util.find_spec("learn2learn") is not None


def functional_meta_loss(
    model: nn.Module,
    rates: Mapping[str, torch.Tensor | float],
    tasks: Tasks,
    steps: int,
    loss_fn: Loss,
    first_order: bool,
) -> torch.Tensor:
    """Mean query loss after adaptation, every task of the meta-batch adapted in one `vmap`."""
    params = dict(model.named_parameters())

    def query_loss(sx, sy, qx, qy):
        fast = fine_tune(model, params, rates, sx, sy, steps, loss_fn, first_order)
        return loss_fn(functional_call(model, fast, (qx,)), qy)

    return vmap(query_loss)(*tasks).mean()


def learn2learn_meta_loss(
    model: nn.Module,
    variant: MamlVariant,
    inner_lr: float,
    lrs: nn.ParameterList | None,
    tasks: Tasks,
    steps: int,
    loss_fn: Loss,
) -> torch.Tensor:
    """The same meta-loss with learn2learn, task by task, as `variant` declares it.

    learn2learn wraps the adapted module: `model.head` (the body then runs as is, shared) or the
    whole model; with `l2l.algorithms.MetaSGD` and the learned rates `lrs` (one per parameter of
    that module) if `variant.learned_rates`, else `l2l.algorithms.MAML`.
    """
    from metalearn.maml._l2l import l2l  # slow to import (seconds): only when this engine is asked for

    head_only = variant.adapt == "head"
    adapted = model.head if head_only else model
    if variant.learned_rates:
        wrapper = l2l.algorithms.MetaSGD(adapted, lr=inner_lr, first_order=variant.first_order, lrs=lrs)
    else:
        wrapper = l2l.algorithms.MAML(adapted, lr=inner_lr, first_order=variant.first_order)
    body = (lambda x: model.features(x).flatten(1)) if head_only else nn.Identity()
    total = 0.0
    for sx, sy, qx, qy in zip(*tasks):
        learner = wrapper.clone()
        support_features = body(sx)
        for _ in range(steps):
            learner.adapt(loss_fn(learner(support_features), sy))
        total = total + loss_fn(learner(body(qx)), qy)
    return total / tasks.n_tasks
