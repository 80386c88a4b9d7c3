"""How close is a model's in-context prediction to an explicit learning algorithm's?

A predictor maps (xs (B, N, d), ys (B, N), xq (B, d)) to ŷ (B,): a trained model or one of
`baselines`. All losses are plain MSE (no ½). SPD and ILWD are returned divided by the input
dimension d: Akyürek et al. (2022) define both as plain expectations (their Section 4.1) and plot
them divided by d ("dimension normalized", their figures 1–3), so these numbers compare with their
figures (REFERENCES.md, In-context learning).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metalearn.icl.baselines import Predictor, ols_weights
from metalearn.icl.data import Prompts


def sensitivity(predict: Predictor, prompts: Prompts) -> torch.Tensor:
    """g = ∂ŷ/∂x_q for every prompt, shape (B, d). Prompts are independent, so ∂(Σ_b ŷ_b)/∂x_q."""
    with torch.enable_grad():
        xq = prompts.xq.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(predict(prompts.xs, prompts.ys, xq).sum(), xq)
    return grad


def alignment(model: Predictor, reference: Predictor, prompts: Prompts) -> dict[str, float]:
    """von Oswald et al. (2023), their `analyse()`: how alike two in-context learners are.

    preds_diff = E|ŷ_model − ŷ_ref|; model_cos = E cos(g_model, g_ref); model_diff =
    E‖g_model − g_ref‖, with g = ∂ŷ/∂x_q. The cosine is ⟨g, h⟩ / √(‖g‖²‖h‖²), which is exactly 1
    for g = h in IEEE arithmetic (√(a²) = |a|).
    """
    with torch.no_grad():
        preds_diff = model(*prompts[:3]) - reference(*prompts[:3])
    g, h = sensitivity(model, prompts), sensitivity(reference, prompts)  # (B, d) each
    cos = (g * h).sum(-1) / ((g * g).sum(-1) * (h * h).sum(-1)).sqrt()
    return {
        "preds_diff": float(preds_diff.abs().mean()),
        "model_cos": float(cos.mean()),
        "model_diff": float((g - h).norm(dim=-1).mean()),
    }


def spd(a: Predictor, b: Predictor, prompts: Prompts) -> float:
    """Squared prediction difference (Akyürek et al., 2022): E(A₁(D)(x′) − A₂(D)(x′))² / d."""
    with torch.no_grad():
        diff = a(prompts.xs, prompts.ys, prompts.xq) - b(prompts.xs, prompts.ys, prompts.xq)
    return float((diff**2).mean()) / prompts.xs.shape[2]


def implied_weights(predict: Predictor, prompts: Prompts, probe_inputs: torch.Tensor) -> torch.Tensor:
    """ŵ_A: the least-squares linear fit to A's predictions at M probe inputs (B, M, d) per prompt.

    Akyürek et al. (2022). Every probe input is asked as the query of its own copy of the prompt.
    Returns (B, d); for a linear algorithm ŵᵀx it is ŵ itself once M ≥ d.
    """
    b, m, d = probe_inputs.shape
    with torch.no_grad():
        preds = predict(
            prompts.xs.repeat_interleave(m, 0),
            prompts.ys.repeat_interleave(m, 0),
            probe_inputs.reshape(b * m, d),
        ).reshape(b, m)
    return ols_weights(probe_inputs, preds)


def ilwd(weights_a: torch.Tensor, weights_b: torch.Tensor) -> float:
    """Implicit linear weight difference (Akyürek et al., 2022): E‖ŵ_A₁ − ŵ_A₂‖² / d."""
    return float(((weights_a - weights_b) ** 2).sum(-1).mean()) / weights_a.shape[-1]


def probe_r2(
    states: torch.Tensor, targets: torch.Tensor, train_fraction: float = 0.5, ridge: float = 1e-6
) -> float:
    """R² of a linear probe (with bias) reading `targets` (B, m) from hidden `states` (B, k).

    Fit by ridge-regularised least squares on the first `train_fraction` of the prompts, scored
    on the rest: R² = 1 − Σ‖t − t̂‖² / Σ‖t − t̄‖², pooled over the m target coordinates.
    """
    features = torch.cat([states, torch.ones_like(states[:, :1])], -1).double()  # (B, k+1)
    targets = targets.double()
    split = int(len(states) * train_fraction)
    f_train, t_train = features[:split], targets[:split]
    gram = f_train.T @ f_train + ridge * split * torch.eye(
        features.shape[1], dtype=torch.float64, device=features.device
    )
    coef = torch.linalg.solve(gram, f_train.T @ t_train)  # (k+1, m)
    residual = targets[split:] - features[split:] @ coef
    total = targets[split:] - targets[split:].mean(0)
    return float(1 - (residual**2).sum() / (total**2).sum())


def sweep(metrics: dict[str, Callable[[Prompts], float]], batches: list[Prompts]) -> dict[str, list[float]]:
    """Each metric on each batch: error vs context length (Garg et al., 2022) when the batches
    differ in N, out-of-distribution behaviour when they are one batch scaled by α."""
    return {name: [metric(prompts) for prompts in batches] for name, metric in metrics.items()}
