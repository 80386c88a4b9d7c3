"""Measurements of a DEQ at its fixed point: the Jacobian J = ∂f/∂z there (its Frobenius norm by
Hutchinson's estimator, its spectral radius), and the cosine between two gradients."""

from __future__ import annotations

import torch
from torch import Tensor

from bilevel.deq.layer import Cell


def jacobian_penalty(f: Cell, x: Tensor, z_star: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """‖J‖²_F / numel(z) ≈ ‖εᵀJ‖² / numel(z), one Gaussian probe ε (Hutchinson 1989), differentiable
    in f's parameters: the Jacobian regulariser of Bai, Koltun & Kolter (2021), normalised per
    element as in their code. Cost: one evaluation of f and one VJP (twice that backward)."""
    z = z_star.detach().requires_grad_()
    probe = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    (vjp,) = torch.autograd.grad(f(z, x), z, probe, create_graph=True)
    return vjp.pow(2).sum() / z.numel()


def jacobian_eigenvalues(f: Cell, x: Tensor, z_star: Tensor) -> Tensor:
    """All eigenvalues of ∂f/∂z at each example's z*, (B, d) complex: Jacobians by torch.func.jacrev,
    vmapped over examples. For small widths (d up to a few hundred). An example whose Jacobian has
    a non-finite entry (a diverged model) gets NaN eigenvalues: LAPACK's eigensolver is never given
    one (MKL's balancing step crashes the process on it)."""

    def one(z: Tensor, xi: Tensor) -> Tensor:
        return torch.func.jacrev(lambda v: f(v[None], xi[None])[0])(z)

    with torch.no_grad():
        jacobians = torch.func.vmap(one)(z_star.detach(), x.detach())  # (B, d, d)
        finite = jacobians.isfinite().flatten(1).all(1)  # (B,)
        if finite.all():
            return torch.linalg.eigvals(jacobians)
        complex_dtype = torch.promote_types(jacobians.dtype, torch.complex64)
        values = torch.full(jacobians.shape[:2], complex("nan+nanj"), dtype=complex_dtype, device=x.device)
        if finite.any():
            values[finite] = torch.linalg.eigvals(jacobians[finite])
        return values


def spectral_radius(
    f: Cell,
    x: Tensor,
    z_star: Tensor,
    method: str = "eig",
    iters: int = 50,
    generator: torch.Generator | None = None,
) -> Tensor:
    """ρ(∂f/∂z) at each example's z*, (B,): every eigenvalue (`eig`) or power iteration (`power`,
    ρ ≈ (‖J^{2k}v‖ / ‖J^k v‖)^{1/k}, k = iters/2, robust to a dominant complex pair; iters JVPs)."""
    if method == "eig":
        return jacobian_eigenvalues(f, x, z_star).abs().amax(-1)
    if method != "power":
        raise ValueError(f"unknown spectral radius method {method!r}; valid: eig, power")
    with torch.no_grad():
        z, x = z_star.detach(), x.detach()
        v = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        log_growth = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        half = iters // 2
        for i in range(iters):
            v = torch.func.jvp(lambda w: f(w, x), (z,), (v,))[1]
            norms = v.reshape(len(v), -1).norm(dim=1).clamp_min(torch.finfo(z.dtype).tiny)
            if i >= iters - half:
                log_growth = log_growth + norms.log()
            v = v / norms.reshape(-1, *([1] * (v.dim() - 1)))
        return (log_growth / max(half, 1)).exp()


def cosine(a: list[Tensor] | Tensor, b: list[Tensor] | Tensor) -> float:
    """cos(a, b) of two gradients, each a tensor or a list of tensors taken as one vector."""
    flat = lambda g: torch.cat([t.reshape(-1) for t in g]) if isinstance(g, (list, tuple)) else g.reshape(-1)
    a, b = flat(a), flat(b)
    return (a.dot(b) / (a.norm() * b.norm())).item()
