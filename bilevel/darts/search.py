"""DARTS's search (Liu, Simonyan & Yang 2019, Algorithm 1) on the digits, α's gradient from any
hypergradient method of the library, with the diagnostics of its failure modes logged per epoch.

Each step, on a training batch B_t and a validation batch B_v:
    α ← Adam(α, dF/dα)   dF/dα by `method(SupernetProblem(B_t, B_v), α, w=w)`
    w ← SGD-momentum(w, ∇_w L_train(w, α) on B_t)
α first, then w, as Algorithm 1 and the authors' code order them; one_step's ξ is the weights'
learning rate (the paper's choice). At the end of each epoch, in float64 on the validation split and
the first `diagnostic_examples` training digits: softmax(α) of every edge, the fraction of edges
whose strongest operation is skip or none (the collapse of Zela et al. 2020 and Chu et al. 2020),
the dominant eigenvalue of ∇²_α L_val by power iteration on Hessian-vector products (Zela et al.
2020's early sign of that collapse), and the cosine between the method's hypergradient and a
converged implicit-function-theorem one (CG to a tolerance on the damped weight Hessian, see
`SupernetProblem`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from bilevel.darts.problem import SupernetProblem
from bilevel.darts.supernet import NONE, OPS, Flat, Genotype, derive, edge_list, initialise, supernet
from bilevel.digits import Digits
from bilevel.hypergradients import Method, ift_cg
from reporting import Log, Progress, no_log, no_progress


class SearchSettings(NamedTuple):
    """The supernet, the two optimisers (DARTS's choices unless said) and the diagnostics."""

    nodes: int = 3  # intermediate nodes per cell
    cells: int = 1  # cells, sharing α
    width: int = 16  # features per node
    top_k: int = 2  # incoming edges kept per node when deriving
    epochs: int = 10
    batch_size: int = 64
    w_lr: float = 0.05  # SGD on w, also ξ of one_step
    momentum: float = 0.9
    weight_decay: float = 3e-4  # in L_train, as DARTS
    alpha_lr: float = 1e-2  # Adam on α (DARTS: 3e-4 for 50 epochs on CIFAR-10)
    alpha_betas: tuple[float, float] = (0.5, 0.999)  # DARTS's
    alpha_weight_decay: float = 1e-3  # DARTS's
    alpha_init: float = 1e-3  # α₀ ~ alpha_init · N(0, 1), DARTS's
    power_iters: int = 10  # Hessian-vector products per eigenvalue estimate (0: not measured)
    ift_iters: int = 100  # CG iterations at most for the reference hypergradient (0: not measured)
    ift_tol: float = 1e-6  # CG's relative residual
    damping: float = 1.0  # δ₀ of L_train's proximal term (see SupernetProblem): IFT methods only
    diagnostic_examples: int = 256  # training examples of the per-epoch Hessians


class SearchResult(NamedTuple):
    alphas: list[Tensor]  # α (edges, ops) at the end of each epoch, the first before any step
    genotype: Genotype  # derived from the final α
    epochs: list[dict[str, float]]  # the metrics logged after each epoch
    steps: int  # search steps taken (one α and one w step each)
    seconds: float  # wall time of the search steps, diagnostics excluded
    diverged_step: int | None  # the first search step whose loss, α or w was not finite
    last_finite: dict[str, float]


def search(
    data: Digits,
    method: Method,
    settings: SearchSettings | None = None,
    generator: torch.Generator | None = None,
    log: Log = no_log,
    progress: Progress = no_progress,
) -> SearchResult:
    """`settings.epochs` epochs of alternating α and w steps over the training split, α's gradient
    by `method`; logs epoch e (0: before the first step) with `diagnostics`."""
    s = settings or SearchSettings()
    generator = generator or torch.Generator().manual_seed(0)
    dtype = data.train.x.dtype
    net = supernet(s.nodes, s.cells, s.width).to(dtype)
    initialise(net, generator)
    flat = Flat(net)
    w = flat.flatten()
    alpha = s.alpha_init * torch.randn(len(edge_list(s.nodes)), len(OPS), generator=generator, dtype=dtype)
    alpha.requires_grad_()
    optimiser = torch.optim.Adam(
        [alpha], lr=s.alpha_lr, betas=s.alpha_betas, weight_decay=s.alpha_weight_decay
    )
    velocity = torch.zeros_like(w)
    batches = math.ceil(len(data.train.y) / s.batch_size)
    alphas, epochs, last, step, seconds = [alpha.detach().clone()], [], {}, 0, 0.0
    metrics = diagnostics(flat, w, alpha.detach(), data, method, s, generator)
    log(0, metrics)
    epochs.append(metrics)
    for epoch in progress(range(1, s.epochs + 1), total=s.epochs, desc="search"):
        start, losses = time.perf_counter(), []
        train_order = torch.randperm(len(data.train.y), generator=generator)
        val_order = torch.randint(len(data.val.y), (batches * s.batch_size,), generator=generator)
        for b in range(batches):
            train_batch = _batch(data.train, train_order[b * s.batch_size : (b + 1) * s.batch_size])
            val_batch = _batch(data.val, val_order[b * s.batch_size : (b + 1) * s.batch_size])
            hypergradient, loss = search_step(flat, w, alpha.detach(), train_batch, val_batch, method, s)
            optimiser.zero_grad()
            alpha.grad = hypergradient.view(alpha.shape)
            optimiser.step()
            problem = SupernetProblem(flat, train_batch, val_batch, w, alpha.detach(), s.w_lr, s.weight_decay)
            velocity = s.momentum * velocity + problem.train_grad(w, alpha.detach().reshape(-1))
            w = w - s.w_lr * velocity
            losses.append(loss)
            step += 1
            if not (math.isfinite(loss) and alpha.isfinite().all() and w.isfinite().all()):
                log(epoch, {"loss/val_batch": loss})
                return SearchResult(
                    alphas, derive(alphas[-1], s.nodes, s.cells, s.top_k), epochs, step, seconds, step, last
                )
        seconds += time.perf_counter() - start
        alphas.append(alpha.detach().clone())
        metrics = {"loss/val_batch": sum(losses) / len(losses), "search/seconds": seconds}
        metrics.update(diagnostics(flat, w, alpha.detach(), data, method, s, generator))
        log(epoch, metrics)
        epochs.append(metrics)
        last = metrics
    genotype = derive(alphas[-1], s.nodes, s.cells, s.top_k)
    return SearchResult(alphas, genotype, epochs, step, seconds, None, last)


def search_step(
    flat: Flat,
    w: Tensor,
    alpha: Tensor,
    train_batch: tuple[Tensor, Tensor],
    val_batch: tuple[Tensor, Tensor],
    method: Method,
    settings: SearchSettings,
) -> tuple[Tensor, float]:
    """dF/dα (flat) by `method` at the current w on these batches, and L_val(w, α) there."""
    s = settings
    problem = SupernetProblem(flat, train_batch, val_batch, w, alpha, s.w_lr, s.weight_decay, s.damping)
    hypergradient = method(problem, problem.lam0, w=w)
    return hypergradient.value, problem.val_loss(w, problem.lam0).item()


def diagnostics(
    flat: Flat,
    w: Tensor,
    alpha: Tensor,
    data: Digits,
    method: Method,
    settings: SearchSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """The per-epoch measurements in float64, on the validation split and the first
    `diagnostic_examples` training examples: each edge's softmax(α), `search/skip_fraction`, the
    supernet's losses and validation accuracy, `search/hessian_eigenvalue`, and `search/ift_cosine`
    with what its reference took (the weight Hessian's extreme eigenvalues, the damping δ, the CG
    products)."""
    s = settings
    w64, lam = w.double(), alpha.double().reshape(-1)
    train = (data.train.x[: s.diagnostic_examples].double(), data.train.y[: s.diagnostic_examples])
    val = (data.val.x.double(), data.val.y)
    problem = SupernetProblem(flat, train, val, w64, alpha.double(), s.w_lr, s.weight_decay, s.damping)
    weights = problem.edge_weights(lam)  # (edges, ops)
    metrics = {
        f"edge/{i}-{j}/{op}": weights[e, k].item()
        for e, (i, j) in enumerate(edge_list(s.nodes))
        for k, op in enumerate(OPS)
    }
    metrics["search/skip_fraction"] = skip_fraction(weights)
    metrics["loss/train"] = problem.train_loss(w64, lam).item()
    logits = problem.logits(w64, lam, val[0])
    metrics["loss/val"] = torch.nn.functional.cross_entropy(logits, val[1]).item()
    metrics["search/val_accuracy"] = (logits.argmax(-1) == val[1]).double().mean().item()
    if s.power_iters:
        hvp = lambda v: alpha_hessian_product(problem, w64, lam, v)
        metrics["search/hessian_eigenvalue"] = dominant_eigenvalue(hvp, lam, s.power_iters, generator)
    if s.ift_iters:
        metrics.update(ift_cosine(problem, w64, lam, method, s, generator))
    return metrics


def ift_cosine(
    problem: SupernetProblem,
    w: Tensor,
    lam: Tensor,
    method: Method,
    settings: SearchSettings,
    generator: torch.Generator,
) -> dict[str, float]:
    """cos(method's dF/dα, IFT's) at the current w. The IFT reference is `ift_cg` to a relative
    residual `ift_tol` on ∂²_ww L_train + δI: away from a minimum the weight Hessian is indefinite,
    so δ = δ₀ + 2 max(0, −λ_min), λ_min estimated by power iteration on the Hessian shifted by its
    dominant eigenvalue, makes CG's operator positive definite (the factor 2 covers the estimate,
    which is never below the true λ_min)."""
    s = settings
    _, transposed = torch.func.vjp(lambda u: problem.train_grad(u, lam), w)
    weight_hvp = lambda v: transposed(v)[0] - problem.damping * v  # ∂²_ww of the undamped L_train
    dominant = dominant_eigenvalue(weight_hvp, w, s.power_iters or 20, generator)
    other = dominant_eigenvalue(lambda v: weight_hvp(v) - dominant * v, w, s.power_iters or 20, generator)
    low, high = sorted((dominant, other + dominant))
    damping = s.damping + 2 * max(0.0, -low)
    damped = SupernetProblem(
        problem.flat, problem.train, problem.val, w, lam.view(problem.shape), s.w_lr, s.weight_decay, damping
    )
    reference = ift_cg(s.ift_iters, s.ift_tol)(damped, lam, w=w)
    ours = method(problem, lam, w=w).value
    return {
        "search/ift_cosine": torch.nn.functional.cosine_similarity(ours, reference.value, dim=0).item(),
        "search/ift_cg_products": reference.products,
        "search/ift_damping": damping,
        "search/weight_hessian_min": low,
        "search/weight_hessian_max": high,
    }


def skip_fraction(weights: Tensor) -> float:
    """The fraction of edges whose largest softmax(α) weight is on skip or none: (edges, ops) -> [0, 1]."""
    strongest = weights.argmax(dim=-1)
    return ((strongest == OPS.index("skip")) | (strongest == NONE)).double().mean().item()


def alpha_hessian_product(problem: SupernetProblem, w: Tensor, lam: Tensor, v: Tensor) -> Tensor:
    """∇²_α L_val(w, α) v at fixed w, forward over reverse."""
    grad = lambda at: torch.func.grad(problem.val_loss, argnums=1)(w, at)
    return torch.func.jvp(grad, (lam,), (v,))[1]


def dominant_eigenvalue(
    hvp: Callable[[Tensor], Tensor], like: Tensor, iters: int, generator: torch.Generator
) -> float:
    """Power iteration v ← Hv/‖Hv‖ from a random v, `iters` products: the Rayleigh quotient vᵀHv of
    the last v, which tends to the eigenvalue of largest magnitude (von Mises 1929)."""
    v = torch.randn(like.shape, generator=generator).to(like.dtype)
    v = v / v.norm()
    eigenvalue = 0.0
    for _ in range(iters):
        hv = hvp(v)
        eigenvalue = v.dot(hv).item()
        norm = hv.norm()
        if norm == 0:
            return 0.0
        v = hv / norm
    return eigenvalue


def _batch(split, index: Tensor) -> tuple[Tensor, Tensor]:
    return split.x[index], split.y[index]
