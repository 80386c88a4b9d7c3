"""The meta-learners: each owns a model and its meta-optimiser (Adam), takes one meta-training step
on a meta-batch of `Tasks`, and adapts to held-out tasks for evaluation.

- `maml` (Finn et al. 2017), second order; `fomaml`, its first-order approximation (same paper);
  `anil` (Raghu et al. 2020), inner loop on the head only; `metasgd` (Li et al. 2017), learned
  per-parameter inner rates α, trained with θ. Any of the `ENGINES`.
- `reptile` (Nichol et al. 2018): φ_τ = SGD^k(θ) on all of task τ's data; the meta-optimiser takes
  θ − mean_τ φ_τ as θ's gradient.
- `protonet` (Snell et al. 2017): logits = −‖f(x) − c_k‖², c_k the mean support embedding of class k.
- `pretrain`: one network trained on all tasks' points pooled, fine-tuned by SGD at test time.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from metalearn.fewshot.tasks import Tasks
from metalearn.maml.adaptation import accuracy, adaptation_curve, criterion, fine_tune, head_names
from metalearn.maml.engines import ENGINES, functional_meta_loss, learn2learn_meta_loss

GRADIENT_ALGORITHMS = ("maml", "fomaml", "anil", "metasgd")
ALGORITHMS = GRADIENT_ALGORITHMS + ("reptile", "protonet", "pretrain")


class MetaLearner:
    """A model, its Adam meta-optimiser, and test-time adaptation by `inner_lr` SGD on all weights."""

    algo = "pretrain"

    def __init__(
        self, model: nn.Module, kind: str, inner_lr: float = 0.01, inner_steps: int = 1, meta_lr: float = 1e-3
    ):
        self.model, self.kind = model, kind
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.loss_fn = criterion(kind)
        self.optimizer = torch.optim.Adam(self.meta_parameters(), lr=meta_lr)

    def meta_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def rates(self) -> dict[str, torch.Tensor | float]:
        """Inner-loop rate of each adapted parameter, by name."""
        return {name: self.inner_lr for name, _ in self.model.named_parameters()}

    def meta_loss(self, tasks: Tasks) -> torch.Tensor:
        """Pretraining: the loss on every point of every task, pooled."""
        x = torch.cat([tasks.support_x, tasks.query_x], 1).flatten(0, 1)
        y = torch.cat([tasks.support_y, tasks.query_y], 1).flatten(0, 1)
        return self.loss_fn(self.model(x), y)

    def meta_step(self, tasks: Tasks) -> float:
        """One meta-training step; returns the meta-loss before it."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.meta_loss(tasks)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def adaptation_curve(self, tasks: Tasks, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Query loss and accuracy (None for regression) per task after 0..steps steps: (T, steps + 1)."""
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        rates = {name: r.detach() if torch.is_tensor(r) else r for name, r in self.rates().items()}
        with torch.no_grad():
            classification = self.kind == "classification"
            return adaptation_curve(self.model, params, rates, tasks, steps, self.loss_fn, classification)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class GradientMetaLearner(MetaLearner):
    """MAML, FOMAML, ANIL or Meta-SGD: the meta-gradient flows through `inner_steps` inner steps."""

    def __init__(self, model, kind, algo="maml", engine="functional", inner_lr=0.01, inner_steps=1, meta_lr=1e-3):
        self.algo, self.engine = algo, engine
        self.first_order = algo == "fomaml"
        if engine == "functional" and algo in ("maml", "metasgd") and _has_batch_norm(model):
            raise ValueError(f"engine='functional' with algo={algo!r} differentiates BatchNorm twice under vmap, "
                             "which torch gets wrong; valid: engine='learn2learn', or algo='fomaml' or 'anil'")
        self.lrs = None
        if algo == "metasgd":
            self.lrs = nn.ParameterList([nn.Parameter(torch.full_like(p, inner_lr)) for p in model.parameters()])
        super().__init__(model, kind, inner_lr, inner_steps, meta_lr)

    def meta_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) + (list(self.lrs) if self.lrs is not None else [])

    def rates(self) -> dict[str, torch.Tensor | float]:
        names = [name for name, _ in self.model.named_parameters()]
        if self.lrs is not None:
            return dict(zip(names, self.lrs))
        return {name: self.inner_lr for name in (head_names(self.model) if self.algo == "anil" else names)}

    def meta_loss(self, tasks: Tasks) -> torch.Tensor:
        if self.engine == "functional":
            rates = self.rates()
            return functional_meta_loss(self.model, rates, tasks, self.inner_steps, self.loss_fn, self.first_order)
        return learn2learn_meta_loss(
            self.model, self.algo, self.inner_lr, self.lrs, tasks, self.inner_steps, self.loss_fn, self.first_order
        )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "lrs": [r.detach() for r in self.lrs] if self.lrs is not None else []}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for rate, saved in zip(self.lrs or [], state["lrs"]):
            rate.data.copy_(saved)


