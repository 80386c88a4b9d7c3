"""How close is a model's in-context prediction to an explicit learning algorithm's?

A predictor maps (xs (B, N, d), ys (B, N), xq (B, d)) to ŷ (B,): a trained model or one of
`baselines`. All losses are plain MSE (no ½); SPD and ILWD are divided by d (REFERENCES.md).
"""
from __future__ import annotations

from typing import Callable

import torch

from metalearn.icl.baselines import Predictor, ols_weights
from metalearn.icl.data import Tasks


def sensitivity(predict: Predictor, tasks: Tasks) -> torch.Tensor:
    """g = ∂ŷ/∂x_q for every prompt, shape (B, d). Prompts are independent, so ∂(Σ_b ŷ_b)/∂x_q."""
    with torch.enable_grad():
        xq = tasks.xq.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(predict(tasks.xs, tasks.ys, xq).sum(), xq)
    return grad


def alignment(model: Predictor, reference: Predictor, tasks: Tasks) -> dict[str, float]:
    """von Oswald et al. (2023), their `analyse()`: how alike two in-context learners are.

    preds_diff = E|ŷ_model − ŷ_ref|; model_cos = E cos(g_model, g_ref); model_diff =
    E‖g_model − g_ref‖, with g = ∂ŷ/∂x_q. The cosine is ⟨g, h⟩ / √(‖g‖²‖h‖²), which is exactly 1
    for g = h in IEEE arithmetic (√(a²) = |a|).
    """
    with torch.no_grad():
        preds_diff = (model(tasks.xs, tasks.ys, tasks.xq) - reference(tasks.xs, tasks.ys, tasks.xq))
    g, h = sensitivity(model, tasks), sensitivity(reference, tasks)  # (B, d) each
    cos = (g * h).sum(-1) / ((g * g).sum(-1) * (h * h).sum(-1)).sqrt()
    return {"preds_diff": float(preds_diff.abs().mean()), "model_cos": float(cos.mean()),
            "model_diff": float((g - h).norm(dim=-1).mean())}


def spd(a: Predictor, b: Predictor, tasks: Tasks) -> float:
    """Squared prediction difference (Akyürek et al., 2022): E(A₁(D)(x′) − A₂(D)(x′))² / d."""
    with torch.no_grad():
        diff = a(tasks.xs, tasks.ys, tasks.xq) - b(tasks.xs, tasks.ys, tasks.xq)
    return float((diff**2).mean()) / tasks.xs.shape[2]


def implied_weights(predict: Predictor, tasks: Tasks, probe_inputs: torch.Tensor) -> torch.Tensor:
    """ŵ_A: the least-squares linear fit to A's predictions at M probe inputs (B, M, d) per prompt.

    Akyürek et al. (2022). Every probe input is asked as the query of its own copy of the prompt.
    Returns (B, d); for a linear algorithm ŵᵀx it is ŵ itself once M ≥ d.
    """
    b, m, d = probe_inputs.shape
    with torch.no_grad():
        preds = predict(tasks.xs.repeat_interleave(m, 0), tasks.ys.repeat_interleave(m, 0),
                        probe_inputs.reshape(b * m, d)).reshape(b, m)
    return ols_weights(probe_inputs, preds)


def ilwd(weights_a: torch.Tensor, weights_b: torch.Tensor) -> float:
    """Implicit linear weight difference (Akyürek et al., 2022): E‖ŵ_A₁ − ŵ_A₂‖² / d."""
    return float(((weights_a - weights_b) ** 2).sum(-1).mean()) / weights_a.shape[-1]


def probe_r2(states: torch.Tensor, targets: torch.Tensor, train_fraction: float = 0.5,
             ridge: float = 1e-6) -> float:
    """R² of a linear probe (with bias) reading `targets` (B, m) from hidden `states` (B, k).

    Fit by ridge-regularised least squares on the first `train_fraction` of the prompts, scored
    on the rest: R² = 1 − Σ‖t − t̂‖² / Σ‖t − t̄‖², pooled over the m target coordinates.
    """
    features = torch.cat([states, torch.ones_like(states[:, :1])], -1).double()  # (B, k+1)
    targets = targets.double()
    split = int(len(states) * train_fraction)
    f_train, t_train = features[:split], targets[:split]
    gram = f_train.T @ f_train + ridge * split * torch.eye(features.shape[1], dtype=torch.float64)
    coef = torch.linalg.solve(gram, f_train.T @ t_train)  # (k+1, m)
    residual = targets[split:] - features[split:] @ coef
    total = targets[split:] - targets[split:].mean(0)
    return float(1 - (residual**2).sum() / (total**2).sum())


def sweep(metrics: dict[str, Callable[[Tasks], float]], batches: list[Tasks]) -> dict[str, list[float]]:
    """Each metric on each batch: error vs context length (Garg et al., 2022) when the batches
    differ in N, out-of-distribution behaviour when they are one batch scaled by α."""
    return {name: [metric(tasks) for tasks in batches] for name, metric in metrics.items()}
