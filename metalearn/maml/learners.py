"""The meta-learners: each owns a model and its meta-optimiser (Adam), takes one meta-training step
on a meta-batch of `Tasks`, and adapts to held-out tasks for evaluation.

- `maml` (Finn et al. 2017), second order; `fomaml`, its first-order approximation (same paper);
  `anil` (Raghu et al. 2020), inner loop on the head only, and `foanil`, its first-order version;
  `metasgd` (Li et al. 2017), learned per-parameter inner rates α, trained with θ. Each is one
  `GradientMetaLearner` and a `MamlVariant` declaring what it does (`metalearn.maml.variants`);
  any of the `ENGINES`.
- `imaml` (Rajeswaran et al. 2019): proximal inner loop, implicit meta-gradient by conjugate
  gradient (`metalearn.maml.imaml`).
- `reptile` (Nichol et al. 2018): φ_τ = SGD^k(θ) on all of task τ's data; the meta-optimiser takes
  θ − mean_τ φ_τ as θ's gradient.
- `protonet` (Snell et al. 2017): logits = −‖f(x) − c_k‖², c_k the mean support embedding of class k.
- `pretrain`: one network trained on all tasks' points pooled, fine-tuned by SGD at test time.

Devices: a learner computes where its model's parameters are; the meta-batches it is given must be
there too (`meta_train` draws them on the CPU and moves them). `to(device)` moves a learner.

A learner refuses, before it touches its model, options outside their ranges (`registration.ranges`'s
one-line `name=value: why; valid: range`): each rate finite and > 0 (0 learns nothing, < 0 ascends),
Adam's first step 10·meta_lr a number of the model's dtype, at least one inner step (none adapts
nothing, and MAML is pretraining on the query points).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from metalearn.convnet import plain_batch_norm, refuse_running_statistics
from metalearn.fewshot.tasks import KINDS, Tasks
from metalearn.maml.adaptation import Step, accuracy, adaptation_curve, criterion, fine_tune, head_names
from metalearn.maml.capture import CAPTURES, CudaGraphStep, compiled
from metalearn.maml.engines import ENGINES, functional_meta_loss, learn2learn_meta_loss
from metalearn.maml.imaml import implicit_meta_gradient, proximal_step
from metalearn.maml.variants import MAML, MamlVariant
from registration.ranges import check_integer, check_number


class MetaLearner:
    """A model, its Adam meta-optimiser, and test-time adaptation by `inner_lr` SGD on all weights.

    `algo` is a label for progress bars, plots and messages; no learner reads it to decide anything.
    `kinds`: the task kinds it learns. `capturable`: whether its meta-step can be compiled or
    recorded (`metalearn.maml.capture`).
    """

    algo = "pretrain"
    kinds = KINDS
    capturable = False

    def __init__(
        self,
        model: nn.Module,
        kind: str,
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        meta_lr: float = 1e-3,
    ):
        if kind not in self.kinds:
            needs = " or ".join(f"kind={k!r}" for k in self.kinds)
            raise ValueError(f"algo={self.algo!r} needs {needs}, got kind={kind!r}")
        check_number("inner_lr", inner_lr, "the inner SGD rate: 0 adapts nothing, < 0 ascends", above=0)
        check_integer("inner_steps", inner_steps, "steps of the inner loop: with none nothing adapts", 1)
        self.model, self.kind = model, kind
        # Adam's first step is meta_lr/(1 − β₁) = 10·meta_lr, a number of the parameters' dtype
        largest = torch.finfo(self.meta_parameters()[0].dtype).max / 10
        why = "Adam's meta-update rate: 0 learns nothing, < 0 ascends, and its first step is 10·meta_lr"
        check_number("meta_lr", meta_lr, why, above=0, below=largest)
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.loss_fn = criterion(kind)
        self.optimizer = torch.optim.Adam(self.meta_parameters(), lr=meta_lr, capturable=self._capturable())

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
        return self._step(tasks).item()

    def _step(self, tasks: Tasks) -> torch.Tensor:
        """One meta-training step with no host synchronisation (so a CUDA graph can record it)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.meta_loss(tasks)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def inner_step(self) -> Step:
        """One step of test-time adaptation, (params, x, y) -> params: SGD with `rates()`."""
        rates = {name: r.detach() if torch.is_tensor(r) else r for name, r in self.rates().items()}
        return lambda params, x, y: fine_tune(self.model, params, rates, x, y, 1, self.loss_fn)

    def adaptation_curve(self, tasks: Tasks, steps: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Query loss and accuracy (None for regression) per task after 0..steps of `inner_step()`:
        (steps + 1, T)."""
        params = {name: p.detach() for name, p in self.model.named_parameters()}
        with torch.no_grad():
            classification = self.kind == "classification"
            return adaptation_curve(
                self.model, params, self.inner_step(), tasks, steps, self.loss_fn, classification
            )

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self._load_optimizer(state["optimizer"])

    def to(self, device: torch.device) -> MetaLearner:
        """This learner, moved in place to `device`: model, meta-parameters and optimiser state."""
        self.model.to(device)
        for p in self.meta_parameters():
            p.data = p.data.to(device)
        self._load_optimizer(self.optimizer.state_dict())  # moves its state to the parameters
        return self

    def _capturable(self) -> bool:
        """Adam is capturable (its step count on the device, as a CUDA graph needs) exactly on a GPU,
        whether or not the step is recorded: eager and replayed steps then round alike, and their
        curves agree bit for bit. Capturable Adam's rounding alone moves a sine curve by 1e-4 in 100
        steps."""
        return self.meta_parameters()[0].is_cuda

    def _load_optimizer(self, state: dict) -> None:
        """Adam's state, capturable or not as `_capturable()` says where the parameters are now,
        whichever device the state was saved on (a capturable step count lives beside the
        parameters, any other on the CPU)."""
        capturable = self._capturable()
        groups = [{**group, "capturable": capturable} for group in state["param_groups"]]
        self.optimizer.load_state_dict({**state, "param_groups": groups})
        for moments in self.optimizer.state.values():
            if not capturable and torch.is_tensor(moments.get("step")):
                moments["step"] = moments["step"].cpu()


class GradientMetaLearner(MetaLearner):
    """The MAML family: the meta-gradient flows through `inner_steps` inner steps, as `variant`
    declares them (first or second order, all weights or the head, fixed or learned rates).

    With the functional engine, a second-order variant adapting every weight differentiates the
    model twice under `vmap`, which torch's own batch norm gets wrong: the model's batch norms are
    swapped, in place, for `metalearn.convnet.BatchNorm` (same parameters, same forward); under
    every other variant a batch norm that keeps running statistics is refused, as vmap cannot update
    them in place (learn2learn's engine runs torch's batch norm as it is). `capture`
    (one of `CAPTURES`, functional engine only) records the meta-step (`metalearn.maml.capture`).

    `meta_batch_chunk` = C bounds the memory of a meta-step: the meta-batch's T tasks go through the
    meta-loss C at a time, each chunk's graph freed by its backward pass, and the meta-gradient
    accumulates Σ_chunks (n_c/T)·∇L_chunk = ∇L, the unchunked one up to summation order (None:
    the whole meta-batch at once).
    """

    capturable = True

    def __init__(
        self,
        model: nn.Module,
        kind: str,
        variant: MamlVariant = MAML,
        engine: str = "functional",
        inner_lr: float = 0.01,
        inner_steps: int = 1,
        meta_lr: float = 1e-3,
        capture: str = "none",
        algo: str = "maml",
        meta_batch_chunk: int | None = None,
    ):
        if meta_batch_chunk is not None:
            check_integer("meta_batch_chunk", meta_batch_chunk, "tasks per chunk of the meta-batch", 1)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}")
        if capture not in CAPTURES:
            raise ValueError(f"unknown capture {capture!r}; valid: {', '.join(CAPTURES)}")
        if capture != "none" and engine != "functional":
            raise ValueError(
                f"capture={capture!r} with engine={engine!r}; valid: capture='none', or engine='functional'"
            )
        device = next(model.parameters()).device
        if capture == "cuda_graph" and device.type != "cuda":
            raise ValueError(f"capture='cuda_graph' needs the model on a CUDA device; it is on {device}")
        self.variant, self.engine, self.algo = variant, engine, algo
        self.meta_batch_chunk = meta_batch_chunk
        self.lrs = None
        if variant.learned_rates:
            adapted = model.head if variant.adapt == "head" else model
            self.lrs = nn.ParameterList(
                [nn.Parameter(torch.full_like(p, inner_lr)) for p in adapted.parameters()]
            )
        super().__init__(model, kind, inner_lr, inner_steps, meta_lr)  # the options checked, then the model
        if engine == "functional" and not variant.first_order and variant.adapt == "all":
            plain_batch_norm(model)  # the same parameters, which Adam holds already
        elif engine == "functional":
            refuse_running_statistics(model)
        meta_loss = compiled(functional_meta_loss) if capture == "compile" else functional_meta_loss
        self._functional_meta_loss = meta_loss
        self._graph = CudaGraphStep(self._step) if capture == "cuda_graph" else None

    def meta_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters()) + (list(self.lrs) if self.lrs is not None else [])

    def rates(self) -> dict[str, torch.Tensor | float]:
        if self.variant.adapt == "head":
            names = head_names(self.model)
        else:
            names = [name for name, _ in self.model.named_parameters()]
        if self.lrs is not None:
            return dict(zip(names, self.lrs))
        return {name: self.inner_lr for name in names}

    def meta_loss(self, tasks: Tasks) -> torch.Tensor:
        if self.engine == "functional":
            rates = self.rates()
            return self._functional_meta_loss(
                self.model, rates, tasks, self.inner_steps, self.loss_fn, self.variant.first_order
            )
        return learn2learn_meta_loss(
            self.model, self.variant, self.inner_lr, self.lrs, tasks, self.inner_steps, self.loss_fn
        )

    def meta_step(self, tasks: Tasks) -> float:
        return super().meta_step(tasks) if self._graph is None else self._graph(tasks)

    def _step(self, tasks: Tasks) -> torch.Tensor:
        """The meta-step, chunk by chunk when the meta-batch is larger than `meta_batch_chunk`."""
        size = tasks.support_x.shape[0]
        chunk = self.meta_batch_chunk or size
        if chunk >= size:
            return super()._step(tasks)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for start in range(0, size, chunk):
            part = Tasks(*(t[start : start + chunk] for t in tasks))
            loss = self.meta_loss(part) * (part.support_x.shape[0] / size)
            loss.backward()
            total = total + loss.detach()
        self.optimizer.step()
        return total

    def to(self, device: torch.device) -> GradientMetaLearner:
        super().to(device)
        if self._graph is not None:  # a recorded graph reads the old buffers: record anew
            self._graph = CudaGraphStep(self._step)
        return self

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

        def adapt(x, y):  # first order by construction: no graph is kept under no_grad
            fast = fine_tune(self.model, params, rates, x, y, self.inner_steps, self.loss_fn)
            return fast, self.loss_fn(functional_call(self.model, fast, (x,)), y)

        with torch.no_grad():
            adapted, losses = vmap(adapt)(x, y)
        for name, p in self.model.named_parameters():
            p.grad = p.detach() - adapted[name].mean(0)
        self.optimizer.step()
        return losses.mean().item()


class IMAML(MetaLearner):
    """iMAML: Adam on the implicit meta-gradient mean_τ (I + H_τ/λ)⁻¹ ∇L_q,τ(φ*_τ) (Rajeswaran et al. 2019).

    φ*_τ: `inner_steps` backtracking steps of rate up to `inner_lr` on L_s,τ(φ) + (λ/2)‖φ − θ‖² from
    φ = θ (`metalearn.maml.imaml.proximal_step`); the inverse by `cg_iters` iterations of conjugate
    gradient. Test-time adaptation takes the same proximal steps, one per step of the curve (the
    first is plain SGD's wherever its rate passes the test: the proximal term's gradient is 0 at θ).
    """

    algo = "imaml"

    def __init__(self, model, kind, inner_lr=0.01, inner_steps=1, meta_lr=1e-3, prox_lambda=1.0, cg_iters=5):
        check_number("prox_lambda", prox_lambda, "the proximal weight λ: (I + H/λ)⁻¹ needs λ > 0", above=0)
        check_integer(
            "cg_iters", cg_iters, "CG iterations for (I + H/λ)⁻¹: none gives a zero meta-gradient", 1
        )
        super().__init__(model, kind, inner_lr, inner_steps, meta_lr)
        self.prox_lambda, self.cg_iters = prox_lambda, cg_iters

    def meta_gradient(self, tasks: Tasks) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """θ's meta-gradient by name, and each task's query loss at φ*_τ: (T,)."""
        return implicit_meta_gradient(
            self.model, tasks, self.loss_fn, self.prox_lambda, self.inner_lr, self.inner_steps, self.cg_iters
        )

    def meta_step(self, tasks: Tasks) -> float:
        grads, losses = self.meta_gradient(tasks)
        for name, p in self.model.named_parameters():
            p.grad = grads[name]
        self.optimizer.step()
        return losses.mean().item()

    def inner_step(self) -> Step:
        theta = {name: p.detach() for name, p in self.model.named_parameters()}
        return lambda phi, x, y: proximal_step(
            self.model, theta, phi, x, y, self.loss_fn, self.prox_lambda, self.inner_lr
        )


class ProtoNet(MetaLearner):
    """Prototypical networks on `model.features`; test-time "adaptation" is computing prototypes."""

    algo = "protonet"
    kinds = ("classification",)  # prototypes are class means

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
        return losses[None].expand(steps + 1, -1), accuracies[None].expand(steps + 1, -1)