class Reptile(MetaLearner):
    """Reptile: Adam on the pseudo-gradient θ − mean_τ SGD^k_τ(θ), tasks adapted in one `vmap`."""

    algo = "reptile"

    def meta_step(self, tasks: Tasks) -> float:
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        x = torch.cat([tasks.support_x, tasks.query_x], 1)
        y = torch.cat([tasks.support_y, tasks.query_y], 1)
        rates = self.rates()

        def adapt(x, y):
            fast = fine_tune(self.model, params, rates, x, y, self.inner_steps, self.loss_fn, first_order=True)
            return fast, self.loss_fn(functional_call(self.model, fast, (x,)), y)

        with torch.no_grad():
            adapted, losses = vmap(adapt)(x, y)
        for name, p in self.model.named_parameters():
            p.grad = p.detach() - adapted[name].mean(0)
        self.optimizer.step()
        return losses.mean().item()


class ProtoNet(MetaLearner):
    """Prototypical networks on `model.features`; test-time "adaptation" is computing prototypes."""

    algo = "protonet"

    def _episode(self, tasks: Tasks) -> tuple[torch.Tensor, torch.Tensor]:
        """Query loss and accuracy per task, shape (T,)."""
        features = self.model.features
        params = {name: p for name, p in features.named_parameters()}
        ways = self.model.head.out_features

        def one_task(sx, sy, qx, qy):
            support = functional_call(features, params, (sx,)).flatten(1)  # (N, D)
            query = functional_call(features, params, (qx,)).flatten(1)  # (Q, D)
            onehot = F.one_hot(sy, ways).to(support.dtype)  # (N, W)
            prototypes = onehot.T @ support / onehot.sum(0)[:, None]  # (W, D)
            logits = -((query[:, None, :] - prototypes[None]) ** 2).sum(-1)  # (Q, W)
            return F.cross_entropy(logits, qy), accuracy(logits, qy)

        return vmap(one_task)(*tasks)

    def meta_loss(self, tasks: Tasks) -> torch.Tensor:
        return self._episode(tasks)[0].mean()

    def adaptation_curve(self, tasks: Tasks, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            losses, accuracies = self._episode(tasks)
        return losses[:, None].expand(-1, steps + 1), accuracies[:, None].expand(-1, steps + 1)


def _has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def make_learner(
    algo: str,
    model: nn.Module,
    kind: str,
    *,
    engine: str = "functional",
    inner_lr: float = 0.01,
    inner_steps: int = 1,
    meta_lr: float = 1e-3,
) -> MetaLearner:
    """The learner for `algo` (one of ALGORITHMS); `engine` (one of ENGINES) for the MAML family."""
    if algo not in ALGORITHMS:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGORITHMS)}")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
    if algo == "protonet" and kind != "classification":
        raise ValueError(f"algo='protonet' needs kind='classification', got kind={kind!r}")
    hyper = dict(inner_lr=inner_lr, inner_steps=inner_steps, meta_lr=meta_lr)
    if algo in GRADIENT_ALGORITHMS:
        return GradientMetaLearner(model, kind, algo=algo, engine=engine, **hyper)
    return {"reptile": Reptile, "protonet": ProtoNet, "pretrain": MetaLearner}[algo](model, kind, **hyper)
